"""Which resource types flow where, from the node's settings (``federation_up_types`` and
``federation_down_types``): named sets expand to the types below, a type may not flow both ways."""

from __future__ import annotations

from dataclasses import dataclass

from hutong.config import Settings

#: Named sets of resource types (a setting may mix names and types: ``"summaries,Immunization"``).
TYPE_SETS: dict[str, frozenset[str]] = {
    # Everything a hospital records about a resident. Person is not here: each node's patient index
    # keeps its own Person resources (the province links the cities' Patients itself).
    "clinical": frozenset({
        "Patient", "Encounter", "EpisodeOfCare", "Condition", "Observation", "DiagnosticReport",
        "ImagingStudy", "Procedure", "MedicationRequest", "MedicationStatement", "MedicationAdministration",
        "MedicationDispense", "Immunization", "AllergyIntolerance", "CarePlan", "CareTeam", "ServiceRequest",
        "Specimen", "DocumentReference", "Composition", "Task", "Communication", "Appointment", "Consent",
        "Goal", "FamilyMemberHistory", "ClinicalImpression", "RiskAssessment", "NutritionOrder",
        "DeviceRequest", "QuestionnaireResponse", "MeasureReport", "Provenance",
    }),
    # Summaries only: who the residents are, their visits, reports and documents, statistics.
    "summaries": frozenset({"Patient", "Encounter", "DiagnosticReport", "DocumentReference", "Composition",
                            "MeasureReport"}),
    # Facility and practitioner registry (IHE mCSD).
    "registry": frozenset({"Organization", "Location", "HealthcareService", "Practitioner", "PractitionerRole",
                           "Endpoint", "OrganizationAffiliation"}),
    # The mutual-recognition catalog: which tests and exams, their definitions.
    "catalog": frozenset({"ActivityDefinition", "ObservationDefinition", "SpecimenDefinition", "PlanDefinition"}),
    "terminology": frozenset({"CodeSystem", "ValueSet", "ConceptMap", "NamingSystem"}),
    # Statistics report forms and indicator definitions.
    "forms": frozenset({"Questionnaire", "Measure", "Library"}),
}

ROLES = ("standalone", "city", "province")


def expand_types(spec: str, known: frozenset[str] | None = None) -> frozenset[str]:
    """``"clinical,Immunization"`` → the set of resource types it names (ValueError for unknown words)."""
    out: set[str] = set()
    for word in (w.strip() for w in (spec or "").split(",")):
        if not word:
            continue
        if word in TYPE_SETS:
            out |= TYPE_SETS[word]
        elif word[:1].isupper() and (known is None or word in known):
            out.add(word)
        else:
            raise ValueError(f"unknown resource type or type set {word!r} (sets: {', '.join(sorted(TYPE_SETS))})")
    return frozenset(out)


@dataclass(frozen=True)
class FederationConfig:
    """The federation part of a node's settings, checked."""

    role: str
    tenant: str
    up_types: frozenset[str]
    down_types: frozenset[str]
    province_url: str
    uplink: str  # https | jetstream | none
    shared_nats_url: str

    @classmethod
    def from_settings(cls, settings: Settings, known: frozenset[str] | None = None) -> FederationConfig:
        role = settings.federation_role
        if role not in ROLES:
            raise ValueError(f"federation_role must be one of {', '.join(ROLES)}, not {role!r}")
        up = expand_types(settings.federation_up_types, known)
        down = expand_types(settings.federation_down_types, known)
        both = up & down
        if both:
            raise ValueError(f"resource types may not flow both up and down: {', '.join(sorted(both))}")
        uplink = settings.federation_uplink
        if uplink not in ("auto", "https", "jetstream"):
            raise ValueError(f"federation_uplink must be auto, https or jetstream, not {uplink!r}")
        shared = settings.federation_nats_url.strip()
        shared = "" if shared.lower() in ("none", "off") else shared
        if uplink == "auto":
            uplink = "jetstream" if shared else "https"
        if role != "city":
            uplink = "none"
        elif uplink == "https" and not settings.federation_province_url:
            raise ValueError("a city node needs federation_province_url (hutong serve --role city --province URL)")
        elif uplink == "jetstream" and not shared:
            raise ValueError("federation_uplink=jetstream needs federation_nats_url (the broker shared with the province)")
        return cls(role, settings.default_tenant, up, down, settings.federation_province_url.rstrip("/"), uplink,
                   shared)
