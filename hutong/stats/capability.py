"""Statistics as a capability of the node."""

from hutong.capability import Capability
from hutong.stats import counters, operation

CAPABILITY = Capability(
    name="stats",
    summary="统计 statistics: SQL on FHIR views ($viewdefinition-run), live counters kept from the change log",
    fhir=operation.FHIR_INTERACTIONS,
    permissions={
        "stats.view.run": "run a SQL on FHIR ViewDefinition over the record ($viewdefinition-run)",
    },
    tables=counters.TABLES,
)
