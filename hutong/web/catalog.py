"""The message catalog: collect every page string of every capability, keep the English PO file in step.

``hutong web catalog`` extracts the ``_()`` / ``gettext`` / ``ngettext`` / ``N_`` strings from every
``hutong/**/*.py`` and every template under ``hutong/**/templates`` (Babel's extractors), adds new ones to
``hutong/web/locale/en/LC_MESSAGES/messages.po`` with an empty translation, drops ones no longer used, and
lists what still needs translating; ``--check`` only reports (the test suite runs the check, so a page
string without an English translation fails the build).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract
from babel.messages.pofile import read_po, write_po

PACKAGE = Path(__file__).resolve().parents[1]
PO_FILE = Path(__file__).resolve().parent / "locale" / "en" / "LC_MESSAGES" / "messages.po"
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None}
_JINJA_OPTIONS = {"extensions": "jinja2.ext.i18n", "trim_blocks": "true", "lstrip_blocks": "true",
                  "newstyle_gettext": "true"}


def _files() -> Iterator[tuple[Path, str]]:
    for path in sorted(PACKAGE.rglob("*")):
        if "__pycache__" in path.parts or not path.is_file():
            continue
        if path.suffix == ".py":
            yield path, "python"
        elif path.suffix == ".html" and "templates" in path.relative_to(PACKAGE).parts:
            yield path, "jinja"


def extract_messages() -> dict[str, list[tuple[str, int]]]:
    """Every catalog message id in the package, with where it is used."""
    from jinja2.ext import babel_extract

    out: dict[str, list[tuple[str, int]]] = {}
    for path, kind in _files():
        method = "python" if kind == "python" else babel_extract
        options = {} if kind == "python" else _JINJA_OPTIONS
        with path.open("rb") as fh:
            for lineno, message, _comments, _ctx in extract(method, fh, KEYWORDS, options=options):
                ids = message if isinstance(message, tuple) else (message,)
                for msgid in ids:
                    if msgid and any(ord(c) > 0x2E80 for c in msgid):  # only zh-CN source strings
                        out.setdefault(msgid, []).append((str(path.relative_to(PACKAGE.parent)), lineno))
    for msgid, where in _nav_labels().items():
        out.setdefault(msgid, []).extend(where)
    return out


def _nav_labels() -> dict[str, list[tuple[str, int]]]:
    """Navigation labels of the node's capabilities (``NavEntry.label`` is a message id)."""
    from hutong.api.app import CAPABILITIES

    out: dict[str, list[tuple[str, int]]] = {}
    for cap in CAPABILITIES:
        for entry in cap.nav:
            out.setdefault(entry.label, []).append((f"hutong/{cap.name}/capability.py", 0))
    return out


def read_catalog(path: Path = PO_FILE) -> Catalog:
    """The English catalog as Babel reads it."""
    if not path.exists():
        return Catalog(locale="en", domain="messages")
    with path.open("rb") as fh:
        return read_po(fh, locale="en")


def missing_translations(catalog: Catalog | None = None, used: dict | None = None) -> list[str]:
    """Message ids used in the code whose English translation is missing or empty."""
    catalog = catalog if catalog is not None else read_catalog()
    used = used if used is not None else extract_messages()
    out = []
    for msgid in sorted(used):
        m = catalog.get(msgid)
        if m is None or not m.string or m.fuzzy:
            out.append(msgid)
    return out


def update_catalog(path: Path = PO_FILE) -> tuple[int, int, list[str]]:
    """Add new message ids, drop unused ones; returns ``(added, removed, untranslated)``."""
    used = extract_messages()
    old = read_catalog(path)
    new = Catalog(locale="en", domain="messages", project="hutong", msgid_bugs_address="",
                  copyright_holder="Hutong contributors", fuzzy=False)
    added = 0
    for msgid in sorted(used):
        prev = old.get(msgid)
        new.add(msgid, prev.string if prev is not None else "", locations=used[msgid][:3])
        added += prev is None
    removed = sum(1 for m in old if m.id and m.id not in used)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as fh:
        write_po(fh, new, width=110, sort_output=True, include_previous=False)
    return added, removed, missing_translations(new, used)


__all__ = ["extract_messages", "update_catalog", "missing_translations", "read_catalog", "PO_FILE"]
