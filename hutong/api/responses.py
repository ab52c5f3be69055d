"""FHIR HTTP responses, shared by the routed app and the ASGI fast paths in front of it."""

from __future__ import annotations

import orjson
from starlette.responses import Response

from hutong.core.errors import FhirError, Issue, operation_outcome

FHIR_JSON = "application/fhir+json"


def fhir_response(body: dict | str | bytes | None, status: int = 200, headers: dict | None = None) -> Response:
    """A ``application/fhir+json`` response from a dict, JSON text or bytes."""
    if body is None:
        content = b""
    elif isinstance(body, bytes):
        content = body
    elif isinstance(body, str):
        content = body.encode()
    else:
        content = orjson.dumps(body)
    return Response(content=content, status_code=status, headers=headers, media_type=FHIR_JSON + "; charset=utf-8")


def outcome_response(exc: FhirError) -> Response:
    """The OperationOutcome answer for a FHIR error."""
    return fhir_response(exc.outcome(), exc.status, exc.headers or None)


def internal_error_response() -> Response:
    """The answer for an unexpected exception (its details go to the log, never to the client)."""
    return fhir_response(operation_outcome(Issue("fatal", "exception", "internal server error")), 500)


def scope_headers(scope) -> dict[str, str]:
    """An ASGI scope's request headers as a dict with lower-case names."""
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
