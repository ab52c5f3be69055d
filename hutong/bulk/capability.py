"""Bulk data as a capability: ``$export`` jobs (routes, runner) and ``hutong import``/``export``."""

from hutong.bulk import cli, jobs, routes
from hutong.capability import Capability


def _startup(node) -> None:
    runner = jobs.JobRunner(node.store)
    node.services["bulk.runner"] = runner
    runner.start()


def _shutdown(node) -> None:
    runner = node.services.pop("bulk.runner", None)
    if runner is not None:
        runner.stop()


CAPABILITY = Capability(
    name="bulk",
    summary="Bulk Data $export jobs kept in the database; NDJSON and Bundle import",
    fhir=routes.FHIR_INTERACTIONS,
    cli=cli.register,
    startup=_startup,
    shutdown=_shutdown,
    permissions={"bulk.export": "start, poll, cancel and download Bulk Data exports"},
    tables=jobs.TABLES,
)
