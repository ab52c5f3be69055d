"""The HTTP floor: a bare Starlette app answering a small JSON document (what uvicorn and the
machine allow before any Hutong code runs)."""

from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

_BODY = b'{"resourceType":"Patient","id":"floor","active":true}'


async def _patient(_request):
    return Response(_BODY, media_type="application/fhir+json")


app = Starlette(routes=[Route("/", _patient)])
