"""The subscription topics this node offers (R4 has no SubscriptionTopic resource: a topic is a
canonical URL, advertised in the CapabilityStatement with the Subscriptions Backport's
``subscriptiontopic-canonical`` extension on the Subscription entry, and described here and in
``GET /api/federation/topics``).

Each topic names the resource type whose changes it reports and which changes (create, update,
delete). A Subscription narrows it with filter criteria (``backport-filter-criteria``), which may
use any search parameter of that type: the filter is evaluated by the search engine on the
changed resource (``{type}?_id={id}&{criteria}``), so it means exactly what the same search means.
A deletion notifies only subscriptions without filter criteria (a deleted resource is no longer
searchable).
"""

from __future__ import annotations

from dataclasses import dataclass

BASE = "https://hutong.example/fhir/SubscriptionTopic/"

BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"
TOPIC_CANONICAL_EXT = BACKPORT + "capabilitystatement-subscriptiontopic-canonical"


@dataclass(frozen=True)
class Topic:
    """One subscription topic."""

    name: str
    res_type: str
    title_zh: str
    title_en: str
    ops: frozenset[str] = frozenset({"create", "update", "delete"})

    @property
    def url(self) -> str:
        return BASE + self.name

    def as_dict(self) -> dict:
        return {"url": self.url, "resourceType": self.res_type, "title": self.title_zh, "title_en": self.title_en,
                "interactions": sorted(self.ops),
                "filterBy": f"any search parameter of {self.res_type} ({self.res_type}?param=value)"}


TOPICS: tuple[Topic, ...] = (
    Topic("patient-change", "Patient", "患者信息变更", "A patient record was created, changed or deleted"),
    Topic("encounter-change", "Encounter", "就诊信息变更", "An encounter (visit, admission) was recorded or changed"),
    Topic("observation-change", "Observation", "检验检查结果", "A result (lab value, vital sign) was recorded or changed"),
    Topic("diagnostic-report-change", "DiagnosticReport", "检验检查报告", "A lab or imaging report was issued or changed"),
    Topic("imaging-study-change", "ImagingStudy", "影像检查", "An imaging study was recorded or changed"),
    Topic("condition-change", "Condition", "诊断", "A diagnosis was recorded or changed"),
    Topic("medication-request-change", "MedicationRequest", "处方", "A prescription was written or changed"),
    Topic("immunization-change", "Immunization", "预防接种", "An immunization was recorded or changed"),
    Topic("document-reference-change", "DocumentReference", "健康档案文档", "A shared document was registered or changed"),
    Topic("service-request-change", "ServiceRequest", "检查检验申请", "An order (lab, exam, referral) was placed or changed"),
    Topic("task-change", "Task", "会诊与转诊任务", "A consultation or referral task was created or changed"),
    Topic("communication-change", "Communication", "在线咨询消息", "A consultation message was sent"),
    Topic("appointment-change", "Appointment", "预约", "An appointment was booked, changed or cancelled"),
)

BY_URL: dict[str, Topic] = {t.url: t for t in TOPICS}


def topic_extensions() -> tuple[dict, ...]:
    """The CapabilityStatement extensions advertising every topic."""
    return tuple({"url": TOPIC_CANONICAL_EXT, "valueCanonical": t.url} for t in TOPICS)
