"""Format checks for the code systems and identifiers the province requires (pure functions).

- LOINC codes end in a mod-10 check digit (the Luhn algorithm, as LOINC's users' guide describes).
- ICD-10 codes: a letter, two digits, optionally a dot and up to four more characters; the national
  clinical editions (国家临床版, 北京临床版) extend WHO's 4 characters with ``x`` and 2–3 more digits
  (``I10.x00``, ``A00.001``), which is accepted.
- 民族 (GB/T 3304-1991): 01–56, plus 97 (其他未识别民族) and 98 (外国血统中国籍人士).
- Division codes (GB/T 2260 and the statistical 12-digit codes): known to ``hutong.china.divisions``.
"""

from __future__ import annotations

import re

from hutong.china import divisions

LOINC_SYSTEM = "http://loinc.org"
ICD10_SYSTEMS = frozenset({"http://hl7.org/fhir/sid/icd-10", "http://hl7.org/fhir/sid/icd-10-cn",
                           "urn:oid:2.16.156.10011.2.3.3.11"})
UCUM_SYSTEM = "http://unitsofmeasure.org"

_LOINC = re.compile(r"^(\d{1,7})-(\d)$")
_ICD10 = re.compile(r"^[A-Z]\d[0-9A-Z](\.[0-9Xx][0-9A-Za-z]{0,4})?[+*†]?$")
ETHNICITY_CODES = frozenset([f"{n:02d}" for n in range(1, 57)] + ["97", "98"])


def loinc_check_digit(number: str) -> int:
    """The check digit of a LOINC code's number part (``"2345"`` → 7)."""
    total = 0
    for i, ch in enumerate(reversed(number)):
        d = int(ch)
        if i % 2 == 0:  # the rightmost digit and every second one after it are doubled
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return (10 - total % 10) % 10


def is_valid_loinc(code: str) -> bool:
    """True for ``NNNNN-C`` with the right check digit (``2345-7``)."""
    m = _LOINC.match(code or "")
    return bool(m) and loinc_check_digit(m.group(1)) == int(m.group(2))


def is_valid_icd10(code: str) -> bool:
    """True for a well-formed ICD-10 code, national clinical-edition extensions included."""
    return bool(_ICD10.match((code or "").strip()))


def is_valid_ethnicity(code: str) -> bool:
    """True for a GB/T 3304 ethnic-group code."""
    return code in ETHNICITY_CODES


def is_valid_division(code: str) -> bool:
    """True for a division code the platform knows: every level in Jilin (to 12-digit villages), and
    counties (6 digits) or above elsewhere (a 12-digit code outside Jilin is judged by its county)."""
    code = (code or "").strip()
    if not code.isdigit():
        return False
    if divisions.is_known_division(code):
        return True
    if code.startswith("22"):
        return False
    return len(code) in (9, 12) and divisions.is_known_division(code[:6])
