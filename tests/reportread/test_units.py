"""Units: UCUM through ucumvert, molar masses for mass <-> substance."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hutong.reportread.units import UnitError, convert, to_ucum


@pytest.mark.parametrize("value,src,dst,mm,expected", [
    (100, "mg/dL", "mmol/L", 180.156, 5.5507),      # glucose
    (200, "mg/dL", "mmol/L", 386.65, 5.1726),       # cholesterol
    (1.0, "mg/dL", "umol/L", 113.12, 88.40),        # creatinine
    (13.5, "g/dL", "g/L", None, 135.0),
    (5000, "/uL", "10*9/L", None, 5.0),
    (7.2, "×10^9/L", "10*9/L", None, 7.2),
    (4.5, "10^12/L", "10*12/L", None, 4.5),
    (88, "μmol/L", "umol/L", None, 88.0),
    (1.5, "mmol/l", "umol/L", None, 1500.0),
])
def test_conversions(value, src, dst, mm, expected):
    assert convert(value, src, dst, mm) == pytest.approx(expected, rel=1e-3)


@pytest.mark.parametrize("src,dst,mm", [("mmol/L", "mg/dL", None), ("furlong", "g/L", None), ("g/L", "10*9/L", 50.0)])
def test_unconvertible_units_say_so(src, dst, mm):
    with pytest.raises(UnitError):
        convert(1.0, src, dst, mm)


def test_report_spellings_become_ucum():
    assert to_ucum("×10^9/L") == "10*9/L" and to_ucum("10E12/L") == "10*12/L"
    assert to_ucum("IU/L") == "[IU]/L" and to_ucum("u/l") == "U/L" and to_ucum("μmol/L") == "umol/L"


@settings(max_examples=50, deadline=None)
@given(st.floats(min_value=0.01, max_value=1e4), st.sampled_from([180.156, 386.65, 113.12, 168.11]))
def test_mass_substance_round_trip(value, mm):
    back = convert(convert(value, "mg/dL", "mmol/L", mm), "mmol/L", "mg/dL", mm)
    assert back == pytest.approx(value, rel=1e-9)
