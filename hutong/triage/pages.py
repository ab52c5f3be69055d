"""The resident's page of the triage assistant (``/portal/triage``): describe the trouble, get the
departments to see, and the call-120 advice when the words show an emergency."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse

from hutong.api.caller import permit
from hutong.core.caller import Caller
from hutong.core.errors import FhirError
from hutong.triage.routes import service
from hutong.triage.service import MAX_TEXT
from hutong.web.i18n import N_, current_locale
from hutong.web.i18n import gettext as _
from hutong.web.render import add_templates, render

router = APIRouter(tags=["triage 智能导诊"])
add_templates("triage", Path(__file__).resolve().parent / "templates")

SEXES = [("", N_("不填")), ("female", N_("女")), ("male", N_("男"))]


def _form(text: str = "", age: str = "", sex: str = "") -> dict:
    return {"text": text, "age": age, "sex": sex, "sexes": [(v, _(label)) for v, label in SEXES]}


@router.get("/portal/triage", response_class=HTMLResponse, summary="Resident portal: which department to see")
def triage_page(request: Request, caller: Caller = Depends(permit("triage.ask"))):
    return render(request, "triage/ask.html", {"form": _form(), "answer": None, "errors": []},
                  audience="resident", title=_("智能导诊"))


@router.post("/portal/triage", response_class=HTMLResponse, summary="Resident portal: ask the triage assistant")
def triage_ask(request: Request, text: str = Form("", max_length=MAX_TEXT), age: str = Form("", max_length=8),
               sex: str = Form("", max_length=8), caller: Caller = Depends(permit("triage.ask"))):
    # Answered on the same page (a question changes nothing, so no redirect): the text is health
    # information and stays out of URLs and access logs.
    form = _form(text, age, sex)
    errors = []
    age_value = None
    if age.strip():
        try:
            age_value = float(age)
        except ValueError:
            errors.append(_("年龄请填写数字（岁）"))
    if sex not in ("", "male", "female"):
        errors.append(_("性别无效"))
    answer = None
    if not errors:
        try:
            answer = service(request.app.state.node).answer(text, age_value, sex or None, top=3)
        except FhirError as exc:
            errors.append(exc.diagnostics)
    status = 400 if errors else 200
    english = current_locale().startswith("en")
    advice = None
    if answer is not None:
        advice = answer["advice_en"] if english else answer["advice"]
    return render(request, "triage/ask.html", {"form": form, "answer": answer, "advice": advice, "errors": errors,
                                               "english": english},
                  audience="resident", title=_("智能导诊"), status=status)
