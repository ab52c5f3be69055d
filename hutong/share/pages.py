"""Pages of the shared record: the doctor workstation and the resident portal.

Workstation: find a patient (search, card scan, or a signed launch from the HIS: ``launch.py``), then one
page with the person's history from every institution (timeline, labs with trends and flags, imaging with
PACS links, diagnoses, allergies, medications, documents), filterable by institution, type and time.
Resident portal: the same history in plain language for a phone, the health card, dependants.

The resident's own Patient is the caller's (``resident_patient``): the signed-in resident's session, or a
trusted gateway's ``X-Hutong-Patient`` header. Every view of the record is audited (``audit_view``).
"""

from __future__ import annotations

import re
import time
from datetime import date
from pathlib import Path

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup

from hutong.api.caller import permit
from hutong.china.ids import mask_name, mask_phone, mask_resident_id
from hutong.core.caller import Caller
from hutong.core.clock import local_time
from hutong.core.errors import FhirError
from hutong.core.ids import ID_RE
from hutong.share import launch, views
from hutong.share.record import load_record, paused_gc
from hutong.web.i18n import gettext as _
from hutong.web.render import add_templates, redirect, render

router = APIRouter(tags=["share 健康档案"])
add_templates("share", Path(__file__).resolve().parent / "templates")

_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _store(request: Request):
    return request.app.state.store


def _patient_id(value: str) -> str:
    if not ID_RE.match(value or ""):
        raise FhirError(404, "not-found", "患者不存在 (unknown patient)")
    return value


def audit_view(request: Request, caller: Caller, patients: list[str], what: list[str], page: str) -> None:
    """Record a page view of personal health data in the audit trail (one BALP AuditEvent per Patient record
    shown), through the security capability: pages are not FHIR interactions, so nothing else records them."""
    from hutong.security import audit
    from hutong.security.service import security_of

    purpose = "TREAT" if "clinician" in caller.roles else "PATRQT" if "resident" in caller.roles else "HOPERAT"
    address = request.client.host if request.client else ""
    entry = audit.Entry(audit.now_us(), "R", "read", caller, address, purpose, "0", list(patients), list(what),
                        query=audit.mask_query(f"GET {request.url.path}?{request.url.query}"[:2000]) if request.url.query else "",
                        description=page)
    security_of(request.app.state.node).audit.record(entry)


def _filters(inst: str, kind: str, since: str, until: str) -> views.Filters:
    for name, v in (("from", since), ("to", until)):
        if v and not _DAY.match(v):
            raise FhirError(400, "invalid", f"{name} must be YYYY-MM-DD", name)
    if kind and kind not in views.KINDS:
        raise FhirError(400, "invalid", "type must be one of " + ", ".join(views.KINDS), "type")
    return views.Filters(inst or None, kind or None, since or None, until or None)


# ---------------------------------------------------------------------------------------------- workstation
@router.get("/workstation/search", response_class=HTMLResponse, summary="Workstation: find a patient")
def search_page(request: Request, caller: Caller = Depends(permit("share.record")),
                q: str = Query("", max_length=64)):
    store = _store(request)
    results = views.find_patients(store, q.strip()) if q.strip() else []
    rows = [{"name": Markup('<a href="/workstation/patient/{}">{}</a>').format(r["id"], r["name"] or r["id"]),
             "gender": r["gender"], "birth": r["birth"], "rid": mask_resident_id(r["rid"]) if r["rid"] else "",
             "institution": r["institution"]} for r in results]
    return render(request, "share/search.html", {"q": q, "rows": rows, "searched": bool(q.strip())},
                  audience="doctor", title=_("患者查找"))


@router.post("/workstation/scan", summary="Workstation: open a patient from a health-card QR scan")
def scan(request: Request, qr_text: str = Form(..., max_length=512), caller: Caller = Depends(permit("card.verify"))):
    from hutong.card import service as card_service
    from hutong.card.verify import CardRefusal

    if not caller.institution:
        raise FhirError(400, "invalid", "扫码需要所在机构 (the workstation must act for an institution)")
    ctx = card_service.ScanContext(caller.institution, "doctor-workstation", "consultation")
    try:
        result = card_service.verify_scan(_store(request), qr_text.strip(), ctx)
    except CardRefusal as refusal:
        return redirect("/workstation/search", "健康卡二维码无效：%(reason)s", "error", request=request,
                        reason=refusal.reason)
    pid = result["patient"].split("/", 1)[1]
    launch.record_care(_store(request), caller.client_id, caller.institution, pid, "card-scan")
    return redirect(f"/workstation/patient/{pid}")


@router.get("/workstation/launch", summary="Workstation: signed launch from a hospital system (HIS)")
def his_launch(request: Request, caller: Caller = Depends(permit("web.workstation"))):
    store = _store(request)
    org, user, pid = launch.verify_launch(store, dict(request.query_params))
    launch.record_care(store, user, org, pid, "his-launch")
    return redirect(f"/workstation/patient/{pid}")


@router.get("/workstation/patient/{patient_id}", response_class=HTMLResponse,
            summary="Workstation: a patient's history from every institution (summary of every section)")
def patient_page(patient_id: str, request: Request, caller: Caller = Depends(permit("share.record")),
                 inst: str = Query("", max_length=64), type: str = Query("", max_length=20),
                 since: str = Query("", alias="from", max_length=10), until: str = Query("", alias="to", max_length=10),
                 linked: bool = True):
    return _record_page(request, caller, patient_id, _filters(inst, type, since, until), linked, None, 1)


@router.get("/workstation/patient/{patient_id}/{section}", response_class=HTMLResponse,
            summary="Workstation: one section of a patient's history (encounter, lab, imaging, condition, allergy, "
                    "medication, document), paged")
def section_page(patient_id: str, section: str, request: Request, caller: Caller = Depends(permit("share.record")),
                 inst: str = Query("", max_length=64), type: str = Query("", max_length=20),
                 since: str = Query("", alias="from", max_length=10), until: str = Query("", alias="to", max_length=10),
                 linked: bool = True, page: int = Query(1, ge=1, le=100_000)):
    if section not in views.KINDS:
        raise FhirError(404, "not-found", "section must be one of " + ", ".join(views.KINDS))
    return _record_page(request, caller, patient_id, _filters(inst, type, since, until), linked, section, page)


def _record_page(request: Request, caller: Caller, patient_id: str, filters: views.Filters, linked: bool,
                 section: str | None, page: int):
    with paused_gc():  # the whole page: the record stays alive until it is rendered
        return _record_page_paused(request, caller, patient_id, filters, linked, section, page)


def _record_page_paused(request: Request, caller: Caller, patient_id: str, filters: views.Filters, linked: bool,
                        section: str | None, page: int):
    store = _store(request)
    t0 = time.perf_counter()
    record = load_record(store, _patient_id(patient_id), linked=linked)
    t1 = time.perf_counter()
    if request.headers.get("sec-purpose", "") != "prefetch":
        launch.record_care(store, caller.client_id, caller.institution, patient_id, "search")
    t2 = time.perf_counter()
    view = views.workstation_view(record, filters, store, section=section, page=page)
    audit_view(request, caller, [p["id"] for p in record.records], [], "workstation")
    t3 = time.perf_counter()
    ctx = {"v": view, "filters": filters, "linked": linked, "patient_id": patient_id, "query": filters.query(linked)}
    if section is None:
        title = view["banner"]["name"]
    else:
        title = _(views.SECTION_TITLES[section])
        qs = lambda n: f"?{filters.query(linked, page=n)}"  # noqa: E731
        ctx["prev_url"] = qs(view["page"] - 1) if view["page"] > 1 else None
        ctx["next_url"] = qs(view["page"] + 1) if view["page"] < view["pages"] else None
    response = render(request, "share/section.html" if section else "share/patient.html", ctx, audience="doctor",
                      title=title)
    t4 = time.perf_counter()
    # Where a page's time went, for browsers' developer tools and the benchmark (W3C Server Timing).
    response.headers["Server-Timing"] = ", ".join(
        f"{name};dur={ms * 1000:.1f}" for name, ms in
        (("load", t1 - t0), ("care", t2 - t1), ("view", t3 - t2), ("render", t4 - t3)))
    return response


@router.get("/workstation/document/{doc_id}", response_class=HTMLResponse, summary="Workstation: open a document")
def document_page(doc_id: str, request: Request, caller: Caller = Depends(permit("share.record"))):
    from hutong.share import documents

    doc = documents.document_view(_store(request), _patient_id(doc_id))
    audit_view(request, caller, [doc["patient"]] if doc.get("patient") else [], [f"DocumentReference/{doc_id}"],
               "workstation-document")
    return render(request, "share/document.html", {"doc": doc}, audience="doctor", title=doc["title"])


# ---------------------------------------------------------------------------------------------- resident portal
def _portal_ctx(view: dict) -> dict:
    page, pages = view["page"], view["pages"]
    return {"v": view, "prev_url": f"?page={page - 1}" if page > 1 else None,
            "next_url": f"?page={page + 1}" if page < pages else None}


def resident_patient(request: Request, caller: Caller) -> str:
    """The resident's own Patient id, as the security capability established it (the signed-in resident's
    session, or a trusted gateway's ``X-Hutong-Patient``): never a bare request header, which anyone can send."""
    pid = caller.patient
    if not pid:
        raise FhirError(401, "login", "请先登录 (sign in to see your record)")
    return _patient_id(pid)


@router.get("/portal/record", response_class=HTMLResponse, summary="Resident portal: my visits")
def portal_record(request: Request, caller: Caller = Depends(permit("web.portal")),
                  page: int = Query(1, ge=1, le=100_000)):
    record = load_record(_store(request), resident_patient(request, caller), types=["Encounter"])
    audit_view(request, caller, [p["id"] for p in record.records], [], "portal-record")
    return render(request, "share/portal_record.html", _portal_ctx(views.resident_view(record, "visits", page)),
                  audience="resident",
                  title=_("我的就诊记录"))


@router.get("/portal/results", response_class=HTMLResponse, summary="Resident portal: my results explained")
def portal_results(request: Request, caller: Caller = Depends(permit("web.portal")),
                   page: int = Query(1, ge=1, le=100_000)):
    record = load_record(_store(request), resident_patient(request, caller), types=["Observation"])
    audit_view(request, caller, [p["id"] for p in record.records], [], "portal-results")
    return render(request, "share/portal_results.html", _portal_ctx(views.resident_view(record, "results", page)),
                  audience="resident",
                  title=_("我的检查结果"))


@router.get("/portal/documents", response_class=HTMLResponse, summary="Resident portal: my documents")
def portal_documents(request: Request, caller: Caller = Depends(permit("web.portal"))):
    record = load_record(_store(request), resident_patient(request, caller), types=["DocumentReference"])
    audit_view(request, caller, [p["id"] for p in record.records], [], "portal-documents")
    return render(request, "share/portal_documents.html", {"v": views.resident_view(record, "documents")},
                  audience="resident", title=_("我的文档"))


@router.get("/portal/documents/{doc_id}", response_class=HTMLResponse, summary="Resident portal: one document")
def portal_document(doc_id: str, request: Request, caller: Caller = Depends(permit("web.portal"))):
    from hutong.share import documents

    pid = resident_patient(request, caller)
    doc = documents.document_view(_store(request), _patient_id(doc_id))
    if doc["patient"] not in {p["id"] for p in load_record(_store(request), pid, types=["Patient"]).records}:
        raise FhirError(404, "not-found", "文档不存在 (unknown document)")
    audit_view(request, caller, [doc["patient"]], [f"DocumentReference/{doc_id}"], "portal-document")
    return render(request, "share/document.html", {"doc": doc}, audience="resident", title=doc["title"])


@router.get("/portal/card", response_class=HTMLResponse, summary="Resident portal: my health card")
def portal_card(request: Request, caller: Caller = Depends(permit("web.portal"))):
    from hutong.card import service as card_service
    from hutong.card.tables import card_card

    store = _store(request)
    pid = resident_patient(request, caller)
    record = load_record(store, pid, types=["Patient"])
    refs = [f"Patient/{p['id']}" for p in record.records]
    from sqlalchemy import select

    with store.read() as tx:
        rows = tx.conn.execute(select(card_card.c.card_id, card_card.c.status).where(card_card.c.patient.in_(refs))
                               .order_by(card_card.c.updated_us.desc())).all()
    live = next((r for r in rows if r.status != "revoked"), rows[0] if rows else None)
    card = card_service.get_card(store, live.card_id) if live else None
    me = record.records[0]
    name = views.patient_name(me)
    deps = []
    if card:
        for d in card_service.dependants(store, card["card_id"]):
            dp = store.get("Patient", d["patient"].split("/", 1)[1]) or {}
            deps.append({"name": mask_name(views.patient_name(dp)), "relationship": d["relationship"],
                         "status": d["status"], "card_id": d["card_id"]})
    return render(request, "share/portal_card.html", {
        "card": card, "holder": mask_name(name), "rid": mask_resident_id(views.resident_id(me)),
        "phone": card["phone"] if card and card.get("phone") else mask_phone(views.phone(me)),
        "dependants": deps,
    }, audience="resident", title=_("我的健康卡"))


def _age(birth: str) -> str:
    try:
        b = date.fromisoformat(birth)
    except ValueError:
        return ""
    today = date.today()
    return str(today.year - b.year - ((today.month, today.day) < (b.month, b.day)))


__all__ = ["router", "resident_patient", "local_time"]
