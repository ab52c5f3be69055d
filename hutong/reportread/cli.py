"""``hutong reportread …``: interpret a report file, escalate overdue critical values, show counts."""

from __future__ import annotations

import json
from pathlib import Path

import typer

reportread_app = typer.Typer(help="报告解读 Lab-report interpretation and critical values.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.add_typer(reportread_app, name="reportread")


def _store(data_dir, database_url):
    from hutong.api.app import node_store
    from hutong.config import load_settings

    return node_store(load_settings(data_dir=data_dir, database_url=database_url))


@reportread_app.command("interpret")
def interpret_cmd(path: Path = typer.Argument(..., help="A FHIR Bundle or DiagnosticReport (JSON file)"),
                  sex: str = typer.Option(None), age: float = typer.Option(None)):
    """Interpret a report file and print the answer as JSON."""
    from hutong.config import load_settings
    from hutong.core.errors import FhirError
    from hutong.reportread import critical, report
    from hutong.reportread.interpret import Person

    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        rep = report.from_bundle(doc) if doc.get("resourceType") == "Bundle" else report.from_report(doc)
        person = Person(sex, age) if (sex or age is not None) else None
        out = report.interpret(rep, critical.critical_table(load_settings()), person)
    except (OSError, ValueError, AttributeError, FhirError) as exc:
        typer.echo(f"cannot interpret {path}: {getattr(exc, 'diagnostics', exc)}", err=True)
        raise typer.Exit(2) from None
    typer.echo(json.dumps(out, ensure_ascii=False, indent=2))


@reportread_app.command("escalate")
def escalate_cmd(data_dir: Path = typer.Option(None, "--data-dir"), database_url: str = typer.Option(None, "--database-url")):
    """Run the change-log consumers, then escalate every critical value past its deadline."""
    from hutong.reportread import critical

    store = _store(data_dir, database_url)
    try:
        store.run_consumers()
        ids = critical.escalate_overdue(store)
    finally:
        store.close()
    typer.echo(f"escalated {len(ids)} critical value(s)")


@reportread_app.command("stats")
def stats_cmd(data_dir: Path = typer.Option(None, "--data-dir"), database_url: str = typer.Option(None, "--database-url")):
    """Counts of critical values and the time to acknowledgement."""
    from hutong.reportread import critical

    store = _store(data_dir, database_url)
    try:
        typer.echo(json.dumps(critical.statistics(store), ensure_ascii=False, indent=2))
    finally:
        store.close()
