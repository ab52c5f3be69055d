"""The words of the consult capability, defined once: kinds of work, their statuses and the moves
between them (the state machines), and how each status maps onto FHIR ``Task.status``.

Every tracked piece of work is a FHIR ``Task`` whose ``businessStatus`` is one of the statuses
below; ``TRANSITIONS`` is the whole workflow (``docs/consult.md`` draws it). A move not listed is
refused with 409, so a client can never put a piece of work into a state its workflow has no
way to reach.
"""

from __future__ import annotations

from typing import Literal

from hutong.web.i18n import N_

BASE = "https://hutong.example/fhir"
#: Code systems and extensions of this capability (documented in docs/consult.md).
KIND_SYSTEM = f"{BASE}/CodeSystem/consult-kind"
STATUS_SYSTEM = f"{BASE}/CodeSystem/consult-status"
DECLINE_SYSTEM = f"{BASE}/CodeSystem/referral-decline-reason"
EXT_RETAIN = f"{BASE}/StructureDefinition/retain-until"
EXT_URGENT = f"{BASE}/StructureDefinition/red-flag"
DEPARTMENT_SYSTEM = f"{BASE}/CodeSystem/department"     # 医疗机构诊疗科目名录 (as the simulator and triage use)
ROLE_SYSTEM = f"{BASE}/CodeSystem/practitioner-role"
INSTITUTION_KIND = f"{BASE}/CodeSystem/institution-kind"
INSTITUTION_LEVEL = f"{BASE}/CodeSystem/institution-level"

Kind = Literal["free", "followup", "teleconsult", "referral"]
TeleKind = Literal["consultation", "imaging", "ecg", "outpatient"]
Direction = Literal["up", "down"]

KINDS: dict[str, tuple[str, str]] = {
    "free": (N_("义诊咨询"), "free consultation"),
    "followup": (N_("互联网复诊"), "internet follow-up visit"),
    "teleconsult": (N_("远程医疗"), "telemedicine"),
    "referral": (N_("双向转诊"), "two-way referral"),
}
TELE_KINDS: dict[str, tuple[str, str]] = {
    "consultation": (N_("远程会诊"), "teleconsultation"),
    "imaging": (N_("远程影像诊断"), "remote imaging reading"),
    "ecg": (N_("远程心电诊断"), "remote ECG reading"),
    "outpatient": (N_("远程门诊"), "remote outpatient"),
}

# ---------------------------------------------------------------------------------------------- statuses
#: Online consultation (free and follow-up).
CONSULT_STATUS = ("waiting", "in-progress", "closed", "cancelled")
#: Referral (the issue's workflow, in order).
REFERRAL_STATUS = ("requested", "accepted", "declined", "no-slot", "booked", "arrived", "completed", "returned",
                   "redirected", "cancelled")
#: Telemedicine.
TELE_STATUS = ("requested", "scheduled", "in-session", "reported", "declined", "cancelled")

STATUS_LABELS: dict[str, tuple[str, str]] = {
    "waiting": (N_("待接诊"), "waiting"), "in-progress": (N_("进行中"), "in progress"), "closed": (N_("已结束"), "closed"),
    "cancelled": (N_("已取消"), "cancelled"), "requested": (N_("已申请"), "requested"), "accepted": (N_("已接收"), "accepted"),
    "declined": (N_("已拒绝"), "declined"), "no-slot": (N_("无号源"), "no slot available"), "booked": (N_("已预约"), "booked"),
    "arrived": (N_("已到诊"), "arrived"), "completed": (N_("已完成"), "completed"), "returned": (N_("已下转"), "returned down"),
    "redirected": (N_("已改转"), "redirected"), "scheduled": (N_("已排期"), "scheduled"), "in-session": (N_("会诊中"), "in session"),
    "reported": (N_("已出报告"), "reported"),
}

#: kind → {status: statuses it may move to}
TRANSITIONS: dict[str, dict[str, frozenset[str]]] = {
    "consultation": {
        "waiting": frozenset({"in-progress", "cancelled"}),
        "in-progress": frozenset({"closed"}),
        "closed": frozenset(), "cancelled": frozenset(),
    },
    "referral": {
        "requested": frozenset({"accepted", "declined", "no-slot", "cancelled"}),
        "accepted": frozenset({"booked", "no-slot", "cancelled"}),
        "no-slot": frozenset({"booked", "redirected", "cancelled"}),
        "declined": frozenset({"redirected", "cancelled"}),
        "booked": frozenset({"arrived", "cancelled"}),
        "arrived": frozenset({"completed"}),
        "completed": frozenset({"returned"}),
        "returned": frozenset(), "redirected": frozenset(), "cancelled": frozenset(),
    },
    "teleconsult": {
        "requested": frozenset({"scheduled", "reported", "declined", "cancelled"}),  # readings need no session
        "scheduled": frozenset({"in-session", "scheduled", "reported", "cancelled"}),
        "in-session": frozenset({"reported"}),
        "reported": frozenset(), "declined": frozenset(), "cancelled": frozenset(),
    },
}

#: Business status → FHIR Task.status (R4 TaskStatus).
TASK_STATUS: dict[str, str] = {
    "waiting": "requested", "in-progress": "in-progress", "closed": "completed", "cancelled": "cancelled",
    "requested": "requested", "accepted": "accepted", "declined": "rejected", "no-slot": "on-hold",
    "booked": "ready", "arrived": "in-progress", "completed": "completed", "returned": "completed",
    "redirected": "cancelled", "scheduled": "ready", "in-session": "in-progress", "reported": "completed",
}

#: Statuses where nothing more happens (an item in one of these is never "open").
FINAL = frozenset({"closed", "cancelled", "returned", "redirected", "reported"})
#: Referral statuses the sender must act on (redirect or cancel).
SENDER_ACTION = frozenset({"declined", "no-slot"})

DeclineReason = Literal["no-slot", "not-indicated", "beyond-capability", "incomplete-records", "patient-refused", "other"]
DECLINE_REASONS: dict[str, tuple[str, str]] = {
    "no-slot": (N_("无号源"), "no slot available"),
    "not-indicated": (N_("不符合转诊指征"), "referral not indicated"),
    "beyond-capability": (N_("超出本院诊疗能力"), "beyond this institution's capability"),
    "incomplete-records": (N_("病历资料不全"), "records incomplete"),
    "patient-refused": (N_("患者拒绝"), "patient refused"),
    "other": (N_("其他"), "other"),
}

#: The five telemedicine levels, top first (省 → 市 → 县 → 乡 → 村).
LEVELS: tuple[str, ...] = ("province", "city", "county", "township", "village")
LEVEL_LABELS = {"province": "省级", "city": "市级", "county": "县级", "township": "乡镇", "village": "村"}

Sex = Literal["male", "female", "other", "unknown"]
PrescriptionDecision = Literal["approve", "reject"]

#: Years a consultation's records are kept (互联网诊疗管理办法: at least 15 years).
RETENTION_YEARS = 15


def status_label(status: str) -> str:
    return STATUS_LABELS.get(status, (status, status))[0]


def workflow_of(kind: str) -> str:
    """The state machine a kind of work follows."""
    return "consultation" if kind in ("free", "followup") else kind
