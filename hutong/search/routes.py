"""The search capability's FHIR operations: ``Patient/$everything`` and ``Observation/$lastn``.

Type, system and compartment searches are core interactions of the route table
(``hutong/fhir/rest.py``), answered by ``SearchIndex.search``.
"""

from __future__ import annotations

from hutong.fhir.rest import FhirResult
from hutong.fhir.routes import Call, Interaction
from hutong.search.everything import everything
from hutong.search.lastn import lastn


def _everything(call: Call) -> FhirResult:
    query = dict(call.req.query)
    return FhirResult(200, everything(call.tx, call.res_id, query, call.base_url, call.store.settings, call.fence))


def _lastn(call: Call) -> FhirResult:
    return FhirResult(200, lastn(call.tx, call.req.query, call.base_url, call.res_id))


_EVERYTHING = "http://hl7.org/fhir/OperationDefinition/Patient-everything"
_LASTN = "http://hl7.org/fhir/OperationDefinition/Observation-lastn"

FHIR_INTERACTIONS = [
    Interaction("GET", "Patient/$everything", "operation", _everything, "*.r", operation="everything",
                definition=_EVERYTHING, summary="All patients' records ($everything)", capability="search"),
    Interaction("GET", "Patient/{id}/$everything", "operation", _everything, "*.r", operation="everything",
                definition=_EVERYTHING, summary="One patient's whole record ($everything)", capability="search"),
    Interaction("GET", "Observation/$lastn", "operation", _lastn, "Observation.s", operation="lastn",
                definition=_LASTN, summary="The latest N observations per code ($lastn)", capability="search"),
    Interaction("GET", "Patient/{id}/Observation/$lastn", "operation", _lastn, "Observation.s", operation="lastn",
                definition=_LASTN, summary="$lastn inside a patient's compartment", capability="search"),
]
