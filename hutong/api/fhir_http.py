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
import os
from pathlib import Path
from urllib.parse import parse_qsl

import anyio
from starlette.responses import FileResponse, Response

from hutong.api.caller import authenticate
from hutong.api.responses import fhir_response, internal_error_response, outcome_response, scope_headers
from hutong.core.errors import FhirError
from hutong.core.memory import release_memory
from hutong.fhir.body import decode_body
from hutong.fhir.rest import FhirRequest, FhirResult, perform
from hutong.fhir.routes import Call
from hutong.store.errors import unavailable

log = logging.getLogger("hutong.api")

PREFIX = "/fhir"

_JSON_FORMATS = frozenset({"json", "application/json", "application/fhir+json", "text/json"})
_XML_FORMATS = frozenset({"xml", "text/xml", "application/xml", "application/fhir+xml"})


def check_format(query: list[tuple[str, str]], accept: str | None, own: frozenset[str] = frozenset()) -> None:
    """406 when the client asks for a format this node does not produce (FHIR XML, Turtle…);
    ``own``: the formats the interaction produces itself (its ``formats``)."""
    for key, value in query:
        if key == "_format":
            fmt = value.split(";")[0].strip().lower()
            if fmt not in _JSON_FORMATS and fmt not in own:
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


async def read_body(receive, limit: int) -> bytes:
    """The whole request body, refused with 413 beyond ``limit`` bytes (FHIR and plain routes)."""
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise FhirError(413, "too-costly", f"request body exceeds {limit} bytes for this interaction")
        chunks.append(chunk)
        if not message.get("more_body"):
            break
    return b"".join(chunks)


#: Bodies above this size are "large": a few at a time per process, memory handed back afterwards
#: (twenty concurrent 10 MB requests once left a worker at 1.2 GB).
LARGE_BODY = 1024 * 1024
LARGE_AT_ONCE = 4


async def spool_body(receive, folder) -> str:
    """Write the request body to a new file in ``folder`` chunk by chunk as it arrives; returns its path.

    The body never sits whole in memory (the body-size middleware in front still bounds it)."""
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

    #: Threads for reads and for writes: two pools, so that reads never queue behind writes that
    #: wait for the write lock (a stuck writer once filled the one shared pool, and reads by id
    #: waited 20-40 s behind it).
    READ_THREADS = 24
    WRITE_THREADS = 8

    def __init__(self, node):
        self.node = node
        self.routes = node.routes
        self.store = node.store
        self.public_url = node.settings.public_url
        self.max_waiting = node.settings.max_waiting_requests
        self._limiters: tuple | None = None
        self._large: anyio.Semaphore | None = None

    def _limiter(self, kind: str):
        if self._limiters is None:  # created on first use: anyio binds them to the running loop
            self._limiters = (anyio.CapacityLimiter(self.READ_THREADS), anyio.CapacityLimiter(self.WRITE_THREADS))
        limiter = self._limiters[1] if kind in ("write", "own") else self._limiters[0]
        if limiter.statistics().tasks_waiting >= self.max_waiting:
            raise unavailable("the node is overloaded: retry shortly")
        return limiter

    async def __call__(self, scope, receive, send):
        method = scope["method"]
        path = scope["path"][len(PREFIX):]
        large = False
        spooled: list[str] = []
        try:
            interaction, params = self.routes.match(method, path)
            headers = scope_headers(scope)
            length = headers.get("content-length", "")
            large = interaction.body != "none" and length.isdigit() and int(length) > LARGE_BODY
            if large:
                if self._large is None:
                    self._large = anyio.Semaphore(LARGE_AT_ONCE)
                async with self._large:
                    response = await self._answer(scope, receive, method, path, interaction, params, headers, spooled)
            else:
                response = await self._answer(scope, receive, method, path, interaction, params, headers, spooled)
        except FhirError as exc:
            response = outcome_response(exc)
        except Exception:  # the details go to the log, never to the client
            log.exception("unhandled error in %s %s", method, path[:200])
            response = internal_error_response()
        finally:
            for spooled_path in spooled:  # a spooled body the handler did not keep
                if os.path.exists(spooled_path):
                    os.unlink(spooled_path)
        await response(scope, receive, send)
        if large:
            release_memory()

    async def _answer(self, scope, receive, method, path, interaction, params, headers, spooled: list[str]):
        qs = scope.get("query_string") or b""
        query = parse_qsl(qs.decode("latin-1"), keep_blank_values=True) if qs else []
        check_format(query, headers.get("accept"), interaction.formats)
        caller = authenticate(headers.get, self.node)
        body = None
        if interaction.body == "stream":
            body = await spool_body(receive, Path(self.node.settings.data_dir) / "uploads")
            spooled.append(body)
        elif interaction.body != "none":
            raw_kind = interaction.body == "raw"
            limit = interaction.max_body or (self.node.settings.max_body_bytes if raw_kind
                                             else self.node.settings.max_resource_bytes)
            raw = await read_body(receive, limit)
            body = raw if raw_kind else decode_body(raw, headers.get("content-type"))
            del raw  # the parsed body is what is kept
        req = FhirRequest(method, path.strip("/"), query, headers, body)
        call = Call(interaction, params, req, self.store, caller, base_url(scope, headers, self.public_url),
                    None, self.routes)
        self.routes.check(call)
        # In the thread pool: reading inline on the event loop was measured to starve other
        # connections (p99 300 ms against 12 ms under the same load).
        result = await anyio.to_thread.run_sync(perform, call, limiter=self._limiter(interaction.tx))
        return to_response(result, head=method == "HEAD")
