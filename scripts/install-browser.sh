#!/bin/sh
# Debian's Chromium for the UI tests (Playwright drives it through executable_path; no browser download).
if [ -x /usr/bin/chromium ]; then exit 0; fi
if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
    || echo "warning: could not install chromium; UI tests will be skipped" >&2
else
  echo "note: /usr/bin/chromium is missing and cannot be installed here; UI tests will be skipped" >&2
fi
