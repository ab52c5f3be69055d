"""The interval table is data with a source for every value: structure of every row, and a sample
of values checked against the standards' published tables."""

from __future__ import annotations

import re

import pytest

from hutong.reportread.catalog import METHODS, RULES, SEXES, analytes, intervals, read_critical_table
from hutong.reportread.units import convert, to_ucum

SOURCES = re.compile(r"^(WS/T 40[45](\.[0-9]+)?-20[0-9]{2} |中国.*指南（20[0-9]{2}(年版|年)?）)")


def test_every_interval_row_is_well_formed():
    table = analytes()
    for row in intervals():
        assert row.key in table, row
        assert row.sex in SEXES and row.method in METHODS, row
        assert row.low_rule in RULES and row.high_rule in RULES, row
        assert row.low is not None or row.high is not None, row
        if row.low is not None and row.high is not None:
            assert row.low < row.high, row
        if row.age_min is not None and row.age_max is not None:
            assert row.age_min < row.age_max, row
        assert row.unit == table[row.key].unit, row  # intervals are in the item's reference unit
        convert(1.0, row.unit, row.unit)  # a UCUM unit ucumvert reads
        assert SOURCES.match(row.standard), row.standard
        assert row.clause and row.population, row
        assert (row.age_min or 0) >= 18, "children's intervals (WS/T 779/780) are not transcribed: " + row.key


def test_rows_of_one_item_do_not_overlap():
    seen = {}
    for row in intervals():
        seen.setdefault((row.key, row.sex, row.method), []).append(row)
    for key, rows in seen.items():
        spans = sorted((r.age_min or 0, r.age_max or 200) for r in rows)
        for (_a0, a1), (b0, _b1) in zip(spans, spans[1:], strict=False):
            assert a1 <= b0, f"overlapping age bands for {key}"


# (item, sex, age, method, low, high): values as printed in the standards' tables.
PUBLISHED = [
    ("WBC", "male", 40, "", 3.5, 9.5), ("HGB", "male", 40, "", 130, 175), ("HGB", "female", 40, "", 115, 150),
    ("RBC", "female", 30, "", 3.8, 5.1), ("PLT", "female", 30, "", 125, 350), ("MCHC", "male", 50, "", 316, 354),
    ("NEUT#", "male", 50, "", 1.8, 6.3), ("EO%", "male", 50, "", 0.4, 8.0),
    ("ALT", "male", 40, "without-p5p", 9, 50), ("ALT", "female", 40, "without-p5p", 7, 40),
    ("ALT", "male", 40, "with-p5p", 9, 60), ("AST", "female", 40, "with-p5p", 13, 40),
    ("ALP", "female", 35, "", 35, 100), ("ALP", "female", 65, "", 50, 135), ("GGT", "male", 40, "", 10, 60),
    ("K", "male", 40, "", 3.5, 5.3), ("NA", "female", 40, "", 137, 147), ("CL", "female", 40, "", 99, 110),
    ("TBIL", "male", 40, "", None, 26.0), ("TBIL", "female", 40, "", None, 21.0),
    ("DBIL", "male", 40, "roche", None, 8.0), ("DBIL", "male", 40, "beckman", None, 4.0),
    ("CREA", "male", 40, "enzymatic", 57, 97), ("CREA", "male", 70, "enzymatic", 57, 111),
    ("CREA", "female", 40, "enzymatic", 41, 73), ("CREA", "female", 70, "enzymatic", 41, 81),
    ("UREA", "male", 40, "", 3.1, 8.0), ("UREA", "female", 40, "", 2.6, 7.5),
    ("CA", "female", 40, "", 2.11, 2.52), ("CK", "male", 40, "", 50, 310),
]


@pytest.mark.parametrize("key,sex,age,method,low,high", PUBLISHED)
def test_sample_of_values_against_the_standards(key, sex, age, method, low, high):
    from hutong.reportread.interpret import Person, national_interval

    row = national_interval(analytes()[key], Person(sex, age), method)
    assert row is not None, (key, sex, age)
    assert (row.low, row.high) == (low, high)


def test_no_interval_is_invented_where_the_table_has_none():
    from hutong.reportread.interpret import Person, national_interval

    a = analytes()
    assert national_interval(a["WBC"], Person("male", 8)) is None          # children: not transcribed
    assert national_interval(a["CREA"], Person("male", 40), "jaffe") is None  # Jaffe values not confirmed
    assert national_interval(a["ALB"], Person("female", 70)) is None        # 60+ band not confirmed
    assert national_interval(a["TBIL"], Person("male", 85)) is None         # outside 20-79


def test_analyte_catalogue_is_consistent():
    seen_loinc = {}
    for a in analytes().values():
        assert a.name and a.what and a.high and a.low, a.key
        assert to_ucum(a.unit) == a.unit, a.key
        for code in a.loinc:
            assert re.match(r"^[0-9]{1,6}-[0-9]$", code), (a.key, code)
            assert code not in seen_loinc, (code, a.key, seen_loinc.get(code))
            seen_loinc[code] = a.key
        assert a.interval_key in analytes()


def test_critical_table_reads_and_rejects_unknown_items(tmp_path):
    table = read_critical_table()
    assert table["K"].high == 6.2 and table["K"].low == 2.8 and table["K"].unit == "mmol/L"
    bad = tmp_path / "c.csv"
    bad.write_text("key,low,high,unit,note\nNOPE,1,2,mmol/L,x\n", encoding="utf-8")
    with pytest.raises(ValueError):
        read_critical_table(bad)
