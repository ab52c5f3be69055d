"""HTTP API of the triage assistant: ``POST /api/triage`` and the department list."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from hutong.api.caller import PUBLIC, permit
from hutong.core.caller import Caller
from hutong.triage.departments import departments
from hutong.triage.install import triager_for
from hutong.triage.service import MAX_TEXT, Triager
from hutong.triage.vocab import Intent, Sex

router = APIRouter(tags=["triage 智能导诊"])
SERVICE = "triage"


class TriageQuestion(BaseModel):
    """A resident's question."""

    model_config = ConfigDict(extra="forbid")
    text: str = Field(..., min_length=1, max_length=MAX_TEXT, description="症状或问题，中文口语即可")
    age: float | None = Field(None, ge=0, le=130, description="年龄（岁，可为小数：0.25 = 3个月）")
    sex: Sex | None = None
    top: int = Field(5, ge=3, le=10, description="返回的科室数（至少 3 个）")
    offered: list[str] | None = Field(None, max_length=200, description="只在这些科室代码（附近机构开设）中推荐")


class DepartmentAnswer(BaseModel):
    code: str
    name: str
    name_en: str = ""
    score: float
    reason: str
    reason_en: str = ""


class RedFlagAnswer(BaseModel):
    id: str
    label: str
    label_en: str
    evidence: str


class TriageAnswer(BaseModel):
    """The contract: ``departments`` best first (≥3), ``urgent``, ``advice``, ``intent``; more fields follow."""

    departments: list[DepartmentAnswer]
    urgent: bool
    advice: str
    advice_en: str = ""
    intent: Intent
    red_flags: list[RedFlagAnswer] = []
    age_used: float | None = None
    model: str = ""
    narrowed: bool | None = None


def service(node) -> Triager:
    """The node's triage service (made at start-up; made here on first use otherwise)."""
    svc = node.services.get(SERVICE)
    if svc is None:
        svc = node.services[SERVICE] = triager_for(node.settings)
    return svc


def startup(node) -> None:
    """Load the model and the tokenizer once, before the first question."""
    svc = service(node)
    svc.answer("头痛")


@router.post("/api/triage", response_model=TriageAnswer, response_model_exclude_none=True,
             summary="智能导诊：症状描述 → 推荐科室、危急提示与问题类型")
def ask(body: TriageQuestion, request: Request, caller: Caller = Depends(permit("triage.ask"))):
    return service(request.app.state.node).answer(body.text, body.age, body.sex, top=body.top, offered=body.offered)


@router.get("/api/triage/departments", summary="《医疗机构诊疗科目名录》科室代码表")
def department_list(caller: Caller = Depends(permit(PUBLIC))):
    return [{"code": d.code, "name": d.name, "common": d.common, "parent": d.parent}
            for d in departments().values()]


@router.get("/api/triage/model", summary="当前使用的导诊模型及其来源")
def model_info(request: Request, caller: Caller = Depends(permit("triage.ask"))):
    meta = service(request.app.state.node).model.meta
    return {k: v for k, v in meta.items() if k not in ("per_class",)} | {"per_class": meta.get("per_class", {})}
