"""Plain routes: capability API endpoints served without FastAPI's routing and dependency injection.

Most capability routes are FastAPI routes. A few are called thousands of times a second (the
health-card verification at every registration desk) and there FastAPI's route scan, dependency
solving and middleware layers cost more CPU than the work. A ``PlainRoute`` is such an endpoint,
declared once: method, a static path, the permission, the pydantic request model, the handler and
its documentation. ``PlainRoutes`` answers them in front of FastAPI with the same caller
(``authenticate``), the same policy (``node.authorize``), the same model validation (pydantic, with
the same 400 OperationOutcome as FastAPI routes give) and the same error answers; the OpenAPI
document describes them from the same declaration (``openapi_paths``). They are not copies of
FastAPI routes: the path exists once, here.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import orjson
from pydantic import BaseModel, ValidationError
from starlette.responses import Response

from hutong.api.caller import PUBLIC, authenticate
from hutong.api.fhir_http import read_body
from hutong.api.responses import fhir_response, internal_error_response, outcome_response, scope_headers
from hutong.core.caller import Caller
from hutong.core.errors import FhirError, Issue, operation_outcome
from hutong.fhir.body import decode_json

log = logging.getLogger("hutong.api")


@dataclass(frozen=True)
class PlainRoute:
    """One endpoint: ``handler(body, caller, node)`` returns a dict (answered as JSON) or a Response."""

    method: str
    path: str
    permission: str
    handler: Callable[[BaseModel | None, Caller, object], Awaitable[dict | Response]]
    request_model: type[BaseModel] | None = None
    response_model: type[BaseModel] | None = None
    summary: str = ""
    description: str = ""
    tags: tuple[str, ...] = ()
    responses: dict = field(default_factory=dict)
    max_body: int = 64 * 1024


def validation_issues(errors: list[dict]) -> list[Issue]:
    """Pydantic errors as OperationOutcome issues (FastAPI routes and plain routes use this)."""
    issues = []
    for err in errors[:20]:
        loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body")
        if err.get("type") == "json_invalid":
            ctx = err.get("ctx") or {}
            issues.append(Issue("error", "structure", f"the body is not valid JSON: {ctx.get('error', 'malformed')}"))
            continue
        issues.append(Issue("error", "invalid", f"{loc or 'request'}: {err.get('msg', 'invalid')}", [loc] if loc else []))
    return issues or [Issue("error", "invalid", "invalid request")]


class PlainRoutes:
    """ASGI layer answering the node's plain routes; every other request goes to ``app``."""

    def __init__(self, app, node, routes: list[PlainRoute]):
        self.app = app
        self.node = node
        self.routes: dict[tuple[str, str], PlainRoute] = {}
        for route in routes:
            key = (route.method, route.path)
            if key in self.routes:
                raise ValueError(f"{route.method} {route.path} is declared twice")
            self.routes[key] = route

    async def __call__(self, scope, receive, send):
        route = self.routes.get((scope.get("method"), scope.get("path"))) if scope["type"] == "http" else None
        if route is None:
            return await self.app(scope, receive, send)
        response = await self._answer(route, scope, receive)
        await response(scope, receive, send)

    async def _answer(self, route: PlainRoute, scope, receive) -> Response:
        try:
            headers = scope_headers(scope)
            caller = authenticate(headers.get, self.node)
            if route.permission != PUBLIC:
                self.node.authorize(caller, route.permission, None)
            body = None
            if route.request_model is not None:
                raw = await read_body(receive, route.max_body)
                try:
                    body = route.request_model.model_validate(decode_json(raw, headers.get("content-type")))
                except ValidationError as exc:
                    return fhir_response(operation_outcome(validation_issues(exc.errors())), 400)
            result = await route.handler(body, caller, self.node)
            if isinstance(result, Response):
                return result
            return Response(orjson.dumps(result), media_type="application/json")
        except FhirError as exc:
            return outcome_response(exc)
        except Exception:  # the details go to the log, never to the client
            log.exception("unhandled error in %s %s", route.method, route.path)
            return internal_error_response()


def openapi_paths(routes: list[PlainRoute], components: dict) -> dict:
    """OpenAPI operations for plain routes; their models' schemas are added to ``components``."""
    paths: dict = {}
    schemas = components.setdefault("schemas", {})
    for route in routes:
        op: dict = {"summary": route.summary, "description": route.description + f"\n\nPermission `{route.permission}`.",
                    "operationId": f"{route.method.lower()}_{route.path.strip('/').replace('/', '_')}",
                    "tags": list(route.tags), "responses": {}}
        if route.request_model is not None:
            op["requestBody"] = {"required": True, "content": {"application/json": {
                "schema": _schema(route.request_model, schemas)}}}
        ok = {"description": "OK"}
        if route.response_model is not None:
            ok["content"] = {"application/json": {"schema": _schema(route.response_model, schemas)}}
        op["responses"]["200"] = ok
        for status, spec in route.responses.items():
            op["responses"][str(status)] = {**spec, "content": {"application/fhir+json": {"schema": {"type": "object"}}}}
        op["responses"].setdefault("400", {"description": "Malformed request (OperationOutcome)",
                                           "content": {"application/fhir+json": {"schema": {"type": "object"}}}})
        paths.setdefault(route.path, {})[route.method.lower()] = op
    return paths


def _schema(model: type[BaseModel], schemas: dict) -> dict:
    doc = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, sub in doc.pop("$defs", {}).items():
        schemas.setdefault(name, sub)
    schemas.setdefault(model.__name__, doc)
    return {"$ref": f"#/components/schemas/{model.__name__}"}
