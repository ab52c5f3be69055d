"""The master patient index as a capability of the node."""

from hutong.capability import Capability, Consumer
from hutong.mpi import cli, routes, service, tables

CAPABILITY = Capability(
    name="mpi",
    summary="主索引 master patient index: linking, PIXm, $match, review and merge",
    fhir=routes.FHIR_INTERACTIONS,
    routers=[routes.router],
    consumers=[Consumer(service.CONSUMER, service.consume, frozenset({"Patient"}))],
    cli=cli.register,
    permissions={
        "mpi.read": "read which records are linked to one person",
        "mpi.review": "work the review queue (link, reject)",
        "mpi.merge": "merge and unmerge persons",
        "mpi.admin": "retrain the matching model",
    },
    tables=tables.TABLES,
)
