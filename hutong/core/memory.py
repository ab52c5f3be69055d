"""Giving memory back to the operating system after a large request."""

from __future__ import annotations


def release_memory() -> None:
    """Hand the heap freed by a large Bundle back to the operating system (glibc keeps it in its
    arenas otherwise, and a worker's RSS would ratchet up to its largest Bundle and stay there)."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


def _find_malloc_trim():
    import ctypes
    import ctypes.util

    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None


_MALLOC_TRIM = _find_malloc_trim()
