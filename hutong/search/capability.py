"""Search as a capability of the node (the index itself is handed to the store by the node)."""

from hutong.capability import Capability
from hutong.search import routes, tables

CAPABILITY = Capability(
    name="search",
    summary="FHIR search over values extracted at write time; $everything, $lastn",
    fhir=routes.FHIR_INTERACTIONS,
    tables=tables.TABLES,
)
