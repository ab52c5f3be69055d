"""Identity documents other than the mainland resident ID, recognised, validated and typed as FHIR identifiers.

- 港澳台居民居住证 (residence permit for Hong Kong, Macau and Taiwan residents, 2018): 18 characters like a resident
  ID — MOD 11-2 check, birth date in positions 7–14, sex in the 17th — but with the "division" 810000 (HK), 820000
  (Macau) or 830000 (Taiwan), which is no GB/T 2260 county: a division-prefix check would call it a typo.
- 外国人永久居留身份证 (foreign permanent-residence ID card): the 2023 version is 18 characters led by 9 (the
  identity mark of a foreigner; residents' IDs start 1–8), MOD 11-2 check, birth date in positions 7–14 (National
  Immigration Administration, 新版外国人永久居留身份证机读信息规则, 2023). The 2017 version is 15 characters: three
  Latin letters (nationality) and twelve digits, with the birth date as YYMMDD in positions 6–11; its check
  character's algorithm is not published in a source available here, so only the structure and the date are
  checked.
- 港澳居民来往内地通行证 (回乡证): H (Hong Kong) or M (Macau) and 8 digits (the 2013 card; 10 digits on older
  booklets); 台湾居民来往大陆通行证 (台胞证): 8 digits (the 2015 card; older booklets 10 characters). No check
  character is defined for either.
- Passports: the issuing country (ISO 3166 alpha-3) and the number; the FHIR system is the registry's
  ``http://hl7.org/fhir/sid/passport-{country}``. Chinese ordinary passports are E + 8 digits or E + a letter + 7
  digits (G + 8 digits before 2012); the MRZ check digits belong to the machine-readable zone, not the number.

Matching uses them as follows: the 18-character documents carry a birth date and a check character exactly like a
resident ID, so they are compared as the ID (field ``id``); the others become the ``identifier`` field as
``kind:value`` so two records agree only on the same document, never because two numbers of different documents
happen to be equal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from hutong.china import ids

V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
_SID = "https://hutong.example/fhir/sid"
RESIDENT_ID_SYSTEM = "urn:oid:2.16.156.10011.1.3"


@dataclass(frozen=True)
class DocumentKind:
    """One kind of identity document: its FHIR system, HL7 v2 identifier type and names."""

    code: str
    system: str
    v2_type: str
    zh: str
    en: str


KINDS: dict[str, DocumentKind] = {k.code: k for k in (
    DocumentKind("resident-id", RESIDENT_ID_SYSTEM, "NNCHN", "居民身份证", "resident identity card"),
    DocumentKind("hmt-residence-permit", f"{_SID}/hmt-residence-permit", "NNCHN", "港澳台居民居住证",
                 "residence permit for Hong Kong, Macau and Taiwan residents"),
    DocumentKind("foreign-permanent-residence", f"{_SID}/foreign-permanent-residence", "PRC",
                 "外国人永久居留身份证", "foreign permanent-residence ID card"),
    DocumentKind("hk-macau-permit", f"{_SID}/hk-macau-permit", "PPN", "港澳居民来往内地通行证",
                 "mainland travel permit for Hong Kong and Macau residents"),
    DocumentKind("taiwan-permit", f"{_SID}/taiwan-permit", "PPN", "台湾居民来往大陆通行证",
                 "mainland travel permit for Taiwan residents"),
    DocumentKind("passport", "http://hl7.org/fhir/sid/passport-", "PPN", "护照", "passport"),
)}

HMT_PREFIXES = {"810000": "HK", "820000": "MO", "830000": "TW"}
_ID18 = re.compile(r"^\d{17}[\dX]$")
_FPR15 = re.compile(r"^[A-Z]{3}\d{12}$")
_HKM = re.compile(r"^[HM](\d{8}|\d{10})$")
_TW = re.compile(r"^(\d{8}|\d{10}|\d{7}[A-Z0-9]{3})$")
_CHN_PASSPORT = re.compile(r"^(E\d{8}|E[A-HJ-NP-Z]\d{7}|[GDSP]\d{8}|[DSP]E\d{7})$")
_PASSPORT = re.compile(r"^[A-Z0-9]{5,20}$")
_COUNTRY = re.compile(r"^[A-Z]{3}$")


@dataclass(frozen=True)
class Document:
    """A recognised identity document: kind, normalised number, and what the number itself says."""

    kind: str
    value: str
    country: str = ""  # passports: issuing country; HMT permits: HK / MO / TW
    birth_date: date | None = None

    @property
    def system(self) -> str:
        k = KINDS[self.kind]
        return k.system + self.country if self.kind == "passport" else k.system

    @property
    def id_like(self) -> bool:
        """Compared as the resident ID (18 characters, MOD 11-2, birth date and sex inside)."""
        return len(self.value) == 18 and self.kind in ("resident-id", "hmt-residence-permit",
                                                        "foreign-permanent-residence")

    def match_key(self) -> str:
        """The ``identifier`` feature value: document kind and number (country for passports)."""
        return f"{self.kind}:{self.country + ':' if self.kind == 'passport' else ''}{self.value}"


def normalize_number(value: str) -> str:
    """Upper-case, full-width folded, without spaces, hyphens, brackets or dots (desks type them all)."""
    v = (value or "").translate({c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F)})
    return re.sub(r"[\s\-\(\)（）.·/]", "", v).upper()


def _mod11_ok(v: str) -> bool:
    return bool(_ID18.match(v)) and ids.resident_id_check_char(v[:17]) == v[17]


def _birth18(v: str) -> date | None:
    try:
        return date(int(v[6:10]), int(v[10:12]), int(v[12:14]))
    except ValueError:
        return None


def _birth_yymmdd(s: str) -> date | None:
    yy, mm, dd = int(s[:2]), int(s[2:4]), int(s[4:6])
    for century in (2000, 1900):  # the later century unless that puts the birth in the future
        try:
            d = date(century + yy, mm, dd)
        except ValueError:
            return None
        if d <= date.today():
            return d
    return None


def classify(value: str, *, kind: str = "", country: str = "") -> Document | None:
    """The document a number is, or None when it is not a valid one.

    ``kind`` (a :data:`KINDS` code, e.g. from the identifier's system or type) narrows the check to that
    document; without it the number's own form decides among the self-checking 18-character documents
    and the 15-character permanent-residence card (travel permits and passports need ``kind``: their forms
    overlap)."""
    v = normalize_number(value)
    if kind in ("", "resident-id", "hmt-residence-permit", "foreign-permanent-residence") and len(v) == 18:
        if not _mod11_ok(v) or _birth18(v) is None:
            return None
        if v[:6] in HMT_PREFIXES:
            got = "hmt-residence-permit"
        elif v[0] == "9":
            got = "foreign-permanent-residence"
        else:
            got = "resident-id"
        if kind and kind != got:
            return None
        return Document(got, v, HMT_PREFIXES.get(v[:6], ""), _birth18(v))
    if kind in ("", "foreign-permanent-residence") and _FPR15.match(v):
        born = _birth_yymmdd(v[5:11])
        return Document("foreign-permanent-residence", v, v[:3], born) if born else None
    if kind == "resident-id" and len(v) == 15 and v.isdigit() and ids.resident_id_birth_date(v):
        up = ids.upgrade_resident_id(v)
        return Document("resident-id", up, "", ids.resident_id_birth_date(up))
    if kind == "hk-macau-permit" and _HKM.match(v):
        return Document(kind, v, "HK" if v[0] == "H" else "MO")
    if kind == "taiwan-permit" and _TW.match(v):
        return Document(kind, v, "TW")
    if kind == "passport":
        c = normalize_number(country)
        if not _COUNTRY.match(c) or not _PASSPORT.match(v):
            return None
        if c == "CHN" and not _CHN_PASSPORT.match(v):
            return None
        return Document(kind, v, c)
    return None


def kind_of_identifier(ident: dict) -> tuple[str, str]:
    """(document kind, passport country) that a FHIR Identifier declares by its system or type; ("", "")
    when it declares none of :data:`KINDS`."""
    system = str(ident.get("system") or "")
    if system.startswith(KINDS["passport"].system):
        return "passport", system[len(KINDS["passport"].system):].upper()
    for k in KINDS.values():
        if k.code != "passport" and system == k.system:
            return k.code, ""
    codes = {str(c.get("code")) for c in ((ident.get("type") or {}).get("coding") or []) if isinstance(c, dict)}
    if "PPN" in codes:
        assigner = ((ident.get("assigner") or {}).get("identifier") or {}).get("value") or ""
        return "passport", str(assigner).upper()
    if "PRC" in codes:
        return "foreign-permanent-residence", ""
    return "", ""


def to_identifier(doc: Document) -> dict:
    """The FHIR R4 Identifier for a recognised document (official use, v2-0203 type, Chinese and English text)."""
    k = KINDS[doc.kind]
    return {"use": "official",
            "type": {"coding": [{"system": V2_0203, "code": k.v2_type}], "text": k.zh},
            "system": doc.system, "value": doc.value}


def from_patient(patient: dict) -> list[Document]:
    """Every valid identity document on a Patient (in the order given; invalid ones left out)."""
    out = []
    for ident in patient.get("identifier") or []:
        if not isinstance(ident, dict) or not isinstance(ident.get("value"), str):
            continue
        kind, country = kind_of_identifier(ident)
        if not kind and str(ident.get("system") or "").startswith("urn:hutong:"):
            continue  # the platform's own identifiers (MRN, card numbers) are no identity documents
        # undeclared kind: the number's own form may still say (the self-checking 18-character documents)
        doc = classify(ident["value"], kind=kind, country=country)
        if doc is not None:
            out.append(doc)
    return out
