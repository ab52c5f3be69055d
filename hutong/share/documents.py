"""A shared document as the pages show it: facts from the DocumentReference and the document index, and
the content rendered in the page (CDA body as HTML, PDF in a frame, images inline)."""

from __future__ import annotations

from hutong.core.errors import FhirError
from hutong.share import cda, mhd
from hutong.share.record import concept_text
from hutong.web.i18n import gettext as _
from hutong.web.render import show_time


def document_view(store, doc_id: str) -> dict:
    """Title, facts, validation problems and renderable content of DocumentReference ``doc_id``."""
    doc = store.get("DocumentReference", doc_id)
    if doc is None:
        raise FhirError(404, "not-found", f"DocumentReference/{doc_id} is not known")
    att = ((doc.get("content") or [{}])[0] or {}).get("attachment") or {}
    media = (att.get("contentType") or "").split(";")[0].lower()
    row, problems = mhd.document_problems(store, doc_id)
    org_ref = ((doc.get("custodian") or {}).get("reference") or "").split("/")[-1]
    org = store.get("Organization", org_ref) if org_ref else None
    title = doc.get("description") or att.get("title") or concept_text(doc.get("type")) or _("文档")
    view = {"title": title, "patient": ((doc.get("subject") or {}).get("reference") or "").split("/")[-1],
            "problems": problems, "body": None, "frame": None, "image": None, "download": None,
            "facts": [(_("类型"), concept_text(doc.get("type"))), (_("状态"), doc.get("status") or ""),
                      (_("保管机构"), (org or {}).get("name") or org_ref), (_("创建时间"), show_time(att.get("creation"))),
                      (_("格式"), media)]}
    url = att.get("url") or ""
    local = url.split("/fhir/", 1)[-1] if "/fhir/" in url else url
    if local.startswith("Binary/"):
        view["download"] = "/fhir/" + local
    if row and row.get("format") == "cda" or media in cda.CDA_MEDIA_TYPES:
        got = mhd.document_bytes(store, url) if url else None
        raw = got[0] if got else None
        if raw is None and att.get("data"):
            import base64

            raw = base64.b64decode(att["data"])
        if raw is not None:
            try:
                h = cda.parse_cda(raw)
            except FhirError as exc:
                view["problems"] = [str(exc)]
            else:
                view["title"] = h.title or view["title"]
                view["body"] = h.body
                view["facts"] += [(_("文档类型代码"), f"{h.type_code} {h.type_name}".strip()),
                                  (_("作者机构"), h.author_org_name), (_("作者"), h.author_name),
                                  (_("患者"), h.patient_name)]
                view["problems"] = h.problems
    elif media in mhd._FHIR_JSON or local.startswith(("Bundle/", "Composition/")):
        _fhir_document(store, view, att, url, local)
    elif media == "application/pdf" and view["download"]:
        view["frame"] = view["download"]
    elif media.startswith("image/") and view["download"]:
        view["image"] = view["download"]
    return view


def _fhir_document(store, view: dict, att: dict, url: str, local: str) -> None:
    """A FHIR document (Bundle with a Composition) rendered in the page like a CDA body."""
    import base64

    import orjson

    from hutong.share import composition

    resource = None
    try:
        if local.startswith(("Bundle/", "Composition/")):
            resource = store.get(*local.split("/")[:2])
        else:
            got = mhd.document_bytes(store, url) if url else None
            raw = got[0] if got else (base64.b64decode(att["data"]) if att.get("data") else None)
            resource = orjson.loads(raw) if raw else None
    except (ValueError, orjson.JSONDecodeError) as exc:
        view["problems"] = [f"FHIR 文档无法读取 (unreadable FHIR document): {str(exc)[:120]}"]
        return
    doc = composition.parse_fhir_document(resource) if resource else None
    if doc is None:
        return
    view["title"] = doc.title or view["title"]
    view["body"] = doc.body
    view["facts"] += [(_("文档日期"), show_time(doc.date)), (_("作者"), "、".join(doc.authors))]
    view["problems"] = doc.problems
