"""HL7 v2 lab results in: ``ORU^R01`` and ``OUL^R22`` to DiagnosticReport + Observations (+ Specimen).

Parsing is python-hl7's (``hl7.parse``, ``extract_field``: unescaping, repetitions, components);
this module only maps. One message is stored in one database transaction, or not at all:

- the character set is MSH-18 (``UNICODE UTF-8``, ``GB 18030-2000``/``GB18030``, ASCII, ``8859/1``),
  read before decoding; segments may end in CR, LF or CRLF;
- MSH-4 names the sending institution (an Organization id, or an identifier value in a component);
- PID-3 identifiers find the patient: a resident ID (type ``NNCHN``/``NI``/``CZ`` or a valid
  18-digit number) or the institution's record number (``MR``/``PI``/``PT``, system
  ``urn:hutong:mrn:{org}``); an unknown patient is created from PID so that the patient index
  links it to the person;
- ORU^R01: each OBR (with its OBX, SPM) is one DiagnosticReport; OUL^R22 groups by specimen (SPM,
  its own OBX, then the OBRs on it, which share its Specimen); a DiagnosticReport has: code OBR-4, time OBR-7 (else OBX-14 / MSH-7),
  issued OBR-22, status OBR-25, the report number OBR-3 (a resent or corrected report updates the
  one stored, it is not duplicated);
- OBX: value types NM, SN, ST, TX, FT, CE, CWE; units OBX-6, reference range OBX-7, abnormal flags
  OBX-8, status OBX-11, time OBX-14. Times without an offset are Asia/Shanghai.

The answer is an ACK in the message's own version: ``AA``; ``AE`` (a message that parses but
cannot be stored: unknown institution, bad value…) or ``AR`` (not a message, unsupported type,
encoding or version), with an ERR segment saying why. Refused messages are kept for review.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import hl7
from sqlalchemy import delete, insert

from hutong.china.ids import is_valid_resident_id
from hutong.core.clock import now_us
from hutong.core.errors import FhirError
from hutong.core.ids import ID_RE, new_id
from hutong.recognition.service import fetch
from hutong.recognition.tables import recognition_hl7_rejected, recognition_hl7_report

log = logging.getLogger("hutong.recognition.hl7v2")

RESIDENT = "urn:oid:2.16.156.10011.1.3"
MRN_PREFIX = "urn:hutong:mrn:"
REPORT_PREFIX = "urn:hutong:report:"
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
V2_0074 = "http://terminology.hl7.org/CodeSystem/v2-0074"
V2_0487 = "http://terminology.hl7.org/CodeSystem/v2-0487"
V3_INTERP = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
OBS_CAT = "http://terminology.hl7.org/CodeSystem/observation-category"
LOCAL_SYSTEM = "urn:hutong:hl7v2:"   # + institution + ":" + coding system name, for local codes

_SUPPORTED = {("ORU", "R01"), ("OUL", "R22")}
_CHARSETS = {"": "utf-8", "ASCII": "utf-8", "UNICODE UTF-8": "utf-8", "UTF-8": "utf-8", "GB 18030-2000": "gb18030",
             "GB18030": "gb18030", "GB 18030": "gb18030", "8859/1": "latin-1", "CNS 11643-1992": None}
_SYSTEMS = {"LN": LOINC, "LOINC": LOINC, "UCUM": UCUM, "SCT": "http://snomed.info/sct", "SNM": "http://snomed.info/sct",
            "I10": "http://hl7.org/fhir/sid/icd-10"}
_RESULT_STATUS = {"F": "final", "C": "corrected", "P": "preliminary", "R": "preliminary", "S": "preliminary",
                  "I": "registered", "X": "cancelled", "W": "entered-in-error", "D": "entered-in-error", "A": "amended"}
_REPORT_STATUS = {"F": "final", "C": "corrected", "P": "preliminary", "R": "preliminary", "S": "partial",
                  "I": "registered", "X": "cancelled", "A": "partial", "O": "registered"}
_FLAGS = {"H": "H", "L": "L", "HH": "HH", "LL": "LL", "N": "N", "A": "A", "AA": "AA", ">": "H", "<": "L",
          "POS": "POS", "NEG": "NEG", "S": "S", "R": "R", "I": "I", "U": "U", "D": "D", "B": "B", "W": "W"}
_DTM = re.compile(r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\.\d{1,4})?([+-]\d{4})?$")
_RANGE = re.compile(r"^\s*(-?\d+(?:\.\d+)?)\s*[-~～—]\s*(-?\d+(?:\.\d+)?)\s*$")
_ONE_SIDED = re.compile(r"^\s*(<=|>=|<|>|≤|≥)\s*(-?\d+(?:\.\d+)?)\s*$")
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


class Refused(Exception):
    """The message cannot be stored: ``code`` AE or AR, ``hl7_error`` (table 0357), where and why."""

    def __init__(self, code: str, why: str, *, hl7_error: str = "207", where: str = ""):
        super().__init__(why)
        self.code, self.why, self.hl7_error, self.where = code, why, hl7_error, where


@dataclass
class Outcome:
    """What happened to one message: the ACK (text), its code and what was stored."""

    ack: str
    code: str
    reports: list[str]
    patient: str | None = None
    error: str | None = None
    encoding: str = "utf-8"

    @property
    def ack_bytes(self) -> bytes:
        """The ACK in the message's own character set."""
        return self.ack.encode(self.encoding, errors="replace")


# -- decoding ---------------------------------------------------------------------------------

def decode(raw: bytes) -> tuple[str, str]:
    """The message as text in the character set MSH-18 names (segments ending in CR), and that set."""
    if not raw.startswith(b"MSH") or len(raw) < 8:
        raise Refused("AR", "not an HL7 v2 message (it must start with MSH)", hl7_error="100", where="MSH")
    sep = raw[3:4]
    first = re.split(rb"\r\n|\r|\n", raw, maxsplit=1)[0]
    fields = first.split(sep)
    charset = fields[17].decode("latin-1").split(raw[4:5].decode("latin-1"))[0].strip().upper() if len(fields) > 17 else ""
    encoding = _CHARSETS.get(charset)
    if encoding is None:
        raise Refused("AR", f"unsupported character set {charset[:30]!r} in MSH-18 (UTF-8, GB18030, ASCII, 8859/1)",
                      hl7_error="203", where="MSH^1^18")
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as exc:
        raise Refused("AR", f"the message is not valid {encoding} (MSH-18 says {charset or 'ASCII'}): byte {exc.start}",
                      hl7_error="203", where="MSH^1^18") from None
    return "\r".join(s for s in re.split(r"\r\n|\r|\n", text) if s.strip()), encoding


def parse(text: str) -> hl7.Message:
    """python-hl7's parse tree, or ``Refused`` AR."""
    try:
        msg = hl7.parse(text)
        msg.segment("MSH")
    except Exception as exc:  # the parser raises assorted errors on garbage
        raise Refused("AR", f"unparseable message ({type(exc).__name__})", hl7_error="100", where="MSH") from None
    return msg


def library_field(seg, f: int, rep: int = 1, comp: int = 1, sub: int = 1) -> str:
    """One value of a segment through python-hl7's ``extract_field`` (unescaped), '' when absent."""
    try:
        return str(seg.extract_field(1, f, rep, comp, sub) or "").strip()
    except (IndexError, KeyError, ValueError, AttributeError):
        return ""


def field(seg, f: int, rep: int = 1, comp: int = 1, sub: int = 1) -> str:
    """One value of a segment (unescaped), '' when absent.

    Read from python-hl7's parse tree directly (Field → Repetition → Component → subcomponent);
    ``extract_field`` costs about ten times more and a message asks for some 200 values. A value
    holding the escape character goes through ``extract_field`` for its unescaping."""
    try:
        v = seg[f]
    except IndexError:
        return ""
    if isinstance(v, str):
        value = v if rep == comp == sub == 1 else ""
    elif not v:
        return ""
    elif isinstance(v[0], str):  # a plain field: one repetition of one component
        value = v[0] if rep == comp == sub == 1 else ""
    else:
        if rep > len(v):
            return ""
        r = v[rep - 1]
        if isinstance(r, str):
            value = r if comp == sub == 1 else ""
        elif comp > len(r):
            return ""
        else:
            c = r[comp - 1]
            if isinstance(c, str):
                value = c if sub == 1 else ""
            else:
                value = c[sub - 1] if sub <= len(c) else ""
    if not isinstance(value, str):
        return library_field(seg, f, rep, comp, sub)
    if "\\" in value:
        return library_field(seg, f, rep, comp, sub)
    return value.strip()


def repetitions(seg, f: int) -> int:
    try:
        value = seg[f]
    except IndexError:
        return 0
    return len(value) if isinstance(value, list) else (1 if str(value) else 0)


# -- values -----------------------------------------------------------------------------------

def dtm(value: str, where: str) -> str | None:
    """An HL7 DTM as a FHIR dateTime; no offset means Asia/Shanghai. ``Refused`` AE when malformed."""
    if not value:
        return None
    m = _DTM.match(value)
    shown = "the value" if where.startswith("PID") else repr(value[:30])  # a birth date is personal data
    if not m or (m.group(4) and not m.group(3)):
        raise Refused("AE", f"{where}: {shown} is not an HL7 date/time", hl7_error="102", where=where)
    y, mo, d, hh, mi, ss, frac, tz = m.groups()
    if not mo:
        return y
    if not d:
        return f"{y}-{mo}"
    if not hh:
        return f"{y}-{mo}-{d}"
    tz = tz or "+0800"
    out = f"{y}-{mo}-{d}T{hh}:{mi or '00'}:{ss or '00'}{frac or ''}{tz[:3]}:{tz[3:]}"
    from hutong.search.values import date_range

    if date_range(out) is None:
        raise Refused("AE", f"{where}: {shown} is not a valid date/time", hl7_error="102", where=where)
    return out


def coding(seg, f: int, institution: str, rep: int = 1) -> list[dict]:
    """A CE/CWE field's codings (identifier^text^system, alternate identifier^text^system)."""
    out = []
    for base in (1, 4):
        code, text, system = (field(seg, f, rep, base + i) for i in range(3))
        if code:
            sys_url = _SYSTEMS.get(system.upper()) or f"{LOCAL_SYSTEM}{institution}:{system or 'L'}"
            c = {"system": sys_url, "code": code}
            if text:
                c["display"] = text
            out.append(c)
    return out


def _concept(seg, f: int, institution: str) -> dict | None:
    codings = coding(seg, f, institution)
    text = field(seg, f, 1, 2) or field(seg, f, 1, 5)
    if not codings and not text:
        return None
    cc: dict = {"coding": codings} if codings else {}
    if text:
        cc["text"] = text
    return cc


def _number(s: str, where: str) -> float:
    if not _NUMBER.match(s):
        raise Refused("AE", f"{where}: {s[:30]!r} is not a number", hl7_error="102", where=where)
    return float(s) if ("." in s or "e" in s.lower()) else int(s)


def _quantity(value, unit: dict | None, comparator: str | None = None) -> dict:
    q = {"value": value}
    if comparator:
        q["comparator"] = {"≤": "<=", "≥": ">="}.get(comparator, comparator)
    if unit:
        q.update(unit)
    return q


def _unit(seg, institution: str) -> dict | None:
    code, text, system = field(seg, 6, 1, 1), field(seg, 6, 1, 2), field(seg, 6, 1, 3)
    if not code and not text:
        return None
    out = {"unit": text or code}
    if code and (system.upper() in ("UCUM", "") or not system):
        out.update(system=UCUM, code=code)
    return out


def _reference_range(text: str, unit: dict | None) -> dict | None:
    if not text:
        return None
    m = _RANGE.match(text)
    if m:
        return {"low": _quantity(_number(m.group(1), "OBX-7"), unit), "high": _quantity(_number(m.group(2), "OBX-7"), unit),
                "text": text}
    m = _ONE_SIDED.match(text)
    if m:
        side = "high" if m.group(1) in ("<", "<=", "≤") else "low"
        return {side: _quantity(_number(m.group(2), "OBX-7"), unit), "text": text}
    return {"text": text}


def observation_value(seg, institution: str, where: str) -> dict:
    """The ``value[x]`` of an OBX (OBX-2 value type, OBX-5 value, OBX-6 units)."""
    vtype = field(seg, 2).upper()
    raw = field(seg, 5)
    if not raw and vtype not in ("CE", "CWE"):
        return {}
    unit = _unit(seg, institution)
    if vtype == "NM":
        return {"valueQuantity": _quantity(_number(raw, f"{where}-5"), unit)}
    if vtype == "SN":
        comp, n1, sep, n2 = (field(seg, 5, 1, i) for i in (1, 2, 3, 4))
        if sep in (":", "/") and n1 and n2:
            return {"valueRatio": {"numerator": {"value": _number(n1, f"{where}-5")},
                                   "denominator": {"value": _number(n2, f"{where}-5")}}}
        if sep in ("-",) and n1 and n2:
            return {"valueRange": {"low": _quantity(_number(n1, f"{where}-5"), unit),
                                   "high": _quantity(_number(n2, f"{where}-5"), unit)}}
        if n1 and not sep:
            if comp and comp not in ("<", ">", "<=", ">=", "="):
                raise Refused("AE", f"{where}-5: {comp[:5]!r} is not an SN comparator", hl7_error="102", where=f"{where}^5")
            return {"valueQuantity": _quantity(_number(n1, f"{where}-5"), unit, comp if comp not in ("", "=") else None)}
        raise Refused("AE", f"{where}-5: {raw[:30]!r} is not a structured numeric", hl7_error="102", where=f"{where}^5")
    if vtype in ("CE", "CWE", "CNE"):
        cc = _concept(seg, 5, institution)
        return {"valueCodeableConcept": cc} if cc else {}
    if vtype in ("ST", "TX", "FT"):
        reps = max(1, repetitions(seg, 5))
        text = "\n".join(v for v in (field(seg, 5, r) for r in range(1, reps + 1)) if v)
        return {"valueString": text[:10000]}
    raise Refused("AE", f"{where}-2: value type {vtype[:5]!r} is not supported (NM, SN, ST, TX, FT, CE, CWE)",
                  hl7_error="102", where=f"{where}^2")


# -- the message ------------------------------------------------------------------------------

def _institution(tx, msh) -> str:
    candidates = [field(msh, 4, 1, 1), field(msh, 4, 1, 2)]
    for value in candidates:
        if value and ID_RE.match(value):
            s = tx.read("Organization", value)
            if s is not None and not s.deleted:
                return value
    for value in candidates:
        if value:
            ids = tx.search_ids("Organization", [("identifier", value)], limit=2)
            if len(ids) == 1:
                return ids[0]
    raise Refused("AE", f"MSH-4: sending facility {candidates[0][:40]!r} is not a registered institution",
                  hl7_error="204", where="MSH^1^4")


def _patient_identifiers(pid, institution: str) -> list[dict]:
    out = []
    for r in range(1, repetitions(pid, 3) + 1):
        value, kind = field(pid, 3, r, 1), field(pid, 3, r, 5).upper()
        if not value:
            continue
        if kind in ("NNCHN", "NI", "CZ", "RRI") or (kind == "" and is_valid_resident_id(value)):
            out.append({"system": RESIDENT, "value": value.upper()})
        elif kind in ("MR", "PI", "PT", "PN", ""):
            out.append({"system": MRN_PREFIX + institution, "value": value[:64]})
    return out


def _patient(tx, pid, institution: str) -> tuple[str | None, dict | None]:
    """``(patient id, None)`` for a known patient, ``(None, new Patient)`` for one to create."""
    idents = _patient_identifiers(pid, institution)
    if not idents:
        raise Refused("AE", "PID-3: no resident ID or record number", hl7_error="101", where="PID^1^3")
    mrn = [i for i in idents if i["system"].startswith(MRN_PREFIX)]
    resident = [i for i in idents if i["system"] == RESIDENT]
    for ident in mrn + resident:
        # the patient index's identifier table (one key lookup), then the search index for records
        # the patient index has not indexed yet
        for (pid_,) in fetch(tx, _IDENT_SQL, (ident["system"], ident["value"])):
            s = tx.read("Patient", pid_)
            if s is not None and not s.deleted:
                return pid_, None
    for ident in mrn + resident:
        ids = tx.search_ids("Patient", [("identifier", f"{ident['system']}|{ident['value']}")], limit=20)
        if ids:
            return ids[0], None
    return None, _new_patient(pid, institution, idents)


def _new_patient(pid, institution: str, idents: list[dict]) -> dict:
    """A Patient from PID: identifiers, name, sex (PID-8), birth date (PID-7)."""
    patient: dict = {"resourceType": "Patient", "identifier": idents,
                     "managingOrganization": {"reference": f"Organization/{institution}"},
                     "meta": {"source": f"urn:hutong:org:{institution}"}}
    family, given = field(pid, 5, 1, 1), field(pid, 5, 1, 2)
    if family or given:
        patient["name"] = [{"text": f"{family}{given}", **({"family": family} if family else {}),
                            **({"given": [given]} if given else {})}]
    sex = {"M": "male", "F": "female", "O": "other", "U": "unknown"}.get(field(pid, 8).upper())
    if sex:
        patient["gender"] = sex
    birth = dtm(field(pid, 7), "PID-7")
    if birth:
        patient["birthDate"] = birth[:10]
    return patient


def _groups(msg, specimen_first: bool = False) -> list[tuple[object, list, list]]:
    """(OBR, [OBX…], [SPM…]) in message order.

    ORU^R01 puts a report's SPM after its OBR. OUL^R22 (``specimen_first``) groups by specimen:
    SPM, its own OBX (observations about the specimen), then the orders on it, each OBR with its
    OBX; every OBR of the group gets that specimen, and the specimen's own OBX are results of its
    first report (a specimen without an order has no report to carry them and is refused)."""
    groups: list[tuple[object, list, list]] = []
    if specimen_first:
        spm, pending, n = None, [], 0
        for seg in msg:
            name = str(seg[0])
            if name == "SPM":
                if spm is not None and pending:
                    raise Refused("AE", f"SPM[{n}]: observations of a specimen without an order (OBR)",
                                  hl7_error="100", where=f"SPM^{n}")
                spm, pending, n = seg, [], n + 1
            elif name == "OBR":
                groups.append((seg, pending, [spm] if spm is not None else []))
                pending = []
            elif name == "OBX":
                if groups and (spm is None or (groups[-1][2] and groups[-1][2][0] is spm)) and not pending:
                    groups[-1][1].append(seg)
                elif spm is not None:
                    pending.append(seg)
                else:
                    raise Refused("AE", "OBX before any SPM or OBR", hl7_error="100", where="OBX")
        if pending:
            raise Refused("AE", f"SPM[{n}]: observations of a specimen without an order (OBR)", hl7_error="100",
                          where=f"SPM^{n}")
        return groups
    for seg in msg:
        name = str(seg[0])
        if name == "OBR":
            groups.append((seg, [], []))
        elif name == "OBX" and groups:
            groups[-1][1].append(seg)
        elif name == "SPM" and groups:
            groups[-1][2].append(seg)
        elif name == "OBX":
            raise Refused("AE", "OBX before any OBR", hl7_error="100", where="OBX")
    return groups


def _report_number(obr) -> str:
    return field(obr, 3, 1, 1) or field(obr, 2, 1, 1)


def _existing_report(tx, obr, institution: str) -> tuple[str | None, list[str]]:
    """The stored report with this OBR's report number (a resend or a correction) and its results."""
    rows = fetch(tx, _REPORT_SQL, (institution, _report_number(obr)[:64]))
    if not rows:
        return None, []
    s = tx.read("DiagnosticReport", rows[0][0])
    if s is None or s.deleted:  # deleted through FHIR since: the resend is a new report
        return None, []
    return rows[0][0], [(r.get("reference") or "").split("/", 1)[-1] for r in (s.resource.get("result") or [])]


_IDENT_SQL = "SELECT patient_id FROM mpi_ident WHERE system = ? AND value = ?"
_REPORT_SQL = "SELECT report_id FROM recognition_hl7_report WHERE institution = ? AND number = ?"


def _remember_reports(tx, institution: str, groups, report_ids: list[str]) -> None:
    t = recognition_hl7_report.c
    ts = now_us()
    for (obr, _o, _s), rid in zip(groups, report_ids, strict=True):
        number = _report_number(obr)[:64]
        tx.conn.execute(delete(recognition_hl7_report).where(t.institution == institution, t.number == number))
        tx.conn.execute(insert(recognition_hl7_report).values(institution=institution, number=number, report_id=rid,
                                                              ts_us=ts))


def _references_checked(tx, prepared) -> None:
    """Check every reference of the message's new resources in one query per type (they name the
    patient, the institution and each other), instead of one round trip per resource."""
    own = {(kind, res["id"]) for kind, res, _p in prepared}
    wanted: dict = {}
    for _kind, _res, p in prepared:
        if p is not None:
            wanted.update({k: v for k, v in p.wanted.items() if k not in own})
    found = tx.existing(set(wanted))
    for key in wanted:
        if key not in found:
            raise FhirError(400, "not-found", f"reference {key[0]}/{key[1]} does not resolve to an existing resource")
    tx.will_exist |= found | own


def _build_group(obr, obxs, spms, *, patient: str, institution: str, msh_time: str | None, n: int,
                 existing: str | None, old_results: list[str],
                 specimens: dict | None = None) -> list[tuple[str, str, dict, bool]]:
    """The resources of one OBR group as ``(type, id, resource, replaces_a_stored_one)``.
    ``specimens`` (SPM segment id → Specimen reference) makes the orders on one specimen share it."""
    out: list[tuple[str, str, dict, bool]] = []
    where = f"OBR[{n}]"
    code = _concept(obr, 4, institution)
    if code is None:
        raise Refused("AE", f"{where}-4: the universal service identifier is empty", hl7_error="101", where=f"OBR^{n}^4")
    number = _report_number(obr)
    if not number:
        raise Refused("AE", f"{where}-3: a filler order number (report number) is required", hl7_error="101",
                      where=f"OBR^{n}^3")
    effective = dtm(field(obr, 7), f"{where}-7") or msh_time
    issued_raw = dtm(field(obr, 22), f"{where}-22")
    status = _REPORT_STATUS.get(field(obr, 25).upper() or "F")
    if status is None:
        raise Refused("AE", f"{where}-25: unknown result status {field(obr, 25)[:5]!r}", hl7_error="103",
                      where=f"OBR^{n}^25")
    meta = {"source": f"urn:hutong:org:{institution}"}
    subject = {"reference": f"Patient/{patient}"}
    performer = [{"reference": f"Organization/{institution}"}]
    ident = {"system": REPORT_PREFIX + institution, "value": number[:64]}
    specimen_ref = None
    for spm in spms[:1]:
        if specimens is not None and id(spm) in specimens:
            specimen_ref = specimens[id(spm)]
            break
        stype = _concept(spm, 4, institution)
        if stype:
            sid = new_id()
            spec = {"resourceType": "Specimen", "id": sid, "meta": meta, "subject": subject, "type": stype}
            collected = dtm(field(spm, 17, 1, 1), "SPM-17")
            if collected:
                spec["collection"] = {"collectedDateTime": collected}
            out.append(("Specimen", sid, spec, False))
            specimen_ref = {"reference": f"Specimen/{sid}"}
            if specimens is not None:
                specimens[id(spm)] = specimen_ref
    if specimen_ref is None and field(obr, 15, 1, 1):  # OBR-15 specimen source (up to v2.6)
        sid = new_id()
        stype = {"coding": coding(obr, 15, institution)} if coding(obr, 15, institution) else {"text": field(obr, 15)}
        out.append(("Specimen", sid, {"resourceType": "Specimen", "id": sid, "meta": meta, "subject": subject,
                                      "type": stype}, False))
        specimen_ref = {"reference": f"Specimen/{sid}"}
    results = []
    for i, obx in enumerate(obxs):
        w = f"OBX[{field(obx, 1) or i + 1}]"
        ocode = _concept(obx, 3, institution)
        if ocode is None:
            raise Refused("AE", f"{w}-3: the observation identifier is empty", hl7_error="101", where=f"OBX^{i + 1}^3")
        ostatus = _RESULT_STATUS.get(field(obx, 11).upper() or "F")
        if ostatus is None:
            raise Refused("AE", f"{w}-11: unknown result status {field(obx, 11)[:5]!r}", hl7_error="103",
                          where=f"OBX^{i + 1}^11")
        obs = {"resourceType": "Observation", "meta": meta, "status": ostatus,
               "category": [{"coding": [{"system": OBS_CAT, "code": "laboratory"}]}],
               "code": ocode, "subject": subject, "performer": performer}
        obs_time = dtm(field(obx, 14), f"{w}-14") or effective
        if obs_time:
            obs["effectiveDateTime"] = obs_time
        obs.update(observation_value(obx, institution, w))
        rr = _reference_range(field(obx, 7), _unit(obx, institution))
        if rr:
            obs["referenceRange"] = [rr]
        flags = [f for f in (field(obx, 8, r) for r in range(1, max(1, repetitions(obx, 8)) + 1)) if f]
        if flags:
            obs["interpretation"] = [{"coding": [{"system": V3_INTERP, "code": _FLAGS.get(f.upper(), f[:8])}]}
                                     for f in flags if f.upper() in _FLAGS] or [{"text": ",".join(flags)[:100]}]
        if specimen_ref:
            obs["specimen"] = specimen_ref
        reuse = i < len(old_results) and bool(ID_RE.match(old_results[i] or ""))
        oid = old_results[i] if reuse else new_id()
        obs["id"] = oid
        out.append(("Observation", oid, obs, reuse))
        results.append({"reference": f"Observation/{oid}"})
    rid = existing or new_id()
    report = {"resourceType": "DiagnosticReport", "id": rid, "meta": meta, "identifier": [ident], "status": status,
              "category": [{"coding": [{"system": V2_0074, "code": field(obr, 24) or "LAB"}]}],
              "code": code, "subject": subject, "performer": performer, "result": results}
    if effective:
        report["effectiveDateTime"] = effective
    if issued_raw and len(issued_raw) > 10:
        report["issued"] = issued_raw
    if specimen_ref:
        report["specimen"] = [specimen_ref]
    out.append(("DiagnosticReport", rid, report, existing is not None))
    return out


class _Changed(Exception):
    """What the read phase found changed before the write lock was taken (a concurrent sender)."""


def _plan(tx, msh, pid, groups, msh_time) -> tuple[str, str | None, dict | None, list]:
    institution = _institution(tx, msh)
    patient_id, new_patient = _patient(tx, pid, institution)
    if new_patient is not None:
        patient_id = new_id()
        new_patient["id"] = patient_id
    built = []
    specimens: dict = {}
    for i, (obr, obxs, spms) in enumerate(groups):
        existing, old = _existing_report(tx, obr, institution)
        built.append((existing, _build_group(obr, obxs, spms, patient=patient_id, institution=institution,
                                             msh_time=msh_time, n=i + 1, existing=existing, old_results=old,
                                             specimens=specimens)))
    return institution, patient_id, new_patient, built


def _store(store, tenant, msh, pid, groups, msh_time) -> tuple[str, list[str]]:
    """Store the message's resources; the CPU work (validation, index rows) is done before the write
    lock, and what the plan relied on is checked again under it."""
    with store.read() as tx:
        institution, patient_id, new_patient, built = _plan(tx, msh, pid, groups, msh_time)
    ts = now_us()
    prepared = []
    if new_patient is not None:
        prepared.append(("Patient", new_patient, store.prepare(new_patient, "Patient", patient_id, 1, ts)))
    for _existing, resources in built:
        for kind, rid, res, replaces in resources:
            prepared.append((kind, res, None if replaces else store.prepare(res, kind, rid, 1, ts)))
    try:
        with store.write(tenant) as tx:
            if new_patient is not None and _patient(tx, pid, institution)[0] is not None:
                raise _Changed()
            for (obr, _o, _s), (existing, _r) in zip(groups, built, strict=True):
                if _existing_report(tx, obr, institution)[0] != existing:
                    raise _Changed()
            _references_checked(tx, prepared)
            for kind, res, p in prepared:
                if p is not None:
                    tx.create(res, prepared=p)
                else:
                    tx.update(kind, res["id"], res)
            _remember_reports(tx, institution, groups, [resources[-1][1] for _e, resources in built])
    except _Changed:
        # someone stored the same patient or report meanwhile: plan again under the lock
        with store.write(tenant) as tx:
            institution, patient_id, new_patient, built = _plan(tx, msh, pid, groups, msh_time)
            if new_patient is not None:
                tx.update("Patient", patient_id, new_patient)
            for _existing, resources in built:
                for kind, rid, res, _replaces in resources:
                    tx.update(kind, rid, res)
            _remember_reports(tx, institution, groups, [resources[-1][1] for _e, resources in built])
    return patient_id, [resources[-1][1] for _e, resources in built]


def ack_text(msg: hl7.Message | None, code: str, refused: Refused | None = None) -> str:
    """The ACK for a message (its own version and trigger), with an ERR segment when refused."""
    control = new_id().replace("-", "")[:20]
    ack = None
    version = "2.5"
    if msg is not None:
        msh = msg.segment("MSH")
        version = field(msh, 12) or "2.5"
        try:
            ack = str(msg.create_ack(code, message_id=control, application="HUTONG", facility="HUTONG")).rstrip("\r")
        except (IndexError, KeyError, ValueError):  # an MSH too short for the library's ACK
            ack = (f"MSH|^~\\&|HUTONG|HUTONG|{_escape(field(msh, 3))}|{_escape(field(msh, 4))}|{_now_dtm()}||ACK|"
                   f"{control}|P|{_escape(version)}\rMSA|{code}|{_escape(field(msh, 10))}")
    if ack is None:
        # not even an MSH to answer from: the minimal ACK of the current version
        ack = f"MSH|^~\\&|HUTONG|HUTONG|||{_now_dtm()}||ACK|{control}|P|2.5\rMSA|{code}|"
    if refused is not None:
        why = _escape(refused.why)[:200]
        if _version_tuple(version) >= (2, 5):
            ack += f"\rERR||{refused.where}|{refused.hl7_error}^{_ERROR_TEXT.get(refused.hl7_error, 'Application error')}^HL70357|E||||{why}"
        else:
            ack += f"\rERR|{refused.where}^{refused.hl7_error}&{why}"
    return ack + "\r"


_ERROR_TEXT = {"100": "Segment sequence error", "101": "Required field missing", "102": "Data type error",
               "103": "Table value not found", "200": "Unsupported message type", "203": "Unsupported version id",
               "204": "Unknown key identifier", "207": "Application internal error"}


def _escape(s: str) -> str:
    return (s.replace("\\", "\\E\\").replace("|", "\\F\\").replace("^", "\\S\\").replace("&", "\\T\\")
            .replace("~", "\\R\\").replace("\r", " ").replace("\n", " "))


def _version_tuple(v: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in v.split(".")[:2])
    except ValueError:
        return (2, 5)


def _now_dtm() -> str:
    from hutong.core.clock import local_time

    return local_time(now_us(), "%Y%m%d%H%M%S") + "+0800"


def _checked(msg: hl7.Message) -> tuple[object, object, list, str | None]:
    """Check a parsed message: ``(MSH, PID, groups, MSH-7)``; ``Refused`` when it is not an
    ORU^R01 / OUL^R22 this module can map."""
    msh = msg.segment("MSH")
    kind, trigger = field(msh, 9, 1, 1).upper(), field(msh, 9, 1, 2).upper()
    if (kind, trigger) not in _SUPPORTED:
        raise Refused("AR", f"MSH-9: {kind}^{trigger} is not accepted here (ORU^R01, OUL^R22)",
                      hl7_error="200", where="MSH^1^9")
    version = field(msh, 12)
    if not re.fullmatch(r"2\.[1-9](\.\d+)?", version):
        raise Refused("AR", f"MSH-12: version {version[:10]!r} is not HL7 v2.1–2.9", hl7_error="203", where="MSH^1^12")
    if not field(msh, 10):
        raise Refused("AR", "MSH-10: the message control id is required", hl7_error="101", where="MSH^1^10")
    msh_time = dtm(field(msh, 7), "MSH-7")
    try:
        pid = msg.segment("PID")
    except KeyError:
        raise Refused("AE", "no PID segment", hl7_error="100", where="PID") from None
    groups = _groups(msg, specimen_first=(kind, trigger) == ("OUL", "R22"))
    if not groups:
        raise Refused("AE", "no OBR segment: nothing to store", hl7_error="100", where="OBR")
    return msh, pid, groups, msh_time


def to_bundle(raw: bytes) -> dict:
    """An ORU^R01 / OUL^R22 message as a FHIR ``collection`` Bundle — the Patient (from PID), each
    OBR's DiagnosticReport with its Observations (+ Specimen) — mapped exactly as ``receive`` maps
    what it stores, but without a store: nothing is looked up or written (report interpretation).
    ``FhirError`` 400 (OperationOutcome) saying why for a message that cannot be mapped."""
    try:
        msh, pid, groups, msh_time = _checked(parse(decode(raw)[0]))
        institution = field(msh, 4, 1, 1) or field(msh, 4, 1, 2) or "unknown"
        if not ID_RE.match(institution):
            institution = "unknown"
        idents = _patient_identifiers(pid, institution)
        patient = _new_patient(pid, institution, idents)
        patient["id"] = new_id()
        resources = [patient]
        specimens: dict = {}
        for i, (obr, obxs, spms) in enumerate(groups):
            resources += [res for _k, _id, res, _r in _build_group(
                obr, obxs, spms, patient=patient["id"], institution=institution, msh_time=msh_time, n=i + 1,
                existing=None, old_results=[], specimens=specimens)]
    except Refused as exc:
        where = [exc.where] if exc.where else []
        raise FhirError(400, "structure" if exc.code == "AR" else "value",
                        f"HL7 v2 报文无法解读 / the HL7 v2 message cannot be read: {exc.why}", *where) from None
    return {"resourceType": "Bundle", "type": "collection",
            "entry": [{"fullUrl": f"{r['resourceType']}/{r['id']}", "resource": r} for r in resources]}


def receive(store, raw: bytes, *, via: str = "http", tenant: str | None = None) -> Outcome:
    """Store one HL7 v2 message (all of it or none) and answer its ACK."""
    msg = None
    text = raw.decode("latin-1")
    encoding = "utf-8"
    try:
        text, encoding = decode(raw)
        msg = parse(text)
        msh, pid, groups, msh_time = _checked(msg)
        try:
            patient, reports = _store(store, tenant, msh, pid, groups, msh_time)
        except FhirError as exc:  # the mapped resources failed FHIR validation or a reference check
            raise Refused("AE", f"the results could not be stored: {exc.diagnostics[:160]}", hl7_error="207") from None
        return Outcome(ack_text(msg, "AA"), "AA", reports, patient, encoding=encoding)
    except Exception as exc:  # never a crash for the sender: an AE, nothing stored
        if isinstance(exc, Refused):
            refused = exc
        else:
            log.exception("hl7v2: unexpected failure while storing a message")
            refused = Refused("AE", "internal error while storing the results; nothing was stored", hl7_error="207")
        ack = ack_text(msg, refused.code, refused)
        _keep(store, via, msg, text, refused)
        log.info("hl7v2 %s refused (%s): %s", via, refused.code, refused.why)
        return Outcome(ack, refused.code, [], None, refused.why, encoding)


def _keep(store, via: str, msg, text: str, refused: Refused) -> None:
    control = sender = None
    if msg is not None:
        msh = msg.segment("MSH")
        control, sender = field(msh, 10)[:64] or None, field(msh, 4)[:128] or None
    try:
        with store.write() as tx:
            tx.conn.execute(insert(recognition_hl7_rejected).values(
                id=new_id(), ts_us=now_us(), via=via, control_id=control, sender=sender, code=refused.code,
                error=refused.why[:2000], message=text[:1_000_000].replace("\x00", "\\x00")))
    except Exception:  # keeping a copy must never turn a NAK into a crash
        log.exception("hl7v2: could not keep the refused message")
