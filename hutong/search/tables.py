"""Search index tables (one table per value type) on the store's shared metadata.

Layout (see ``docs/search.md``): every row carries ``res_type`` and ``res_id`` of the indexed resource and
the search parameter ``param`` (its code, e.g. ``code`` or ``subject``) plus typed value columns. Only the
current version of every non-deleted resource is indexed; the store clears a resource's rows before it
re-indexes it. The composite indexes lead with ``(res_type, param, <value>)`` and end with ``res_id`` so that
a common search is one index-only range scan; a second index on ``(res_type, res_id, param)`` serves the
per-candidate ``EXISTS`` probes, deletes and sorting.

Ordered text columns use the ``C`` collation on PostgreSQL so that prefix searches are byte-ordered range
scans there exactly as on SQLite (whose default ``BINARY`` collation already is).
"""

from __future__ import annotations

from sqlalchemy import DDL, BigInteger, Column, Float, Index, String, Table, Text, event, text

from hutong.store.schema import metadata

#: Text that sorts and range-scans bytewise on both backends.
CText = Text().with_variant(Text(collation="C"), "postgresql")


def _base(name: str, *cols, indexes=(), res_extra=()) -> Table:
    return Table(
        name,
        metadata,
        Column("res_type", String(64), nullable=False),
        Column("res_id", String(64), nullable=False),
        Column("param", String(64), nullable=False),
        *cols,
        Index(f"ix_{name}_res", "res_type", "res_id", "param", *res_extra),
        *indexes,
    )


#: Token values: Coding/CodeableConcept (system, code, display as ``text``), Identifier (system, value),
#: ContactPoint (system, value), code/boolean/id/string (code only). ``text`` is the normalised display/text
#: for ``:text``. Identifier types for ``:of-type`` are rows with ``param`` ``<code>:of-type``.
sp_token = _base(
    "sp_token",
    Column("system", CText),
    Column("code", CText),
    Column("text", CText),
    indexes=[
        Index("ix_sp_token_code", "res_type", "param", "code", "system", "res_id"),
        # Partial: only rows with a display/text are ever searched by it (``:text``), and skipping
        # the others saves an index insert per row on ingest.
        Index("ix_sp_token_text", "res_type", "param", "text", sqlite_where=text("text IS NOT NULL"),
              postgresql_where=text("text IS NOT NULL")),
    ],
)

#: String values: ``norm`` is lower-cased, accent-stripped, whitespace-collapsed (starts-with and
#: ``:contains``); ``exact`` is the value as written (``:exact``).
sp_string = _base(
    "sp_string",
    Column("norm", CText),
    Column("exact", Text),
    indexes=[Index("ix_sp_string_norm", "res_type", "param", "norm", "res_id")],
)

#: Date values as inclusive ranges of UTC microseconds (a date, a Period, a Timing's events/bounds).
sp_date = _base(
    "sp_date",
    Column("low_us", BigInteger, nullable=False),
    Column("high_us", BigInteger, nullable=False),
    indexes=[
        Index("ix_sp_date_low", "res_type", "param", "low_us", "res_id", "high_us"),
        Index("ix_sp_date_high", "res_type", "param", "high_us", "res_id", "low_us"),
    ],
    res_extra=("low_us", "high_us"),  # sort keys (min/max per resource) read from the index alone
)

#: Numbers as inclusive ranges ``low``..``high`` (equal for a plain value; a Range's bounds otherwise,
#: open ends as +-1e308).
sp_number = _base(
    "sp_number",
    Column("low", Float, nullable=False),
    Column("high", Float, nullable=False),
    indexes=[Index("ix_sp_number_low", "res_type", "param", "low", "high", "res_id")],
)

#: Quantities: value range as for numbers, unit system, unit code and unit text.
sp_quantity = _base(
    "sp_quantity",
    Column("low", Float, nullable=False),
    Column("high", Float, nullable=False),
    Column("system", CText),
    Column("code", CText),
    Column("unit", CText),
    indexes=[Index("ix_sp_quantity_low", "res_type", "param", "low", "high", "res_id")],
)

#: References: local ``target_type``/``target_id`` (relative ``Type/id`` references) or ``url`` for absolute,
#: ``urn:`` and canonical references (canonical without ``|version``).
sp_reference = _base(
    "sp_reference",
    Column("target_type", String(64)),
    Column("target_id", String(64)),
    Column("url", CText),
    indexes=[
        Index("ix_sp_reference_target", "res_type", "param", "target_id", "target_type", "res_id"),
        Index("ix_sp_reference_rev", "target_type", "target_id", "param", "res_type", "res_id"),
        # Partial: most references are relative (``url`` NULL) and never looked up by URL.
        Index("ix_sp_reference_url", "res_type", "param", "url", sqlite_where=text("url IS NOT NULL"),
              postgresql_where=text("url IS NOT NULL")),
    ],
)

#: URIs (``:below``/``:above`` are prefix range scans).
sp_uri = _base(
    "sp_uri",
    Column("value", CText),
    indexes=[Index("ix_sp_uri_value", "res_type", "param", "value", "res_id")],
)

#: Composite parameters: one row per element instance with its components kept together.
#: Component 1 is a token (``c1_s`` system, ``c1_c`` code) or a reference (``c1_c`` = ``Type/id``);
#: component 2 is a token/string (``c2_s``/``c2_c``), a quantity or number (range ``c2_lo``/``c2_hi``,
#: unit ``c2_s``/``c2_c``) or a date (``c2_dlo``/``c2_dhi``); component 3 is a number (``c3_lo``/``c3_hi``).
#: ``Location.near`` rows keep latitude in ``c2_lo`` and longitude in ``c3_lo``.
sp_composite = _base(
    "sp_composite",
    Column("c1_s", CText),
    Column("c1_c", CText),
    Column("c2_s", CText),
    Column("c2_c", CText),
    Column("c2_lo", Float),
    Column("c2_hi", Float),
    Column("c2_dlo", BigInteger),
    Column("c2_dhi", BigInteger),
    Column("c3_lo", Float),
    Column("c3_hi", Float),
    indexes=[Index("ix_sp_composite_c1", "res_type", "param", "c1_c", "c1_s")],
)

#: Every index table, by parameter type.
TABLES = {
    "token": sp_token,
    "string": sp_string,
    "date": sp_date,
    "number": sp_number,
    "quantity": sp_quantity,
    "reference": sp_reference,
    "uri": sp_uri,
    "composite": sp_composite,
    "special": sp_composite,
}

ALL_TABLES = [sp_token, sp_string, sp_date, sp_number, sp_quantity, sp_reference, sp_uri, sp_composite]

# PostgreSQL estimates (res_type, param, value) selectivity as a product of independent columns, which is
# far off for these tables (a parameter code only occurs with its resource types); multi-column statistics
# let the planner see the real frequencies of the common (type, parameter, value) combinations.
_STATS = {
    sp_token: "res_type, param, code",
    sp_reference: "res_type, param, target_type",
    sp_date: "res_type, param",
    sp_string: "res_type, param",
    sp_quantity: "res_type, param, code",
    sp_composite: "res_type, param, c1_c",
}
for _table, _cols in _STATS.items():
    event.listen(
        _table,
        "after_create",
        DDL(f"CREATE STATISTICS IF NOT EXISTS st_{_table.name} (ndistinct, dependencies, mcv) ON {_cols} FROM {_table.name}")
        .execute_if(dialect="postgresql"),
    )

#: The tables of this capability, created with the store's schema.
TABLES = tuple(ALL_TABLES)
