"""Resident ID numbers (GB 11643, ISO 7064 MOD 11-2) and unified social credit codes (GB 32100).

Pure functions shared by the simulator, the patient index and the health card.
"""

from __future__ import annotations

import re
from datetime import date

_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"
_ID18 = re.compile(r"^\d{17}[\dX]$")
_ID15 = re.compile(r"^\d{15}$")


def resident_id_check_char(first17: str) -> str:
    """The ISO 7064 MOD 11-2 check character for the first 17 digits of a resident ID."""
    if len(first17) != 17 or not first17.isdigit():
        raise ValueError("need exactly 17 digits")
    total = sum(int(c) * w for c, w in zip(first17, _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11]


def normalize_resident_id(value: str) -> str:
    """Strip spaces and upper-case the check character (residents type ``x`` too)."""
    return re.sub(r"\s+", "", value or "").upper()


def is_valid_resident_id(value: str) -> bool:
    """True for a well-formed 18-character resident ID with a real birth date and a correct check character."""
    value = normalize_resident_id(value)
    if not _ID18.match(value):
        return False
    if resident_id_check_char(value[:17]) != value[17]:
        return False
    return resident_id_birth_date(value) is not None


def resident_id_birth_date(value: str) -> date | None:
    """The birth date encoded in an 18- or 15-digit resident ID, or None if it is not a real date."""
    value = normalize_resident_id(value)
    try:
        if len(value) == 18:
            return date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
        if len(value) == 15:
            return date(1900 + int(value[6:8]), int(value[8:10]), int(value[10:12]))
    except ValueError:
        return None
    return None


def resident_id_sex(value: str) -> str | None:
    """``male`` or ``female`` from the sequence digit's parity (odd is male)."""
    value = normalize_resident_id(value)
    if len(value) == 18 and value[16].isdigit():
        return "male" if int(value[16]) % 2 else "female"
    if len(value) == 15 and value[14].isdigit():
        return "male" if int(value[14]) % 2 else "female"
    return None


def upgrade_resident_id(id15: str) -> str:
    """Convert an old 15-digit ID (issued before 1999) to its 18-digit form."""
    id15 = normalize_resident_id(id15)
    if not _ID15.match(id15):
        raise ValueError("not a 15-digit resident ID")
    first17 = id15[:6] + "19" + id15[6:]
    return first17 + resident_id_check_char(first17)


def make_resident_id(division: str, born: date, sequence: int, sex: str) -> str:
    """Build a valid 18-digit resident ID: division code, birth date, 3-digit sequence with sex parity."""
    if len(division) != 6 or not division.isdigit():
        raise ValueError("division code must be 6 digits")
    seq = sequence % 1000
    want_odd = sex == "male"
    if (seq % 2 == 1) != want_odd:
        seq = (seq + 1) % 1000 if seq < 999 else seq - 1
        if (seq % 2 == 1) != want_odd:
            seq = (seq + 1) % 1000
    first17 = f"{division}{born:%Y%m%d}{seq:03d}"
    return first17 + resident_id_check_char(first17)


def mask_resident_id(value: str) -> str:
    """Mask for logs and roles that do not need it: ``220102********1234``."""
    value = normalize_resident_id(value)
    if len(value) <= 10:
        return "*" * len(value)
    return value[:6] + "*" * (len(value) - 10) + value[-4:]


# --- unified social credit code (统一社会信用代码), GB 32100-2015 ---

USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"  # no I, O, S, V, Z
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_USCC = re.compile(r"^[0-9A-HJ-NPQRTUWXY]{2}\d{6}[0-9A-HJ-NPQRTUWXY]{10}$")


def uscc_check_char(first17: str) -> str:
    """The GB 32100 check character (mod 31) for the first 17 characters."""
    if len(first17) != 17:
        raise ValueError("need exactly 17 characters")
    total = 0
    for ch, w in zip(first17, _USCC_WEIGHTS, strict=True):
        idx = USCC_CHARS.find(ch)
        if idx < 0:
            raise ValueError(f"invalid character {ch!r}")
        total += idx * w
    return USCC_CHARS[(31 - total % 31) % 31]


def is_valid_uscc(value: str) -> bool:
    """True for a well-formed 18-character unified social credit code with a correct check character."""
    value = (value or "").strip().upper()
    if not _USCC.match(value):
        return False
    return uscc_check_char(value[:17]) == value[17]


def mask_phone(value: str) -> str:
    """``138****5678``."""
    digits = re.sub(r"\D", "", value or "")
    if len(digits) < 7:
        return "*" * len(digits)
    return digits[:3] + "*" * (len(digits) - 7) + digits[-4:]


def mask_name(value: str) -> str:
    """``张*`` / ``欧阳**``: keep the first character only (compound surnames keep one too)."""
    value = value or ""
    if not value:
        return ""
    return value[0] + "*" * max(1, len(value) - 1)


# --- organization code (组织机构代码), GB 11714-1997: the 9 characters inside a unified social credit code ---

_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)
_ORG_CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def gb11714_check_char(first8: str) -> str:
    """The GB 11714 check character (``0-9`` or ``X``) of an 8-character organization code body."""
    if len(first8) != 8:
        raise ValueError("need exactly 8 characters")
    total = sum(_ORG_CHARS.index(c) * w for c, w in zip(first8.upper(), _ORG_WEIGHTS, strict=True))
    c = 11 - total % 11
    return "X" if c == 10 else "0" if c == 11 else str(c)
