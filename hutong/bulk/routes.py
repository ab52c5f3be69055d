"""Bulk Data ``$export`` (FHIR Bulk Data Access 2.0) as rows of the route table."""

from __future__ import annotations

from hutong.bulk import jobs
from hutong.core.errors import FhirError, bad_request
from hutong.fhir.rest import FhirResult
from hutong.fhir.routes import Call, Interaction
from hutong.search.compartment import resource_types
from hutong.search.query import parse_date

_NDJSON = ("application/fhir+ndjson", "application/ndjson", "ndjson")


def _kickoff(call: Call, level: str) -> FhirResult:
    query = dict(call.req.query)
    fmt = query.get("_outputFormat")
    if fmt and fmt not in _NDJSON:
        raise bad_request(f"_outputFormat {fmt[:60]!r} is not supported; use application/fhir+ndjson", "_outputFormat")
    prefer = (call.req.header("prefer") or "").replace(" ", "").lower()
    if "respond-async" not in prefer:
        raise bad_request("Bulk Data export needs the header Prefer: respond-async", "Prefer")
    for key in query:
        if key not in ("_outputFormat", "_type", "_since", "_format"):
            raise bad_request(f"$export parameter {key[:40]!r} is not supported", key)
    since = parse_date(query["_since"], "_since")[0] if query.get("_since") else None
    url = call.base_url + "/" + call.req.path + ("?" + "&".join(f"{k}={v}" for k, v in call.req.query)
                                                 if call.req.query else "")
    job_id = jobs.kickoff(call.store, level=level, group_id=call.res_id, types=resource_types(query.get("_type")),
                          since_us=since, request_url=url, base_url=call.base_url, owner=call.caller.client_id)
    jobs.wake(call.store)
    return FhirResult(202, None, {"Content-Location": f"{call.base_url}/$export-status/{job_id}"})


def export_system(call: Call) -> FhirResult:
    return _kickoff(call, "system")


def export_patients(call: Call) -> FhirResult:
    return _kickoff(call, "patient")


def export_group(call: Call) -> FhirResult:
    return _kickoff(call, "group")


def export_status(call: Call) -> FhirResult:
    state = jobs.status(call.store, call.res_id)
    if state.status in ("queued", "running"):
        return FhirResult(202, None, {"X-Progress": state.progress[:100], "Retry-After": "1"})
    if state.status == "failed":
        raise FhirError(500, "exception", state.error or "export failed")
    return FhirResult(200, state.manifest, {"Expires": state.expires}, media_type="application/json")


def export_cancel(call: Call) -> FhirResult:
    jobs.cancel(call.store, call.res_id)
    return FhirResult(202)


def export_file(call: Call) -> FhirResult:
    path = jobs.output_file(call.store, call.res_id, call.params["name"])
    return FhirResult(200, file=str(path), media_type="application/fhir+ndjson")


_SYSTEM = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/export"
_PATIENT = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/patient-export"
_GROUP = "http://hl7.org/fhir/uv/bulkdata/OperationDefinition/group-export"


def _i(method, pattern, handler, summary, **kw) -> Interaction:
    return Interaction(method, pattern, "operation", handler, "bulk.export", tx="own", in_bundle=False,
                       summary=summary, capability="bulk", **kw)


FHIR_INTERACTIONS = [
    _i("GET", "$export", export_system, "Bulk Data export of the whole system (asynchronous)",
       operation="export", definition=_SYSTEM),
    _i("GET", "Patient/$export", export_patients, "Bulk Data export of all patients' compartments",
       operation="export", definition=_PATIENT),
    _i("GET", "Group/{id}/$export", export_group, "Bulk Data export of a group's patients",
       operation="export", definition=_GROUP),
    _i("GET", "$export-status/{id}", export_status, "Bulk Data export status (202 in progress, 200 manifest)"),
    _i("DELETE", "$export-status/{id}", export_cancel, "Cancel or delete a Bulk Data export"),
    _i("GET", "$export-file/{id}/{name}", export_file, "Download one NDJSON file of an export"),
]
