"""HTTP for recognition (thin): CDS Hooks, HL7 v2 over HTTP, the results query, statistics."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["recognition 检查检验结果互认"])


def startup(node) -> None:
    """Nothing yet."""


def shutdown(node) -> None:
    """Nothing yet."""
