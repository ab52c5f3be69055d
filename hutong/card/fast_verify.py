"""``POST /api/card/verify`` answered straight from ASGI for well-formed requests.

Verification is the platform's busiest write (every scan at every counter). Through FastAPI, the
router, the pydantic request model and the middleware stack cost about as much server CPU as the
verification itself. This middleware handles only requests that are already in canonical form
(a small JSON object with exactly the four fields, valid values, no surrounding whitespace) with the
same caller check, the same service call and the same responses as the route. Anything else —
including every malformed request — is handed to the route unchanged (the body replayed), so
errors keep coming from one place.
"""

from __future__ import annotations

import logging
import re

import orjson
from starlette.responses import Response

from hutong.api.caller import caller_from_headers
from hutong.api.responses import internal_error_response, outcome_response, scope_headers
from hutong.card import service
from hutong.card.verify import CardRefusal
from hutong.core.errors import FhirError

log = logging.getLogger("hutong.card")

PATH = "/api/card/verify"
_MAX_BODY = 4096
_ORG = re.compile(r"^[A-Za-z0-9\-\.]{1,64}$")  # routes.ORG_PATTERN
_TERMINALS = frozenset({"counter", "kiosk", "doctor-workstation", "mobile-app"})
_PURPOSES = frozenset({"registration", "consultation", "examination", "pharmacy", "payment"})
_FIELDS = frozenset({"qr_text", "institution", "terminal", "purpose"})


def canonical_request(body: bytes) -> dict | None:
    """The request as a dict when it is exactly what the route's model accepts unchanged, else None."""
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    if type(doc) is not dict or doc.keys() != _FIELDS:
        return None
    for value in doc.values():
        if type(value) is not str or value != value.strip():
            return None
    if not 1 <= len(doc["qr_text"]) <= 512 or not _ORG.match(doc["institution"]):
        return None
    if doc["terminal"] not in _TERMINALS or doc["purpose"] not in _PURPOSES:
        return None
    return doc


class VerifyFastPath:
    """ASGI middleware for the canonical ``POST /api/card/verify``."""

    def __init__(self, app, store):
        self.app = app
        self.store = store

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = scope_headers(scope)
        length = headers.get("content-length", "")
        if not length.isdigit() or int(length) > _MAX_BODY or "chunked" in headers.get("transfer-encoding", ""):
            await self.app(scope, receive, send)
            return
        chunks = []
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        doc = canonical_request(body)
        if doc is None:
            await self.app(scope, _replay(body, receive), send)
            return
        response = await self._verify(doc, headers)
        await response(scope, receive, send)

    async def _verify(self, doc: dict, headers: dict) -> Response:
        from hutong.card.routes import _is_staff

        try:
            caller = caller_from_headers(headers.get)
            if caller.institution and caller.institution != doc["institution"]:
                raise CardRefusal("institution-mismatch")
            ctx = service.ScanContext(doc["institution"], doc["terminal"], doc["purpose"],
                                      full_identity=_is_staff(caller))
            result = await service.verify_scan_async(self.store, doc["qr_text"], ctx)
        except FhirError as exc:
            return outcome_response(exc)
        except Exception:  # the app's answer for the unexpected
            log.exception("unhandled error in card verification")
            return internal_error_response()
        return Response(orjson.dumps(result), media_type="application/json")


def _replay(body: bytes, receive):
    sent = False

    async def replay():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
