"""Excel in and out for direct reporting: a formatted template of one report, filled offline and
uploaded back with cell-level error messages.

The template has one row per cell of the form (element × category option combination), grouped
by the data set's sections, with the current values filled in. The value column is the only one
unlocked (the sheet is protected without a password, so officials cannot break the layout by
accident) and carries Excel data validation (a number ≥ 0, whole for integer elements). Column A
(hidden) holds each row's key and a hidden sheet ``_meta`` names the data set, institution and
period, so an upload is read by key, never by position, and a template of another report is refused.
"""

from __future__ import annotations

import io
from zipfile import BadZipFile

from openpyxl import Workbook, load_workbook
from openpyxl.styles import Alignment, Border, Font, PatternFill, Protection, Side
from openpyxl.worksheet.datavalidation import DataValidation

from hutong.core.errors import bad_request
from hutong.stats.datasets import TOTAL, DataSet
from hutong.stats.periods import Period
from hutong.stats.reporting import CellError

SHEET = "报表"
META = "_meta"
VALUE_COL = 5
_HEADER_FILL = PatternFill("solid", fgColor="DDEBF7")
_SECTION_FILL = PatternFill("solid", fgColor="F2F2F2")
_INPUT_FILL = PatternFill("solid", fgColor="FFF2CC")
_THIN = Side(style="thin", color="BFBFBF")
_BOX = Border(left=_THIN, right=_THIN, top=_THIN, bottom=_THIN)
MAX_UPLOAD_BYTES = 5 * 1024 * 1024


def _rows(ds: DataSet):
    """(section name or None, element, coc, label) in form order."""
    listed = set()
    for name, codes in ds.sections or [(None, [e.code for e in ds.elements])]:
        yield name, None, None, None
        for code in codes:
            element = ds.element(code)
            if element is None:
                continue
            listed.add(code)
            for coc, label in ds.cells(element):
                yield None, element, coc, label
    rest = [e for e in ds.elements if e.code not in listed]
    if rest:
        yield "其他", None, None, None
        for element in rest:
            for coc, label in ds.cells(element):
                yield None, element, coc, label


def template(ds: DataSet, org: str, org_name: str, period: Period, current: dict[tuple[str, str], float]) -> bytes:
    """The ``.xlsx`` template of one report, holding the values entered so far."""
    wb = Workbook()
    ws = wb.active
    ws.title = SHEET
    ws.cell(row=1, column=2, value=f"{ds.name}（{period.label()}）").font = Font(bold=True, size=14)
    ws.merge_cells(start_row=1, start_column=2, end_row=1, end_column=VALUE_COL)
    ws.cell(row=2, column=2, value=f"填报单位：{org_name}（{org}）    报告期：{period.id}    "
                                   f"数据集：{ds.code}")
    ws.merge_cells(start_row=2, start_column=2, end_row=2, end_column=VALUE_COL)
    headers = ["key", "指标名称 Item", "分类 Breakdown", "计量单位 Unit", "数值 Value"]
    for j, h in enumerate(headers, start=1):
        cell = ws.cell(row=4, column=j, value=h)
        cell.font = Font(bold=True)
        cell.fill = _HEADER_FILL
        cell.border = _BOX
        cell.alignment = Alignment(horizontal="center")
    whole = DataValidation(type="whole", operator="greaterThanOrEqual", formula1="0", allow_blank=True,
                           showErrorMessage=True, errorTitle="输入错误", error="请输入不小于 0 的整数")
    number = DataValidation(type="decimal", operator="greaterThanOrEqual", formula1="0", allow_blank=True,
                            showErrorMessage=True, errorTitle="输入错误", error="请输入不小于 0 的数字")
    ws.add_data_validation(whole)
    ws.add_data_validation(number)
    r = 5
    for section, element, coc, label in _rows(ds):
        if element is None:
            if section:
                cell = ws.cell(row=r, column=2, value=section)
                cell.font = Font(bold=True)
                for j in range(2, VALUE_COL + 1):
                    ws.cell(row=r, column=j).fill = _SECTION_FILL
                r += 1
            continue
        ws.cell(row=r, column=1, value=f"{element.code}|{coc}")
        ws.cell(row=r, column=2, value=element.name).border = _BOX
        ws.cell(row=r, column=3, value=label if coc != TOTAL else "合计").border = _BOX
        ws.cell(row=r, column=4, value=element.unit).border = _BOX
        cell = ws.cell(row=r, column=VALUE_COL, value=current.get((element.code, coc)))
        cell.fill = _INPUT_FILL
        cell.border = _BOX
        cell.protection = Protection(locked=False)
        cell.number_format = "#,##0" if element.value_type == "integer" else "#,##0.00"
        (whole if element.value_type == "integer" else number).add(cell)
        r += 1
    ws.cell(row=r + 1, column=2, value="说明：只填写黄色单元格；上传后逐格校验，出错的单元格会被指出。"
                                       "Fill the yellow cells only; the upload names any cell in error.").font = \
        Font(italic=True, color="666666")
    ws.column_dimensions["A"].hidden = True
    for col, width in (("B", 34), ("C", 22), ("D", 10), ("E", 16)):
        ws.column_dimensions[col].width = width
    ws.freeze_panes = "B5"
    ws.protection.sheet = True
    ws.protection.formatColumns = False
    meta = wb.create_sheet(META)
    for i, (k, v) in enumerate((("dataset", ds.code), ("org", org), ("period", period.id)), start=1):
        meta.cell(row=i, column=1, value=k)
        meta.cell(row=i, column=2, value=v)
    meta.sheet_state = "hidden"
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()


def read_upload(ds: DataSet, org: str, period: Period, content: bytes) -> tuple[list[dict], list[CellError]]:
    """Entries from an uploaded template (for ``reporting.save_values``) and the cells in error."""
    if len(content) > MAX_UPLOAD_BYTES:
        raise bad_request(f"the workbook is larger than {MAX_UPLOAD_BYTES // 1024 // 1024} MB")
    try:
        wb = load_workbook(io.BytesIO(content), data_only=True, read_only=False)
    except (BadZipFile, KeyError, ValueError, OSError) as exc:
        raise bad_request(f"not an Excel workbook (.xlsx): {str(exc)[:100]}") from None
    if SHEET not in wb.sheetnames or META not in wb.sheetnames:
        raise bad_request(f"this workbook is not a report template of this node (sheets {SHEET} and {META} missing)")
    meta = {str(row[0].value): str(row[1].value) for row in wb[META].iter_rows(min_row=1, max_row=10, max_col=2)
            if row[0].value is not None}
    expected = {"dataset": ds.code, "org": org, "period": period.id}
    for key, want in expected.items():
        if meta.get(key) != want:
            raise bad_request(f"this template is for {key} {meta.get(key)!r}, not {want!r}: download the template "
                              "of this report")
    ws = wb[SHEET]
    entries, errors = [], []
    for row in ws.iter_rows(min_row=5, max_col=VALUE_COL):
        key = row[0].value
        if not isinstance(key, str) or "|" not in key:
            continue
        element, coc = key.split("|", 1)
        cell = row[VALUE_COL - 1]
        value = cell.value
        ref = f"{cell.column_letter}{cell.row}"
        if isinstance(value, str):
            value = value.strip().replace(",", "")
        entries.append({"dataElement": element, "categoryOptionCombo": coc, "value": value, "cell": ref})
    if not entries:
        errors.append(CellError("", "", "the template holds no report cells", f"{SHEET}!E5"))
    return entries, errors
