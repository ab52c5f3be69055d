"""Collect a report's results and patient from what a client sends: a Bundle (with its
DiagnosticReport, Observations and optionally the Patient), a DiagnosticReport with contained
Observations, or a reference to a stored DiagnosticReport."""

from __future__ import annotations

from dataclasses import dataclass, field

from hutong.core.errors import FhirError, bad_request
from hutong.core.ids import ID_RE
from hutong.reportread.catalog import Critical
from hutong.reportread.interpret import Person, interpret_observation, person_from, summarize


@dataclass
class Report:
    observations: list[dict]
    patient: dict | None = None
    report: dict | None = None
    extra: dict = field(default_factory=dict)


def _ref_key(ref: str) -> str:
    return ref.split("/_history", 1)[0].rstrip("/").split("/", -1)[-2] + "/" + ref.rstrip("/").split("/")[-1] \
        if "/" in ref else ref


def _expand(obs: list[dict], lookup) -> list[dict]:
    """Panels (an Observation with hasMember and no value) are replaced by their members."""
    out = []
    for o in obs:
        members = o.get("hasMember") or []
        if members and not any(k.startswith("value") for k in o):
            for m in members:
                ref = (m or {}).get("reference", "")
                found = lookup(ref)
                if found is not None:
                    out.append(found)
        else:
            out.append(o)
    return out


def from_bundle(bundle: dict) -> Report:
    entries = [e for e in bundle.get("entry") or [] if isinstance(e, dict) and isinstance(e.get("resource"), dict)]
    by_ref: dict[str, dict] = {}
    for e in entries:
        r = e["resource"]
        if isinstance(e.get("fullUrl"), str):
            by_ref[e["fullUrl"]] = r
        if r.get("id"):
            by_ref[f"{r.get('resourceType')}/{r['id']}"] = r
    reports = [e["resource"] for e in entries if e["resource"].get("resourceType") == "DiagnosticReport"]
    patients = [e["resource"] for e in entries if e["resource"].get("resourceType") == "Patient"]

    def lookup(ref: str):
        return by_ref.get(ref) or by_ref.get(_ref_key(ref)) if ref else None

    if reports:
        rep = reports[0]
        obs = [lookup((r or {}).get("reference", "")) for r in rep.get("result") or []]
        obs = [o for o in obs if o is not None and o.get("resourceType") == "Observation"]
        subject = (rep.get("subject") or {}).get("reference", "")
        patient = lookup(subject) or (patients[0] if patients else None)
    else:
        rep = None
        obs = [e["resource"] for e in entries if e["resource"].get("resourceType") == "Observation"]
        patient = patients[0] if patients else None
    if not obs:
        raise bad_request("Bundle 中没有检验结果（Observation）/ the Bundle holds no Observation results")
    return Report(_expand(obs, lookup), patient, rep)


def from_report(report: dict) -> Report:
    contained = {f"#{r.get('id')}": r for r in report.get("contained") or [] if isinstance(r, dict)}
    obs = [contained.get((r or {}).get("reference", "")) for r in report.get("result") or []]
    obs = [o for o in obs if o is not None and o.get("resourceType") == "Observation"]
    patient = next((r for r in contained.values() if r.get("resourceType") == "Patient"), None)
    if not obs:
        raise bad_request("DiagnosticReport 须内含其 Observation（contained），或以 Bundle 发送 / "
                          "send the DiagnosticReport with contained Observations, or as a Bundle")
    return Report(_expand(obs, contained.get), patient, report)


def from_store(tx, reference: str) -> Report:
    """A stored DiagnosticReport with its results and patient."""
    kind, _, rid = (reference or "").partition("/")
    if kind != "DiagnosticReport" or not ID_RE.match(rid or ""):
        raise bad_request("report 须为 DiagnosticReport/{id} / report must be DiagnosticReport/{id}", "report")
    stored = tx.read("DiagnosticReport", rid)
    if stored is None or stored.deleted:
        raise FhirError(404, "not-found", f"DiagnosticReport/{rid} 不存在 / not found")
    rep = stored.resource

    def lookup(ref: str):
        t, _, i = (ref or "").partition("/")
        if not t or not ID_RE.match(i or ""):
            return None
        s = tx.read(t, i)
        return None if s is None or s.deleted else s.resource

    obs = [lookup((r or {}).get("reference", "")) for r in rep.get("result") or []]
    obs = [o for o in obs if o is not None and o.get("resourceType") == "Observation"]
    patient = lookup((rep.get("subject") or {}).get("reference", ""))
    return Report(_expand(obs, lookup), patient, rep)


#: Maps an HL7 v2 ORU^R01 / OUL^R22 message (bytes) to a FHIR Bundle (Patient, DiagnosticReport,
#: Observations), or raises ``FhirError`` 400. Installed by the capability that speaks HL7 v2
#: (``hutong.recognition.hl7v2.to_bundle``, which comes later in the capability list and so may use
#: this one, not the reverse); None on a node without it.
_hl7v2_mapper = None


def register_hl7v2_mapper(mapper) -> None:
    """Install the HL7 v2 → FHIR Bundle mapper used for HL7 v2 request bodies."""
    global _hl7v2_mapper
    _hl7v2_mapper = mapper


def from_hl7v2(raw: bytes) -> Report:
    """A report from an HL7 v2 ORU message, mapped as the platform maps the lab results it receives."""
    if _hl7v2_mapper is None:
        raise FhirError(415, "not-supported", "本节点未安装 HL7 v2 映射；请以 FHIR Bundle 发送 / "
                        "this node has no HL7 v2 mapper: send a FHIR Bundle")
    return from_bundle(_hl7v2_mapper(raw))


def interpret(report: Report, critical: dict[str, Critical], person: Person | None = None) -> dict:
    """The ``POST /api/report/interpret`` answer for a collected report."""
    when = None
    if report.report:
        when = report.report.get("effectiveDateTime") or report.report.get("issued")
    if when is None and report.observations:
        when = report.observations[0].get("effectiveDateTime")
    p = person_from(report.patient, when)
    if person is not None:
        p = Person(person.sex or p.sex, person.age if person.age is not None else p.age)
    items = [interpret_observation(o, p, critical) for o in report.observations]
    out = {"items": items, "summary": summarize(items),
           "patient": {"sex": p.sex, "age": round(p.age, 1) if p.age is not None else None}}
    if report.report and report.report.get("id"):
        out["report"] = f"DiagnosticReport/{report.report['id']}"
    return out
