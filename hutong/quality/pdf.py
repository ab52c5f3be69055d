"""An institution's report as PDF: the same tables as the Excel workbook (``views.report_sheets``),
set in the CJK font shipped in the package (``fonts/wqy-microhei-gb.ttf``, WenQuanYi Micro Hei cut
to GB 2312 and the package's own Chinese text; see ``fonts/SOURCE.md``). fpdf2 embeds the subset of
glyphs a document uses, so the PDF reads the same on any machine, offline, with no font installed.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from fpdf import FPDF
from fpdf.fonts import FontFace

from hutong.stats.excel import Sheet

FONT = Path(__file__).resolve().parent / "fonts" / "wqy-microhei-gb.ttf"
FAMILY = "wqy"
PDF = "application/pdf"


def _text(value, number_format: str | None) -> str:
    if value is None or value == "":
        return "–"
    if isinstance(value, float):
        if number_format and number_format.endswith("%"):
            return f"{value * 100:.1f}%"
        return f"{value:.1f}" if number_format != "0" else f"{value:.0f}"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    return str(value)


class _Report(FPDF):
    def __init__(self, footer: str):
        super().__init__(orientation="P", unit="mm", format="A4")
        self._footer_text = footer
        self.add_font(FAMILY, "", str(FONT))
        self.set_auto_page_break(True, margin=15)
        self.set_margins(14, 14, 14)

    def footer(self) -> None:
        self.set_y(-11)
        self.set_font(FAMILY, size=7.5)
        self.set_text_color(110)
        self.cell(0, 5, f"{self._footer_text}    {self.page_no()}/{{nb}}", align="C")


def sheets_pdf(sheets: list[Sheet], *, title: str, footer: str, lang: str = "zh-CN") -> bytes:
    """``sheets`` (title, columns, rows, notes) as one PDF document, one table after another."""
    pdf = _Report(footer)
    pdf.set_title(title)
    pdf.set_lang(lang)
    pdf.set_creator("Hutong 互通")
    pdf.alias_nb_pages()
    pdf.add_page()
    heading = FontFace(fill_color=(226, 232, 240))
    for k, sheet in enumerate(sheets):
        pdf.set_font(FAMILY, size=14 if k == 0 else 11.5)
        pdf.set_text_color(20)
        pdf.multi_cell(0, 7, sheet.title, new_x="LMARGIN", new_y="NEXT")
        pdf.set_font(FAMILY, size=8)
        pdf.set_text_color(90)
        for note in sheet.notes:
            pdf.multi_cell(0, 4.5, note, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(1)
        pdf.set_text_color(20)
        if not sheet.rows:
            pdf.cell(0, 6, "–", new_x="LMARGIN", new_y="NEXT")
            pdf.ln(3)
            continue
        widths = _widths(sheet)
        with pdf.table(col_widths=widths, headings_style=heading, line_height=4.6, padding=1,
                       text_align="LEFT", first_row_as_headings=True) as table:
            row = table.row()
            for col in sheet.columns:
                row.cell(col.heading)
            for values in sheet.rows:
                row = table.row()
                for col, value in zip(sheet.columns, values, strict=False):
                    row.cell(_text(value, col.number_format))
        pdf.ln(4)
    return bytes(pdf.output())


def _widths(sheet: Sheet) -> tuple[int, ...]:
    """Relative column widths from the longest text of each column (CJK characters count double)."""
    def width(s: str) -> int:
        return sum(2 if ord(ch) > 0x2E80 else 1 for ch in s)

    out = []
    for i, col in enumerate(sheet.columns):
        longest = max([width(col.heading)] + [width(_text(r[i] if i < len(r) else "", col.number_format))
                                              for r in sheet.rows[:200]])
        out.append(max(4, min(longest, 60)))
    return tuple(out)
