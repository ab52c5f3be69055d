#!/bin/sh
# Debian's Chromium for the UI tests (Playwright drives it through executable_path; no browser download),
# and a CJK font so that screenshots of the pages show Chinese text instead of empty boxes.
can_apt() { [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; }
updated=""
apt_install() {
  if [ -z "$updated" ]; then apt-get update -qq >/dev/null 2>&1; updated=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1
}
if [ ! -x /usr/bin/chromium ]; then
  if can_apt; then
    apt_install chromium || echo "warning: could not install chromium; UI tests will be skipped" >&2
  else
    echo "note: /usr/bin/chromium is missing and cannot be installed here; UI tests will be skipped" >&2
  fi
fi
has_cjk_font() { command -v fc-list >/dev/null 2>&1 && [ -n "$(fc-list :lang=zh family 2>/dev/null | head -n 1)" ]; }
if ! has_cjk_font; then
  if can_apt; then
    # WenQuanYi Micro Hei is small (about 5 MB); Noto CJK is the fallback when it is not available.
    apt_install fonts-wqy-microhei || apt_install fonts-noto-cjk \
      || echo "warning: could not install a CJK font; page screenshots will not show Chinese" >&2
  else
    echo "note: no CJK font is installed and none can be installed here; screenshots will not show Chinese" >&2
  fi
fi
exit 0
