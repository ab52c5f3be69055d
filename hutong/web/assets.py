"""Static assets served by the node itself (no CDN): the web layer's CSS and JS, vendored ECharts, the
province map, and any folder another capability registers.

``asset_url("hutong.css")`` gives ``/web/static/hutong.css?v=<content hash>``; a request carrying the
current hash is cached for a year (``immutable``), others for an hour, and every answer has an ``ETag``
so a revalidation is a 304. Only files that exist under a registered folder when the node starts are
served (no path from the request ever reaches the file system).
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path

ECHARTS_VERSION = "5.6.0"
STATIC_PREFIX = "/web/static/"
_HERE = Path(__file__).resolve().parent

_MEDIA = {
    ".css": "text/css; charset=utf-8", ".js": "application/javascript; charset=utf-8",
    ".json": "application/json", ".svg": "image/svg+xml", ".png": "image/png", ".ico": "image/x-icon",
    ".woff2": "font/woff2", ".txt": "text/plain; charset=utf-8", ".LICENSE": "text/plain; charset=utf-8",
    ".NOTICE": "text/plain; charset=utf-8", ".md": "text/plain; charset=utf-8",
}
_SKIP_SUFFIXES = {".py", ".pyc"}


@dataclass(frozen=True)
class Asset:
    path: Path
    media_type: str
    etag: str  # first 16 hex digits of the SHA-256 of the content


_folders: dict[str, Path] = {"": _HERE / "static"}
_index: dict[str, Asset] | None = None
_lock = threading.Lock()


def add_assets(prefix: str, folder: Path) -> None:
    """Serve the files of ``folder`` at ``/web/static/<prefix>/…`` (a capability's own CSS, JS, images).

    Call it at import time of your capability's routes module (before the first request)."""
    prefix = prefix.strip("/")
    if not prefix or "/" in prefix or prefix in ("vendor", "geo"):
        raise ValueError(f"asset prefix {prefix!r} must be one word and not a reserved one")
    global _index
    with _lock:
        _folders[prefix] = Path(folder).resolve()
        _index = None


def _media_type(path: Path) -> str | None:
    return _MEDIA.get(path.suffix) or _MEDIA.get("." + path.name.rsplit(".", 1)[-1])


def _build() -> dict[str, Asset]:
    index: dict[str, Asset] = {}
    for prefix, folder in _folders.items():
        if not folder.is_dir():
            continue
        for file in sorted(folder.rglob("*")):
            if not file.is_file() or file.suffix in _SKIP_SUFFIXES or "__pycache__" in file.parts:
                continue
            media = _media_type(file)
            if media is None:
                continue
            rel = file.relative_to(folder).as_posix()
            name = f"{prefix}/{rel}" if prefix else rel
            index[name] = Asset(file, media, hashlib.sha256(file.read_bytes()).hexdigest()[:16])
    return index


def assets() -> dict[str, Asset]:
    """Every servable asset by its name under ``/web/static/``."""
    global _index
    idx = _index
    if idx is None:
        with _lock:
            if _index is None:
                _index = _build()
            idx = _index
    return idx


def find(name: str) -> Asset | None:
    """The asset called ``name`` (relative to ``/web/static/``), or None."""
    return assets().get(name)


def asset_url(name: str) -> str:
    """The URL of an asset with its content hash (cache-busting); raises KeyError for an unknown one."""
    a = assets().get(name)
    if a is None:
        raise KeyError(f"no web asset {name!r}")
    return f"{STATIC_PREFIX}{name}?v={a.etag}"


__all__ = ["add_assets", "asset_url", "assets", "find", "Asset", "ECHARTS_VERSION", "STATIC_PREFIX"]
