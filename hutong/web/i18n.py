"""Languages of the pages: Simplified Chinese first, English available, one message catalog.

Source strings (message ids) are the Simplified Chinese text itself, so a zh-CN page needs no catalog
and a missing English translation falls back to Chinese rather than to a code. The English catalog is
``hutong/web/locale/en/LC_MESSAGES/messages.po`` (gettext PO, read with Babel at first use; no compiled
``.mo`` is shipped). Every capability's pages use this one catalog: ``pybabel extract -F
hutong/web/babel.cfg`` collects ``_()`` calls from every ``hutong/**/templates`` and Python module (see
``docs/web.md``).

The language of a request is chosen by ``?lang=``, then the ``hutong_lang`` cookie, then
``Accept-Language``, then zh-CN. ``gettext`` reads the language of the page being rendered from a
context variable, so templates and Python code translate the same way.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

#: Languages the pages are offered in, the default first.
LOCALES: tuple[str, ...] = ("zh-CN", "en")
DEFAULT_LOCALE = "zh-CN"
#: The cookie remembering a choice made with ``?lang=``.
COOKIE = "hutong_lang"
#: How each language names itself (for the switch link).
NATIVE_NAMES = {"zh-CN": "中文", "en": "English"}

_LOCALE_DIR = Path(__file__).resolve().parent / "locale"
_current: ContextVar[str] = ContextVar("hutong_web_locale", default=DEFAULT_LOCALE)
_cache: dict[str, NullTranslations] = {}
_lock = threading.Lock()


def normalize(tag: str | None) -> str | None:
    """A language tag (``zh``, ``zh-Hans-CN``, ``en-GB``, ``en_US``) as one of ``LOCALES``, or None."""
    if not tag:
        return None
    t = tag.strip().replace("_", "-").lower()
    if t.startswith("zh"):
        # Traditional-script tags still read Simplified better than English for this province's users.
        return "zh-CN"
    if t == "en" or t.startswith("en-"):
        return "en"
    return None


def parse_accept_language(header: str | None) -> list[str]:
    """The languages of an ``Accept-Language`` header, best first (q-values honoured)."""
    if not header:
        return []
    out: list[tuple[float, int, str]] = []
    for i, part in enumerate(header.split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                q = float(params[2:])
            except ValueError:
                q = 0.0
        if tag and q > 0:
            out.append((-q, i, tag.strip()))
    return [t for _q, _i, t in sorted(out)]


def negotiate(query_lang: str | None, cookie: str | None, accept_language: str | None) -> str:
    """The page language: ``?lang=``, then the cookie, then ``Accept-Language``, then zh-CN."""
    for candidate in (query_lang, cookie):
        loc = normalize(candidate)
        if loc:
            return loc
    for tag in parse_accept_language(accept_language):
        loc = normalize(tag)
        if loc:
            return loc
    return DEFAULT_LOCALE


def translations(locale: str) -> NullTranslations:
    """The gettext translations of ``locale`` (zh-CN: the identity)."""
    got = _cache.get(locale)
    if got is not None:
        return got
    with _lock:
        got = _cache.get(locale)
        if got is None:
            got = _load(locale)
            _cache[locale] = got
    return got


def _load(locale: str) -> NullTranslations:
    if locale == DEFAULT_LOCALE:
        return NullTranslations()
    po = _LOCALE_DIR / locale / "LC_MESSAGES" / "messages.po"
    if not po.exists():
        return NullTranslations()
    with po.open("rb") as fh:
        catalog = read_po(fh, locale=locale.replace("-", "_"))
    buf = io.BytesIO()
    write_mo(buf, catalog, use_fuzzy=False)
    buf.seek(0)
    return Translations(buf, domain="messages")


def reload_catalogs() -> None:
    """Forget loaded catalogs (after editing a PO file in a running development node)."""
    with _lock:
        _cache.clear()


def current_locale() -> str:
    """The language of the page being rendered."""
    return _current.get()


@contextmanager
def use_locale(locale: str) -> Iterator[None]:
    """Translate in ``locale`` inside the block (the renderer sets this around each page)."""
    token = _current.set(locale if locale in LOCALES else DEFAULT_LOCALE)
    try:
        yield
    finally:
        _current.reset(token)


def gettext(message: str, **params) -> str:
    """``message`` (the zh-CN source text) in the current language; ``%(name)s`` filled from ``params``."""
    text = translations(_current.get()).gettext(message)
    return text % params if params else text


def ngettext(singular: str, plural: str, n: int, **params) -> str:
    """Plural-aware ``gettext`` (``%(num)s`` is ``n``)."""
    text = translations(_current.get()).ngettext(singular, plural, n)
    params.setdefault("num", n)
    return text % params


def N_(message: str) -> str:
    """Mark a string for the catalog without translating it now (module-level tables)."""
    return message


_ = gettext

__all__ = ["LOCALES", "DEFAULT_LOCALE", "COOKIE", "negotiate", "gettext", "ngettext", "N_", "_", "use_locale",
           "current_locale", "translations", "normalize", "parse_accept_language"]
