"""Excel and CSV output: what an official opens is the table that was sent, formatted."""

from __future__ import annotations

import io

from openpyxl import load_workbook

from hutong.stats.excel import Column, Sheet, csv_text, workbook


def test_workbook_round_trips_values_formats_and_notes():
    cols = [Column("机构 Institution"), Column("门诊人次 Visits", "#,##0"), Column("互认率 Rate", "0.0%")]
    rows = [["长春市中心医院", 1234, 0.375], ["吉林市人民医院", 88, 0.5]]
    data = workbook([Sheet("2026年11月门诊统计", cols, rows, notes=["来源 Source: Hutong"])])
    ws = load_workbook(io.BytesIO(data)).active
    assert ws["A1"].value == "2026年11月门诊统计"
    assert [c.value for c in ws[2]] == [c.heading for c in cols]
    assert [[c.value for c in r] for r in ws.iter_rows(min_row=3, max_row=4)] == rows
    assert ws["B3"].number_format == "#,##0" and ws["C3"].number_format == "0.0%"
    assert ws.freeze_panes == "A3"
    assert ws["A6"].value == "来源 Source: Hutong"  # after one blank row
    assert ws.column_dimensions["A"].width >= 16  # CJK text counts double


def test_csv_has_bom_and_header():
    text = csv_text([Column("城市"), Column("病例")], [["长春", 3]])
    assert text.startswith("\ufeff城市,病例\r\n长春,3")


def test_row_length_mismatch_is_an_error():
    import pytest

    with pytest.raises(ValueError):
        workbook([Sheet("t", [Column("a")], [[1, 2]])])
