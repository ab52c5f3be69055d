"""The benchmark's baseline: this tree's node with security bypassed (no token check, no policy, no
audit, no security middleware: headers, rate limits, detection), served as
``uvicorn benchmarks.security.open_app:app``. Only for measuring what security costs; the product has
no such switch."""

from hutong.api import fhir_http, node
from hutong.core.caller import Caller
from hutong.security import middleware, recording

_INTERNAL = Caller()
recording.audited = lambda item, _node: item  # noqa: E731 - rows as declared, unwrapped
fhir_http.authenticate = lambda _header, _node=None: _INTERNAL  # noqa: E731
node.open_policy = lambda *_a: None  # noqa: E731


async def _pass_through(self, scope, receive, send):
    await self.app(scope, receive, send)


middleware.SecurityLayer.__call__ = _pass_through

from hutong.api import app as _app  # noqa: E402

_app_obj = _app.create_app()
_app_obj.node.authorize = lambda *_a: None
app = _app_obj
