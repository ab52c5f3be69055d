"""The auditors' page of the audit trail (``/console/audit``): search by patient, user, institution,
time and action, review break-the-glass events, and check the hash chain.

The page is a GET form (a search changes nothing); the verification runs only when asked for and
needs ``audit.verify``. Patients appear by their record id, as in the trail itself."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse

from hutong.api.caller import permit
from hutong.core.caller import Caller
from hutong.core.errors import FhirError
from hutong.security import audit
from hutong.security.service import security_of
from hutong.web import add_templates, render
from hutong.web.i18n import N_, gettext

add_templates("security", Path(__file__).resolve().parent / "templates")
router = APIRouter(tags=["security pages"])

PAGE = 50
#: FHIR AuditEvent.action codes as the page names them.
ACTIONS = [("C", N_("新建")), ("R", N_("查看")), ("U", N_("修改")), ("D", N_("删除")), ("E", N_("执行"))]
#: FHIR AuditEvent.outcome codes.
OUTCOMES = {"0": N_("成功"), "4": N_("轻微失败"), "8": N_("严重失败"), "12": N_("重大失败")}


@router.get("/console/audit", response_class=HTMLResponse, summary="Search the audit trail (auditors)")
def audit_page(request: Request, caller: Caller = Depends(permit("audit.read")),
               patient: str = Query("", max_length=64), agent: str = Query("", max_length=200),
               institution: str = Query("", max_length=64), action: str = Query("", max_length=1),
               since: str = Query("", max_length=40), until: str = Query("", max_length=40),
               break_glass: str = Query("", max_length=1), offset: int = Query(0, ge=0, le=1_000_000),
               verify: str = Query("", max_length=1)):
    from hutong.security.routes import _time

    node = request.app.state.node
    errors: list[str] = []
    criteria: dict = {"patient": patient.strip() or None, "agent": agent.strip() or None,
                      "institution": institution.strip() or None}
    if action and action not in dict(ACTIONS):
        errors.append(gettext("操作类型无效"))
    else:
        criteria["action"] = action or None
    for name, value in (("since_us", since), ("until_us", until)):
        try:
            criteria[name] = _time(value.strip())
        except FhirError:
            errors.append(gettext("时间格式应为 2026-12-01 或 2026-12-01T08:00:00+08:00"))
    criteria["break_glass"] = True if break_glass == "1" else None
    check = None
    if verify == "1":
        node.authorize(caller, "audit.verify", None)
        security_of(node).audit.drain()
        check = audit.verify(node.store)
    rows = []
    more = False
    if not errors:
        security_of(node).audit.drain()
        found = audit.search_rows(node.store, limit=PAGE + 1, offset=offset, **criteria)
        more = len(found) > PAGE
        rows = found[:PAGE]
    form = {"patient": patient, "agent": agent, "institution": institution, "action": action, "since": since,
            "until": until, "break_glass": break_glass}
    query = {k: v for k, v in form.items() if v}

    def page_url(at: int) -> str:
        return "/console/audit?" + urlencode({**query, "offset": at})

    return render(request, "security/audit.html", {
        "form": form, "rows": rows, "errors": errors, "check": check,
        "actions": [(code, gettext(label)) for code, label in ACTIONS],
        "action_names": {code: gettext(label) for code, label in ACTIONS},
        "outcomes": {code: gettext(label) for code, label in OUTCOMES.items()},
        "prev_url": page_url(max(0, offset - PAGE)) if offset else None,
        "next_url": page_url(offset + PAGE) if more else None,
        "verify_url": "/console/audit?" + urlencode({**query, "verify": "1"}),
    }, audience="console", title=gettext("审计日志"), status=400 if errors else 200)
