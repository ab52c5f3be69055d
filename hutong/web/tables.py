"""The web layer's one table: node secrets shared by every worker and node on the same database."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, String, Table

from hutong.store.schema import metadata

#: Named random secrets (hex), created on first use: ``flash`` signs flash-message cookies, ``launch``
#: is the root from which each institution's workstation-launch key is derived (``hutong/share/launch.py``).
web_secret = Table(
    "web_secret",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("value", String(128), nullable=False),
    Column("created_us", BigInteger, nullable=False),
)

TABLES = (web_secret,)
