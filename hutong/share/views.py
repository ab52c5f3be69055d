"""What the workstation and the portal show, built from a ``PatientRecord`` (plain data for the templates)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from functools import cached_property
from urllib.parse import urlencode

from markupsafe import Markup

from hutong.core.clock import local_time
from hutong.share.record import (
    Item,
    PatientRecord,
    concept_text,
    flag,
    lab_series,
    parse_time,
    reference_range,
    unit_of,
    value_text,
)
from hutong.web.charts import chart, line_chart
from hutong.web.i18n import N_
from hutong.web.i18n import gettext as _

RID_SYSTEM = "urn:oid:2.16.156.10011.1.3"
KINDS = ("encounter", "lab", "imaging", "condition", "allergy", "medication", "document")
SECTION_TITLES = {"encounter": N_("全部就诊"), "lab": N_("全部检验结果"), "imaging": N_("全部影像检查"),
                  "condition": N_("全部诊断"), "allergy": N_("全部过敏"), "medication": N_("全部用药"),
                  "document": N_("全部文档")}
KIND_NAMES = {"encounter": N_("就诊"), "lab": N_("检验"), "imaging": N_("影像"), "condition": N_("诊断"),
              "allergy": N_("过敏"), "medication": N_("用药"), "document": N_("文档")}
ENCOUNTER_CLASS = {"AMB": N_("门诊"), "EMER": N_("急诊"), "IMP": N_("住院"), "VR": N_("远程"), "HH": N_("家庭")}
FLAG_NAMES = {"high": N_("偏高"), "low": N_("偏低"), "abnormal": N_("异常"), "normal": N_("正常")}
FLAG_BADGE = {"high": "high", "low": "low", "abnormal": "warn", "normal": "ok"}
FLAG_PLAIN = {
    "high": N_("高于参考范围：结果比健康人常见的数值高，请结合医生意见。"),
    "low": N_("低于参考范围：结果比健康人常见的数值低，请结合医生意见。"),
    "abnormal": N_("结果异常，请咨询医生。"),
    "normal": N_("在参考范围内。"),
}
GENDERS = {"male": N_("男"), "female": N_("女"), "other": N_("其他"), "unknown": N_("未知")}
#: Rows of each section on the summary page (the rest is one click away, paged: ``SECTION_PAGE`` a page).
SUMMARY_ROWS = {"encounter": 20, "lab": 50, "imaging": 20, "condition": 30, "allergy": 50, "medication": 20,
                "document": 20}
SECTION_PAGE = 100
#: Visits or results a page in the resident portal (a phone's screenfuls).
PORTAL_PAGE = 30
TREND_CHARTS = 6
#: Points per trend line on the summary page and on the lab section's first page.
SUMMARY_CHART_POINTS = 60
SECTION_CHART_POINTS = 500


@dataclass(frozen=True)
class Filters:
    institution: str | None = None
    kind: str | None = None
    since: str | None = None  # YYYY-MM-DD, inclusive
    until: str | None = None

    @cached_property
    def _bounds(self) -> tuple[int | None, int | None]:
        lo = parse_time(self.since) if self.since else None
        hi = parse_time(self.until) if self.until else None
        return lo, (hi + 86_400_000_000 if hi is not None else None)

    def keep(self, item: Item, kind: str) -> bool:
        if self.kind and kind != self.kind:
            return False
        if self.institution and self.institution not in {s.institution for s in item.sources}:
            return False
        if self.since or self.until:
            lo, hi = self._bounds
            if item.when_us is None or (lo is not None and item.when_us < lo) or (hi is not None and item.when_us >= hi):
                return False
        return True

    def query(self, linked: bool = True, **extra) -> str:
        """These filters as a query string (for links to sections and pages)."""
        pairs = [("inst", self.institution), ("type", self.kind), ("from", self.since), ("to", self.until)]
        pairs += [("linked", None if linked else "false")] + list(extra.items())
        return urlencode([(k, v) for k, v in pairs if v])


# ---------------------------------------------------------------------------------------------- people
def patient_name(p: dict) -> str:
    for n in p.get("name") or []:
        if isinstance(n, dict):
            return n.get("text") or (n.get("family") or "") + "".join(n.get("given") or [])
    return ""


def resident_id(p: dict) -> str:
    for i in p.get("identifier") or []:
        if isinstance(i, dict) and i.get("system") == RID_SYSTEM and i.get("value"):
            return i["value"]
    return ""


def phone(p: dict) -> str:
    for t in p.get("telecom") or []:
        if isinstance(t, dict) and t.get("system") == "phone" and t.get("value"):
            return t["value"]
    return ""


def _age(birth: str) -> str:
    try:
        b = date.fromisoformat(birth)
    except ValueError:
        return ""
    t = date.today()
    return str(t.year - b.year - ((t.month, t.day) < (b.month, b.day)))


def find_patients(store, q: str, limit: int = 50) -> list[dict]:
    """Patients whose identifier (record number, resident ID) or name matches ``q``."""
    with store.read() as tx:
        ids = tx.search_ids("Patient", [("identifier", q)], limit=limit)
        if not ids:
            ids = tx.search_ids("Patient", [("name", q)], limit=limit)
        out = []
        for pid in ids:
            s = tx.read("Patient", pid)
            if s is None or s.deleted:
                continue
            p = s.resource
            org = ((p.get("managingOrganization") or {}).get("reference") or "").split("/")[-1]
            o = tx.read("Organization", org) if org else None
            out.append({"id": pid, "name": patient_name(p), "gender": _(GENDERS.get(p.get("gender"), "未知")),
                        "birth": p.get("birthDate") or "", "rid": resident_id(p),
                        "institution": (o.resource.get("name") if o and not o.deleted else org) or ""})
    return out


# ---------------------------------------------------------------------------------------------- pieces
def _sources(item: Item) -> Markup:
    names = []
    for s in item.sources:
        if s.institution_name not in names:
            names.append(s.institution_name or s.institution or "")
    return Markup(" ").join(Markup('<span class="badge badge-source">{}</span>').format(n) for n in names)


def _when(item: Item, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return local_time(item.when_us, fmt) if item.when_us else ""


def _flag_badge(f: str) -> Markup:
    if not f:
        return Markup("")
    return Markup('<span class="badge badge-{}">{}</span>').format(FLAG_BADGE[f], _(FLAG_NAMES[f]))


def _kind(item: Item) -> str | None:
    t = item.res_type
    if t == "Encounter":
        return "encounter"
    if t in ("Observation", "DiagnosticReport"):
        return "lab"
    if t == "ImagingStudy":
        return "imaging"
    if t == "Condition":
        return "condition"
    if t == "AllergyIntolerance":
        return "allergy"
    if t in ("MedicationRequest", "MedicationStatement"):
        return "medication"
    if t == "DocumentReference":
        return "document"
    return None


def _encounter_row(it: Item) -> dict:
    r = it.resource
    cls = (r.get("class") or {}).get("code") or ""
    reasons = "、".join(concept_text(c) for c in r.get("reasonCode") or [] if concept_text(c))
    return {"when": _when(it), "what": _(ENCOUNTER_CLASS.get(cls, "就诊")), "detail": reasons,
            "where": _sources(it), "ref": it.ref}


def _lab_row(it: Item) -> dict:
    r = it.resource
    f = flag(r)
    _lo, _hi, rr = reference_range(r)
    return {"when": _when(it), "test": concept_text(r.get("code")), "value": value_text(r), "unit": unit_of(r),
            "range": rr, "flag": _flag_badge(f), "where": _sources(it),
            "_class": "row-high" if f == "high" else "row-low" if f == "low" else ""}


def _endpoints(record: PatientRecord, study: dict, store_get) -> list[dict]:
    out = []
    for ref in study.get("endpoint") or []:
        r = (ref or {}).get("reference") or ""
        if r.startswith("Endpoint/"):
            ep = store_get(r)
            if ep and ep.get("address"):
                out.append({"name": ep.get("name") or _("影像浏览"), "url": ep["address"],
                            "type": ((ep.get("connectionType") or {}).get("code") or "")})
    return out


# ---------------------------------------------------------------------------------------------- views
def classify(record: PatientRecord, filters: Filters) -> dict[str, list[Item]]:
    """The record's items by page section (``KINDS``), filtered, newest first (one sort for all)."""
    kept: dict[str, list[Item]] = {k: [] for k in KINDS}
    for it in sorted(record.items, key=lambda i: (i.when_us or 0, i.res_id), reverse=True):
        k = _kind(it)
        if k and filters.keep(it, k):
            kept[k].append(it)
    # The lab section lists results (Observations); a report is the envelope of results already listed.
    kept["lab"] = [i for i in kept["lab"] if i.res_type == "Observation"]
    return kept


def _trend_charts(labs: list[Item], max_points: int) -> list[Markup]:
    """Trend lines of the most measured numeric tests (the latest ``max_points`` points each)."""
    series = lab_series(labs)
    ranked = sorted(series.values(), key=lambda s: -len(s["points"]))[:TREND_CHARTS]
    charts = []
    for s in ranked:
        points = s["points"][-max_points:]
        if len(points) < 2:
            continue
        xs = [local_time(p[0], "%Y-%m-%d") for p in points]
        band = (s["low"], s["high"]) if s["low"] is not None or s["high"] is not None else None
        label = f"{s['name']}（{s['unit']}）"
        if len(points) < len(s["points"]):
            label += _("，最近 %(n)s 次", n=len(points))
        charts.append(chart(line_chart(xs, {s["name"]: [p[1] for p in points]}, unit=s["unit"], band=band),
                            label=label, height=220))
    return charts


def _imaging_rows(items: list[Item], record: PatientRecord, store) -> list[dict]:
    by_ref: dict = {}
    if store is not None:  # Endpoints are not in the patient's compartment: read them by reference

        def lookup(ref: str, _cache=by_ref):
            if ref not in _cache:
                _cache[ref] = store.get(*ref.split("/", 1))
            return _cache[ref]
    else:
        lookup = by_ref.get
    studies = []
    for it in items:
        r = it.resource
        studies.append({"when": _when(it), "what": r.get("description") or concept_text((r.get("procedureCode") or [{}])[0]),
                        "modality": "、".join(m.get("code", "") for m in r.get("modality") or []),
                        "instances": r.get("numberOfInstances") or "", "where": _sources(it),
                        "endpoints": _endpoints(record, r, lookup)})
    return studies


def _condition_row(i: Item) -> dict:
    r = i.resource
    return {"when": _when(i, "%Y-%m-%d"), "what": concept_text(r.get("code")),
            "code": ((r.get("code") or {}).get("coding") or [{}])[0].get("code", ""),
            "status": ((r.get("clinicalStatus") or {}).get("coding") or [{}])[0].get("code", ""), "where": _sources(i)}


def _allergy_row(i: Item) -> dict:
    r = i.resource
    return {"what": concept_text(r.get("code")), "criticality": r.get("criticality") or "",
            "reaction": "、".join(concept_text(m) for rx in r.get("reaction") or [] for m in rx.get("manifestation") or []),
            "when": _when(i, "%Y-%m-%d"), "where": _sources(i)}


def _medication_row(i: Item) -> dict:
    r = i.resource
    return {"when": _when(i, "%Y-%m-%d"), "what": concept_text(r.get("medicationCodeableConcept")),
            "dose": "；".join(d.get("text", "") for d in r.get("dosageInstruction") or []),
            "status": r.get("status") or "", "where": _sources(i)}


def _rows(kind: str, items: list[Item], record: PatientRecord, store) -> list[dict]:
    if kind == "imaging":
        return _imaging_rows(items, record, store)
    build = {"encounter": _encounter_row, "lab": _lab_row, "condition": _condition_row, "allergy": _allergy_row,
             "medication": _medication_row, "document": _document_row}[kind]
    return [build(i) for i in items]


def workstation_view(record: PatientRecord, filters: Filters, store=None, *, section: str | None = None,
                     page: int = 1) -> dict:
    """What the workstation shows: the summary page (``section=None``: the latest rows of every section,
    trends, counts) or one section's full list, paged (``SECTION_PAGE`` rows a page)."""
    me = record.records[0]
    kept = classify(record, filters)
    labs = kept["lab"]
    institutions = sorted({(s.institution, s.institution_name) for it in record.items for s in it.sources
                           if s.institution}, key=lambda x: x[1])
    view = {
        "banner": {"name": patient_name(me), "gender": _(GENDERS.get(me.get("gender"), "未知")),
                   "age": _age(me.get("birthDate") or ""), "birth": me.get("birthDate") or "",
                   "rid": resident_id(me), "records": len(record.records),
                   "record_places": [record.institutions.get(_org(p), _org(p)) for p in record.records],
                   "allergies": [concept_text(i.resource.get("code")) for i in kept["allergy"]]},
        "institutions": institutions,
        "kinds": [(k, _(KIND_NAMES[k])) for k in KINDS],
        "counts": {k: len(v) for k, v in kept.items()}, "merged": record.merged_duplicates,
        "abnormal": sum(1 for i in labs if flag(i.resource) in ("high", "low", "abnormal")),
        "section": section, "rows": {}, "more": {},
    }
    if section is None:
        for kind in KINDS:
            shown = kept[kind][:SUMMARY_ROWS[kind]]
            view["rows"][kind] = _rows(kind, shown, record, store)
            view["more"][kind] = len(kept[kind]) - len(shown)
        view["charts"] = _trend_charts(labs, SUMMARY_CHART_POINTS)
        return view
    items = kept[section]
    pages = max(1, -(-len(items) // SECTION_PAGE))
    page = min(max(1, page), pages)
    view["rows"][section] = _rows(section, items[(page - 1) * SECTION_PAGE: page * SECTION_PAGE], record, store)
    view["page"], view["pages"] = page, pages
    view["charts"] = _trend_charts(labs, SECTION_CHART_POINTS) if section == "lab" and page == 1 else []
    return view


def _org(p: dict) -> str:
    return ((p.get("managingOrganization") or {}).get("reference") or "").split("/")[-1]


def _document_row(it: Item, base: str = "/workstation/document/") -> dict:
    r = it.resource
    return {"when": _when(it, "%Y-%m-%d"), "title": r.get("description") or concept_text(r.get("type")) or _("文档"),
            "type": concept_text(r.get("type")), "status": r.get("status") or "", "where": _sources(it),
            "link": Markup('<a href="{}{}">{}</a>').format(base, it.res_id, _("打开"))}


def resident_view(record: PatientRecord, part: str | None = None, page: int = 1) -> dict:
    """The resident portal's plain-language view of the same history (``part``: only ``visits``,
    ``results`` or ``documents``; None: all three), ``PORTAL_PAGE`` visits or results a page, newest first."""
    me = record.records[0]
    out = {"name": patient_name(me), "visits": [], "results": [], "documents": [], "page": 1, "pages": 1,
           "places": len({s.institution for it in record.items for s in it.sources if s.institution})}

    def paged(items: list[Item]) -> list[Item]:
        out["pages"] = max(1, -(-len(items) // PORTAL_PAGE))
        out["page"] = min(max(1, page), out["pages"])
        return items[(out["page"] - 1) * PORTAL_PAGE: out["page"] * PORTAL_PAGE]

    if part in (None, "visits"):
        for it in paged(record.of_type("Encounter")):
            r = it.resource
            cls = (r.get("class") or {}).get("code") or ""
            out["visits"].append({"when": _when(it, "%Y-%m-%d"), "kind": _(ENCOUNTER_CLASS.get(cls, "就诊")),
                                  "why": "、".join(concept_text(c) for c in r.get("reasonCode") or [] if concept_text(c)),
                                  "where": "、".join(dict.fromkeys(s.institution_name for s in it.sources))})
    if part in (None, "results"):
        for it in paged(record.labs()):
            r = it.resource
            f = flag(r)
            _lo, _hi, rr = reference_range(r)
            out["results"].append({
                "when": _when(it, "%Y-%m-%d"), "test": concept_text(r.get("code")), "value": value_text(r),
                "unit": unit_of(r), "range": rr, "flag": f, "flag_name": _(FLAG_NAMES[f]) if f else "",
                "badge": FLAG_BADGE.get(f, "neutral"), "meaning": _(FLAG_PLAIN[f]) if f else "",
                "where": "、".join(dict.fromkeys(s.institution_name for s in it.sources))})
    if part in (None, "documents"):
        out["documents"] = [_document_row(i, "/portal/documents/") for i in record.of_type("DocumentReference")]
    return out
