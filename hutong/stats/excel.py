"""Excel output (owned by ``stats``, used by every capability that exports tables): officials live in
Excel, so tables leave the node as formatted ``.xlsx`` workbooks, with CSV beside them.

``workbook([Sheet(...), ...])`` returns the bytes of a workbook: a title row, a bold frozen header,
column widths fitted to the content (CJK characters count double), number formats per column, and
optional notes (source, suppression rule) under the table.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field

from openpyxl import Workbook
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
CSV = "text/csv; charset=utf-8"

_HEADER_FILL = PatternFill("solid", fgColor="DDEBF7")


@dataclass
class Column:
    """One column: its heading (Chinese first) and an Excel number format (``0``, ``0.0%``…)."""

    heading: str
    number_format: str | None = None
    width: int | None = None


@dataclass
class Sheet:
    """One worksheet: a title, columns, rows and notes printed under the table."""

    title: str
    columns: Sequence[Column]
    rows: Sequence[Sequence]
    notes: Sequence[str] = field(default_factory=tuple)
    name: str | None = None  # sheet tab name (31 characters at most); the title's start by default


def _display_width(value) -> int:
    text = "" if value is None else str(value)
    return sum(2 if ord(ch) > 0x2E7F else 1 for ch in text)


def workbook(sheets: Sequence[Sheet]) -> bytes:
    """The ``.xlsx`` bytes of ``sheets``."""
    wb = Workbook()
    wb.remove(wb.active)
    for sheet in sheets:
        ws = wb.create_sheet(_tab_name(sheet.name or sheet.title))
        ncols = max(1, len(sheet.columns))
        ws.cell(row=1, column=1, value=sheet.title).font = Font(bold=True, size=13)
        if ncols > 1:
            ws.merge_cells(start_row=1, start_column=1, end_row=1, end_column=ncols)
        for j, col in enumerate(sheet.columns, start=1):
            cell = ws.cell(row=2, column=j, value=col.heading)
            cell.font = Font(bold=True)
            cell.fill = _HEADER_FILL
            cell.alignment = Alignment(horizontal="center", vertical="center", wrap_text=True)
        widths = [_display_width(c.heading) for c in sheet.columns]
        for i, row in enumerate(sheet.rows, start=3):
            if len(row) != len(sheet.columns):
                raise ValueError(f"row {i - 2} of {sheet.title!r} has {len(row)} cells, not {len(sheet.columns)}")
            for j, value in enumerate(row, start=1):
                cell = ws.cell(row=i, column=j, value=value)
                fmt = sheet.columns[j - 1].number_format
                if fmt:
                    cell.number_format = fmt
                widths[j - 1] = max(widths[j - 1], _display_width(value))
        for j, col in enumerate(sheet.columns, start=1):
            ws.column_dimensions[get_column_letter(j)].width = col.width or min(60, max(8, widths[j - 1] + 2))
        ws.freeze_panes = "A3"
        note_row = len(sheet.rows) + 4
        for k, note in enumerate(sheet.notes):
            ws.cell(row=note_row + k, column=1, value=note).font = Font(italic=True, color="666666")
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def _tab_name(title: str) -> str:
    for ch in "[]:*?/\\":
        title = title.replace(ch, " ")
    return title[:31] or "Sheet"


def csv_text(columns: Sequence[Column], rows: Sequence[Sequence]) -> str:
    """The same table as CSV (UTF-8 with a byte-order mark, so Excel opens Chinese text correctly)."""
    buf = io.StringIO()
    buf.write("\ufeff")
    writer = csv.writer(buf)
    writer.writerow([c.heading for c in columns])
    writer.writerows(rows)
    return buf.getvalue()
