"""HTTP for the FHIR API: every request under ``/fhir`` is answered from the one route table.

A plain ASGI app (no FastAPI routing or dependency injection: read by id is the hottest request a
regional platform answers, and the framework would cost more than the database). For each request:
match the route (404/405 before anything is read), check the format asked for (406 for XML),
establish the caller (``hutong.api.caller.authenticate``), read and decode the body the interaction
declares, authorise the call, run it in the thread pool inside the transaction it declares, and
answer FHIR JSON (``hutong/api/responses.py``). The OpenAPI document for these paths is generated
from the same table (``hutong/api/openapi.py``).
"""

from __future__ import annotations

import logging
from pathlib import Path
from urllib.parse import parse_qsl

from starlette.concurrency import run_in_threadpool
from starlette.responses import FileResponse, Response

from hutong.api.caller import authenticate
from hutong.api.responses import fhir_response, internal_error_response, outcome_response, scope_headers
from hutong.core.errors import FhirError
from hutong.fhir.body import decode_body
from hutong.fhir.rest import FhirRequest, FhirResult, perform
from hutong.fhir.routes import Call

log = logging.getLogger("hutong.api")

PREFIX = "/fhir"

_JSON_FORMATS = frozenset({"json", "application/json", "application/fhir+json", "text/json"})
_XML_FORMATS = frozenset({"xml", "text/xml", "application/xml", "application/fhir+xml"})


def check_format(query: list[tuple[str, str]], accept: str | None) -> None:
    """406 when the client asks for a format this node does not produce (FHIR XML, Turtle…)."""
    for key, value in query:
        if key == "_format":
            fmt = value.split(";")[0].strip().lower()
            if fmt not in _JSON_FORMATS:
                raise FhirError(406, "not-supported", f"_format {value[:40]!r} is not supported: "
                                "this server answers FHIR JSON only (application/fhir+json)")
    if accept:
        types = [t.split(";")[0].strip().lower() for t in accept.split(",")]
        if types and all(t in _XML_FORMATS or t == "application/fhir+turtle" for t in types):
            raise FhirError(406, "not-supported", "this server answers FHIR JSON only (application/fhir+json); "
                            f"Accept was {accept[:60]!r}")


def base_url(scope, headers: dict[str, str], public_url: str = "") -> str:
    """The FHIR base as the client sees it (the configured public URL behind a proxy)."""
    if public_url:
        return public_url.rstrip("/") + PREFIX
    host = headers.get("host") or "{}:{}".format(*(scope.get("server") or ("localhost", 80)))
    return f"{scope.get('scheme', 'http')}://{host}{scope.get('root_path', '')}{PREFIX}"


async def read_body(receive) -> bytes:
    """The whole request body (the body-size middleware in front bounds it)."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(chunks)


async def spool_body(receive, folder) -> str:
    """Write the request body to a new file in ``folder`` chunk by chunk as it arrives; returns its path.

    The body never sits whole in memory (the body-size middleware in front still bounds it)."""
    import os
    import tempfile

    os.makedirs(folder, exist_ok=True)
    fd, path = tempfile.mkstemp(prefix="upload-", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    break
                fh.write(message.get("body", b""))
                if not message.get("more_body"):
                    break
    except BaseException:
        os.unlink(path)
        raise
    return path


def to_response(result: FhirResult, head: bool = False) -> Response:
    """The HTTP answer for a ``FhirResult``."""
    if result.file is not None:
        return FileResponse(result.file, status_code=result.status, headers=result.headers,
                            media_type=result.media_type or "application/octet-stream")
    if head or result.body is None:
        return fhir_response(None, result.status, result.headers)
    if result.media_type:
        return Response(result.json_bytes(), status_code=result.status, headers=result.headers,
                        media_type=result.media_type)
    return fhir_response(result.json_bytes(), result.status, result.headers)


class FhirHttp:
    """The ASGI app for ``/fhir``: route table, caller, body, authorisation, transaction, answer."""

    def __init__(self, node):
        self.node = node
        self.routes = node.routes
        self.store = node.store
        self.public_url = node.settings.public_url

    async def __call__(self, scope, receive, send):
        method = scope["method"]
        path = scope["path"][len(PREFIX):]
        stream_path = None
        try:
            interaction, params = self.routes.match(method, path)
            headers = scope_headers(scope)
            qs = scope.get("query_string") or b""
            query = parse_qsl(qs.decode("latin-1"), keep_blank_values=True) if qs else []
            check_format(query, headers.get("accept"))
            caller = authenticate(headers.get)
            body = None
            if interaction.body == "stream":
                body = stream_path = await spool_body(receive, Path(self.node.settings.data_dir) / "uploads")
            elif interaction.body != "none":
                raw = await read_body(receive)
                body = raw if interaction.body == "raw" else decode_body(raw, headers.get("content-type"))
            req = FhirRequest(method, path.strip("/"), query, headers, body)
            call = Call(interaction, params, req, self.store, caller, base_url(scope, headers, self.public_url),
                        None, self.routes)
            self.routes.check(call)
            # In the thread pool: reading inline on the event loop was measured to starve other
            # connections (p99 300 ms against 12 ms under the same load).
            result = await run_in_threadpool(perform, call)
            response = to_response(result, head=method == "HEAD")
        except FhirError as exc:
            response = outcome_response(exc)
        except Exception:  # the details go to the log, never to the client
            log.exception("unhandled error in %s %s", method, path[:200])
            response = internal_error_response()
        finally:
            if stream_path is not None:  # a spooled body the handler did not keep
                import os

                if os.path.exists(stream_path):
                    os.unlink(stream_path)
        await response(scope, receive, send)
