"""What an arriving resource says about its sender: institution, interface, clinical event time.

- institution: ``meta.source`` ``urn:hutong:org:<id>`` (a ``#fragment`` after it names the sending
  system, e.g. ``#lis-hl7v2``), the platform's convention for every source record;
- interface: ``document`` for shared documents (DocumentReference, Binary, Composition), ``hl7v2``
  when the source fragment or a ``meta.tag`` says the data came in as HL7 v2 (the lab gateway tags
  what it converts), ``fhir`` otherwise; card scans are counted from the card's own scan log;
- event time: when the clinical event happened (an observation's effective time, a visit's end…),
  so ``arrival - event`` is how late the data reached the platform.
"""

from __future__ import annotations

from datetime import datetime

from hutong.core.clock import to_us

ORG_PREFIX = "urn:hutong:org:"
DOCUMENT_TYPES = frozenset({"DocumentReference", "Binary", "Composition"})
INTERFACES = ("fhir", "hl7v2", "document", "card")
#: Latency buckets (upper bounds in seconds): within 1 hour, 1 day, 7 days, later.
LATENCY_BOUNDS = (3600, 86_400, 7 * 86_400)
LATENCY_BUCKETS = ("le_1h", "le_1d", "le_7d", "gt_7d")


def institution_of(resource: dict | None) -> str:
    """The sending institution's id from ``meta.source`` (``""`` when it names none)."""
    source = ((resource or {}).get("meta") or {}).get("source") or ""
    if not isinstance(source, str) or not source.startswith(ORG_PREFIX):
        return ""
    return source[len(ORG_PREFIX):].split("#", 1)[0][:64]


def interface_of(res_type: str, resource: dict | None) -> str:
    """``fhir``, ``hl7v2`` or ``document``: how the resource reached the platform."""
    if res_type in DOCUMENT_TYPES:
        return "document"
    meta = (resource or {}).get("meta") or {}
    source = meta.get("source") or ""
    if isinstance(source, str) and "hl7v2" in source.partition("#")[2].lower():
        return "hl7v2"
    for tag in meta.get("tag") or []:
        if isinstance(tag, dict) and str(tag.get("code") or "").lower() in ("hl7v2", "hl7-v2"):
            return "hl7v2"
    return "fhir"


def _period_end(p) -> str | None:
    if isinstance(p, dict):
        return p.get("end") or p.get("start")
    return None


def _event_text(r: dict) -> str | None:
    t = r.get("resourceType")
    if t == "Observation":
        return r.get("issued") or r.get("effectiveDateTime") or r.get("effectiveInstant") or _period_end(r.get("effectivePeriod"))
    if t == "DiagnosticReport":
        return r.get("issued") or r.get("effectiveDateTime") or _period_end(r.get("effectivePeriod"))
    if t == "Encounter":
        return _period_end(r.get("period"))
    if t == "Condition":
        return r.get("recordedDate") or r.get("onsetDateTime")
    if t == "MedicationRequest":
        return r.get("authoredOn")
    if t == "Procedure":
        return r.get("performedDateTime") or _period_end(r.get("performedPeriod"))
    if t == "ImagingStudy":
        return r.get("started")
    if t == "Immunization":
        return r.get("occurrenceDateTime")
    if t == "DocumentReference":
        return r.get("date") or _period_end((r.get("context") or {}).get("period"))
    return None


def event_time_us(resource: dict | None) -> int | None:
    """The clinical event's time in µs UTC, if the resource carries one with a time zone."""
    text = _event_text(resource or {})
    if not isinstance(text, str) or len(text) < 16:
        return None  # a date alone says nothing about hours of delay
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if dt.tzinfo is None:
        return None
    return to_us(dt)


def latency_bucket(seconds: float) -> str:
    """The bucket a delay falls in (``le_1h`` … ``gt_7d``)."""
    for bound, name in zip(LATENCY_BOUNDS, LATENCY_BUCKETS, strict=False):
        if seconds <= bound:
            return name
    return LATENCY_BUCKETS[-1]
