"""IHE MHD 4.2 on the node: documents published once, found and opened from every institution.

- ITI-65 Provide Document Bundle: a ``transaction`` Bundle with the SubmissionSet ``List``, the
  ``DocumentReference`` and its ``Binary`` (core Bundle processing, one transaction). The document
  consumer (``consume``) then marks a document that ``relatesTo`` *replaces* as ``superseded`` and indexes
  each document (CDA header: type, patient identifiers, author institution, times; validation problems).
- Large documents: ``POST /fhir/Binary`` with the document's own content type (``application/pdf`` …) is
  spooled to disk as it arrives (``body="stream"``), stored under ``data_dir/blobs`` and answered with the
  new Binary (its ``contentType`` only); the DocumentReference refers to it by ``attachment.url``.
  FHIR JSON Binaries posted to the same path are ordinary creates.
- ITI-68 Retrieve Document: ``GET /fhir/Binary/{id}`` with any ``Accept`` but FHIR JSON streams the
  document's bytes in its own content type (a file response; never read whole into memory).
- ITI-67 Find Document References: ``GET /fhir/DocumentReference`` (and ``POST …/_search``) with MHD's
  parameters. ``patient`` and ``patient.identifier`` resolve across every record the patient index links
  to the same person (``linked=false``: only that record); ``creation`` (MHD's SearchParameter on
  ``attachment.creation``) is answered from the document index; the other parameters are R4's own.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from pathlib import Path

import orjson
from sqlalchemy import delete, insert, select

from hutong.core.clock import now_us
from hutong.core.errors import FhirError
from hutong.core.ids import ID_RE, new_id
from hutong.fhir.body import decode_json
from hutong.fhir.rest import FhirResult, resource_result
from hutong.fhir.routes import Call, Interaction
from hutong.search import linked
from hutong.share import cda
from hutong.share.record import parse_time
from hutong.share.tables import share_blob, share_document

CONSUMER = "share-documents"
_FHIR_JSON = ("application/fhir+json", "application/json", "application/json+fhir")
_CHUNK = 1 << 20


def _blob_root(store) -> Path:
    return Path(store.settings.data_dir) / "blobs"


# ---------------------------------------------------------------------------------------------- Binary upload
def _media(call: Call) -> str:
    return (call.req.header("content-type") or "application/octet-stream").split(";")[0].strip().lower()


def upload_binary(call: Call) -> FhirResult:
    """``POST /fhir/Binary``: raw bytes in their own content type stored as a file (FHIR JSON: a create)."""
    spooled = call.req.body
    store = call.store
    if isinstance(spooled, dict):  # a Binary entry of a Bundle: an ordinary create in the Bundle's transaction
        if spooled.get("resourceType") != "Binary":
            raise FhirError(400, "invalid", "the body must be a Binary resource")
        created = call.tx.create({k: v for k, v in spooled.items() if k != "id"})
        return resource_result(created.stored, 201, call.req, call.base_url, location=True)
    media = _media(call)
    if media in _FHIR_JSON:
        with open(spooled, "rb") as fh:
            resource = decode_json(fh.read(), call.req.header("content-type"))
        if not isinstance(resource, dict) or resource.get("resourceType") != "Binary":
            raise FhirError(400, "invalid", "the body must be a Binary resource")
        resource = {k: v for k, v in resource.items() if k != "id"}
        with store.write(call.caller.tenant) as tx:
            created = tx.create(resource)
        return resource_result(created.stored, 201, call.req, call.base_url, location=True)
    if not media or "/" not in media or len(media) > 128:
        raise FhirError(415, "not-supported", "Content-Type must name the document's media type")
    digest = hashlib.sha256()
    size = 0
    with open(spooled, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
    if size == 0:
        raise FhirError(400, "invalid", "empty document")
    binary_id = new_id()
    sha = digest.hexdigest()
    rel = Path("blobs") / sha[:2] / f"{binary_id}.bin"
    target = Path(store.settings.data_dir) / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(spooled, target)
    try:
        with store.write(call.caller.tenant) as tx:
            created = tx.update("Binary", binary_id, {"resourceType": "Binary", "contentType": media})
            tx.conn.execute(insert(share_blob).values(binary_id=binary_id, path=str(rel), size=size, sha256=sha,
                                                      content_type=media, created_us=now_us()))
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    result = resource_result(created.stored, 201, call.req, call.base_url, location=True)
    result.headers["X-Content-SHA256"] = sha
    return result


# ---------------------------------------------------------------------------------------------- ITI-68
def _wants_fhir(call: Call) -> bool:
    if any(key == "_format" for key, _v in call.req.query):
        return True
    accept = (call.req.header("accept") or "").lower()
    return any(t in accept for t in _FHIR_JSON) and "*/*" not in accept.split(",")[0]


def blob_path(store, binary_id: str) -> tuple[Path, str, int] | None:
    """``(path, content type, size)`` of a Binary stored as a file, or None."""
    with store.read() as tx:
        row = tx.conn.execute(select(share_blob).where(share_blob.c.binary_id == binary_id)).first()
    if row is None:
        return None
    return Path(store.settings.data_dir) / row.path, row.content_type, row.size


def read_binary(call: Call) -> FhirResult:
    """``GET /fhir/Binary/{id}``: FHIR JSON when asked for it, otherwise the document itself, streamed."""
    from hutong.fhir.rest import _read

    bid = call.res_id or ""
    if not ID_RE.match(bid):
        raise FhirError(400, "invalid", "invalid id")
    if _wants_fhir(call):
        call.params.setdefault("type", "Binary")
        return _read(call)
    stored = call.tx.read_current("Binary", bid)
    found = blob_path(call.store, bid)
    headers = {"ETag": stored.etag, "Cache-Control": "private, no-store"}
    if found is not None:
        path, media, _size = found
        return FhirResult(200, headers=headers, file=str(path), media_type=media)
    res = stored.resource
    data = res.get("data")
    if not data:
        raise FhirError(404, "not-found", "this Binary has no content")
    # Inline (base64) content: decoded once into the blob folder, then served as a file like the others.
    cache = _blob_root(call.store) / "inline" / f"{bid}.{stored.version_id}.bin"
    if not cache.exists():
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp")
        tmp.write_bytes(base64.b64decode(data))
        os.replace(tmp, cache)
    return FhirResult(200, headers=headers, file=str(cache), media_type=res.get("contentType") or "application/octet-stream")


def document_bytes(store, url: str, limit: int = cda.MAX_BYTES) -> tuple[bytes, str] | None:
    """The bytes and content type behind an attachment URL that points at this node's Binary."""
    ref = url.split("/fhir/", 1)[-1] if "/fhir/" in url else url
    if not ref.startswith("Binary/"):
        return None
    bid = ref.split("/")[1]
    found = blob_path(store, bid)
    if found is not None:
        path, media, size = found
        if size > limit:
            return None
        return path.read_bytes(), media
    res = store.get("Binary", bid)
    if not res or not res.get("data"):
        return None
    return base64.b64decode(res["data"]), res.get("contentType") or ""


# ---------------------------------------------------------------------------------------------- ITI-67
def _patient_refs(call: Call, name: str, value: str, expand: bool) -> str:
    conn = call.tx.conn
    if name == "patient.identifier":
        ids = call.tx.search_ids("Patient", [("identifier", value)])
        if not ids:
            return "Patient/-none-"
    else:
        ids = []
        for item in value.split(","):
            item = item.strip()
            pid = item.split("/")[-1] if item.startswith(("Patient/", "http")) else item
            if pid:
                ids.append(pid)
    refs = []
    for pid in ids:
        for rid in linked.linked_ids(conn, pid) if expand else [pid]:
            refs.append(f"Patient/{rid}")
    return ",".join(dict.fromkeys(refs))


_PREFIXES = ("eq", "ne", "gt", "lt", "ge", "le", "sa", "eb", "ap")


def _creation_ids(call: Call, values: list[str]) -> list[str]:
    c = share_document.c
    stmt = select(c.doc_id)
    for v in values:
        prefix = v[:2] if v[:2] in _PREFIXES else "eq"
        text = v[2:] if v[:2] in _PREFIXES else v
        start = parse_time(text)
        if start is None:
            raise FhirError(400, "invalid", f"creation: invalid date {v[:40]!r}", "creation")
        width = {4: 366, 7: 31, 10: 1}.get(len(text), 0) * 86_400_000_000 or 1_000_000
        end = start + width if len(text) > 10 else parse_time(_next(text)) or start + width
        if prefix == "eq":
            stmt = stmt.where(c.creation_us >= start, c.creation_us < end)
        elif prefix in ("gt", "sa"):
            stmt = stmt.where(c.creation_us >= end)
        elif prefix == "ge":
            stmt = stmt.where(c.creation_us >= start)
        elif prefix in ("lt", "eb"):
            stmt = stmt.where(c.creation_us < start)
        elif prefix == "le":
            stmt = stmt.where(c.creation_us < end)
        elif prefix == "ne":
            stmt = stmt.where((c.creation_us < start) | (c.creation_us >= end))
        else:
            raise FhirError(400, "not-supported", f"creation: prefix {prefix} is not supported", "creation")
    return [r[0] for r in call.tx.conn.execute(stmt.limit(5000))]


def _next(day: str) -> str:
    from datetime import date, timedelta

    if len(day) == 10:
        return (date.fromisoformat(day) + timedelta(days=1)).isoformat()
    if len(day) == 7:
        y, m = int(day[:4]), int(day[5:7])
        return f"{y + (m == 12):04d}-{(m % 12) + 1:02d}"
    return f"{int(day[:4]) + 1:04d}"


def find_documents(call: Call) -> FhirResult:
    """ITI-67: DocumentReference search with the patient resolved across linked identities."""
    call.tx.flush()
    params = [(k, v) for k, v in call.req.query if k not in ("_format", "_pretty")]
    if isinstance(call.req.body, list):
        params.extend(call.req.body)
    expand = True
    out, creation = [], []
    for name, value in params:
        if name == "linked":
            if value not in ("true", "false"):
                raise FhirError(400, "invalid", "linked must be true or false", "linked")
            expand = value == "true"
    for name, value in params:
        if name == "linked":
            continue
        if name in ("patient", "patient.identifier", "subject") and value:
            out.append(("patient" if name != "subject" else "subject", _patient_refs(call, name, value, expand)))
        elif name == "creation":
            creation.append(value)
        else:
            out.append((name, value))
    if creation:
        ids = _creation_ids(call, creation)
        out.append(("_id", ",".join(ids) if ids else "-none-"))
    strict = "handling=strict" in (call.req.header("prefer") or "").replace(" ", "")
    bundle = call.store.index.search(call.tx, "DocumentReference", out, base_url=call.base_url, strict=strict,
                                     fence=call.fence)
    return FhirResult(200, bundle)


# ---------------------------------------------------------------------------------------------- consumer
def _format_of(doc: dict, media: str) -> str:
    fmt = ((doc.get("content") or [{}])[0].get("format") or {}).get("code") or ""
    if "cda" in fmt.lower() or media in ("application/hl7-v3+xml", "application/cda+xml"):
        return "cda"
    if media in ("text/xml", "application/xml"):
        return "cda"
    if media == "application/pdf":
        return "pdf"
    if media.startswith("image/"):
        return "image"
    if media in _FHIR_JSON:
        return "fhir"
    return "other"


def index_document(tx, store, doc_id: str, doc: dict | None) -> None:
    """(Re)index one DocumentReference; mark documents it replaces as superseded."""
    tx.conn.execute(delete(share_document).where(share_document.c.doc_id == doc_id))
    if doc is None:
        return
    for rel in doc.get("relatesTo") or []:
        target = ((rel or {}).get("target") or {}).get("reference") or ""
        if rel.get("code") == "replaces" and target.startswith("DocumentReference/"):
            old = tx.read("DocumentReference", target.split("/", 1)[1])
            if old is not None and not old.deleted and old.resource.get("status") == "current":
                tx.update("DocumentReference", old.res_id, {**old.resource, "status": "superseded"})
    att = ((doc.get("content") or [{}])[0] or {}).get("attachment") or {}
    media = (att.get("contentType") or "").split(";")[0].lower()
    fmt = _format_of(doc, media)
    row = {"doc_id": doc_id, "status": doc.get("status"), "format": fmt, "updated_us": now_us(),
           "patient": ((doc.get("subject") or {}).get("reference") or "").split("/")[-1] or None,
           "creation_us": parse_time(att.get("creation")), "title": (doc.get("description") or att.get("title") or "")[:256],
           "problems": "[]"}
    if fmt == "cda":
        raw = None
        if att.get("data"):
            raw = base64.b64decode(att["data"])
        elif att.get("url"):
            got = _bytes_in_tx(tx, store, att["url"])
            raw = got
        if raw:
            try:
                h = cda.parse_cda(raw)
                row.update(type_code=h.type_code, type_system=h.type_system, title=(h.title or row["title"])[:256],
                           author_org=h.author_org_id[:128], author_org_name=h.author_org_name[:256],
                           effective_us=int(h.effective.timestamp() * 1_000_000) if h.effective else None,
                           patient_ids=json.dumps(h.patient_ids), problems=json.dumps(h.problems, ensure_ascii=False))
            except FhirError as exc:
                row["problems"] = json.dumps([str(exc)],
                                             ensure_ascii=False)
    tx.conn.execute(insert(share_document).values(**row))


def _bytes_in_tx(tx, store, url: str) -> bytes | None:
    ref = url.split("/fhir/", 1)[-1] if "/fhir/" in url else url
    if not ref.startswith("Binary/"):
        return None
    bid = ref.split("/")[1]
    row = tx.conn.execute(select(share_blob).where(share_blob.c.binary_id == bid)).first()
    if row is not None:
        return None if row.size > cda.MAX_BYTES else (Path(store.settings.data_dir) / row.path).read_bytes()
    s = tx.read("Binary", bid)
    if s is None or s.deleted or not s.resource.get("data"):
        return None
    return base64.b64decode(s.resource["data"])


def consume(tx, events) -> None:
    """Change-log handler: index every changed DocumentReference (exactly once, in the consumer's transaction)."""
    latest = {}
    for e in events:
        if e.res_type == "DocumentReference":
            latest[e.res_id] = e
    for doc_id in latest:
        s = tx.read("DocumentReference", doc_id)
        index_document(tx, tx.store, doc_id, None if s is None or s.deleted else s.resource)


def document_problems(store, doc_id: str) -> tuple[dict | None, list[str]]:
    with store.read() as tx:
        row = tx.conn.execute(select(share_document).where(share_document.c.doc_id == doc_id)).mappings().first()
    if row is None:
        return None, []
    return dict(row), orjson.loads(row["problems"] or "[]")


FHIR_INTERACTIONS = [
    Interaction("POST", "Binary", "create", upload_binary, "Binary.c", tx="own", body="stream",
                summary="Upload a document as raw bytes in its own content type (streamed to storage)",
                capability="share"),
    Interaction("GET", "Binary/{id}", "read", read_binary, "Binary.r", tx="read",
                summary="ITI-68 Retrieve Document: the bytes in their own type (FHIR JSON when asked for)",
                capability="share"),
    Interaction("GET", "DocumentReference", "search-type", find_documents, "DocumentReference.s",
                summary="ITI-67 Find Document References (patient resolved across linked identities)",
                capability="share"),
    Interaction("POST", "DocumentReference/_search", "search-type", find_documents, "DocumentReference.s",
                body="form", summary="ITI-67 with a form body", capability="share"),
]

__all__ = ["FHIR_INTERACTIONS", "CONSUMER", "consume", "document_bytes", "blob_path"]
