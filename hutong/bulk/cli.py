"""``hutong import`` and ``hutong export``: bulk load and NDJSON export from the command line."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    """Add ``import`` and ``export`` to the main CLI."""
    app.command("import")(import_)
    app.command("export")(export)


def node_store(settings):
    from hutong.api.app import node_store as open_node_store

    return open_node_store(settings)


def settings_from(data_dir, database_url):
    from hutong.cli import settings_from as common

    return common(data_dir, database_url)


def import_(
    paths: list[Path] = typer.Argument(..., help="NDJSON files, Bundle JSON files (.json/.json.gz) or folders"),
    data_dir: Path = typer.Option(None, "--data-dir"),
    database_url: str = typer.Option(None, "--database-url"),
    batch: int = typer.Option(500, help="Resources per database transaction for NDJSON"),
):
    """Load NDJSON and Bundle files into the store (streaming, with a progress bar and a summary)."""
    from hutong.bulk.load import import_paths

    store = node_store(settings_from(data_dir, database_url))
    try:
        summary = import_paths(store, paths, batch_size=batch, progress=True)
    finally:
        store.close()
    typer.echo(summary.render())
    if summary.failed:
        raise typer.Exit(1)


def export(
    out: Path = typer.Option(Path("export"), "--out", help="Folder for one NDJSON file per resource type"),
    types: str = typer.Option("", "--type", help="Comma-separated resource types (default all)"),
    data_dir: Path = typer.Option(None, "--data-dir"),
    database_url: str = typer.Option(None, "--database-url"),
):
    """Write the current resources as NDJSON, one file per resource type (streaming)."""
    from hutong.bulk.export import export_ndjson

    store = node_store(settings_from(data_dir, database_url))
    try:
        counts = export_ndjson(store, out, [t for t in types.split(",") if t] or None, progress=True)
    finally:
        store.close()
    for res_type, n in sorted(counts.items()):
        typer.echo(f"{res_type}: {n}")
    typer.echo(f"exported {sum(counts.values())} resources to {out}")


