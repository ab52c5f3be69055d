"""The ``hutong`` command line: serve, import, export, and the capabilities' own commands."""

from __future__ import annotations

import importlib
import importlib.util
import logging
from pathlib import Path

import typer

from hutong.config import load_settings

app = typer.Typer(help="Hutong (互通): regional health information platform on FHIR R4.", no_args_is_help=True)

#: Capability CLIs: each module exposes ``register(app)`` adding its commands.
CAPABILITY_CLI_MODULES = ["hutong.sim.cli", "hutong.mpi.cli", "hutong.card.cli"]


def _settings(data_dir: Path | None, database_url: str | None, **extra):
    return load_settings(
        data_dir=data_dir,
        database_url=database_url,
        **{k: v for k, v in extra.items() if v is not None},
    )


@app.command()
def serve(
    host: str = typer.Option(None, help="Address to listen on (default 127.0.0.1)"),
    port: int = typer.Option(None, help="Port (default 8080)"),
    data_dir: Path = typer.Option(None, "--data-dir", help="Data folder (default ./hutong-data)"),
    database_url: str = typer.Option(None, "--database-url", help="postgresql://… (default: SQLite in the data folder)"),
    workers: int = typer.Option(1, help="HTTP worker processes"),
    demo: bool = typer.Option(False, "--demo/--empty", help="Load the small demo province on first start"),
    log_level: str = typer.Option("warning", help="uvicorn log level"),
):
    """Start the platform: FHIR at /fhir, APIs under /api, OpenAPI at /docs."""
    import os

    import uvicorn

    settings = _settings(data_dir, database_url, host=host, port=port)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if workers > 1:
        # Schema and demo set-up in a child process: the supervisor then stays small (it only
        # watches the workers) instead of keeping the validator and indexes it loaded.
        import multiprocessing

        child = multiprocessing.get_context("spawn").Process(target=_prepare_store, args=(settings, demo))
        child.start()
        child.join()
        if child.exitcode != 0:
            raise typer.Exit(1)
    else:
        _prepare_store(settings, demo)
    typer.echo(f"Hutong listening on http://{settings.host}:{settings.port}  (FHIR base /fhir, docs /docs)")
    if workers > 1:
        # Worker processes re-create the app from the environment.
        os.environ["HUTONG_DATA_DIR"] = str(settings.data_dir)
        if settings.database_url:
            os.environ["HUTONG_DATABASE_URL"] = settings.database_url
        uvicorn.run("hutong.api.asgi:app", host=settings.host, port=settings.port, workers=workers,
                    log_level=log_level, access_log=False)
    else:
        from hutong.api.app import create_app

        uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=log_level, access_log=False)


def _prepare_store(settings, demo: bool) -> None:
    """Create or migrate the schema and, when asked, load the demo province."""
    from hutong.store import Store

    store = Store.open(settings)
    try:
        if demo:
            from hutong.demo import ensure_demo_loaded

            ensure_demo_loaded(store)
    finally:
        store.close()


@app.command("import")
def import_(
    paths: list[Path] = typer.Argument(..., help="NDJSON files, Bundle JSON files (.json/.json.gz) or folders"),
    data_dir: Path = typer.Option(None, "--data-dir"),
    database_url: str = typer.Option(None, "--database-url"),
    batch: int = typer.Option(500, help="Resources per database transaction for NDJSON"),
):
    """Load NDJSON and Bundle files into the store (streaming, with a progress bar and a summary)."""
    from hutong.bulk import import_paths
    from hutong.store import Store

    store = Store.open(_settings(data_dir, database_url))
    try:
        summary = import_paths(store, paths, batch_size=batch, progress=True)
    finally:
        store.close()
    typer.echo(summary.render())
    if summary.failed:
        raise typer.Exit(1)


@app.command()
def export(
    out: Path = typer.Option(Path("export"), "--out", help="Folder for one NDJSON file per resource type"),
    types: str = typer.Option("", "--type", help="Comma-separated resource types (default all)"),
    data_dir: Path = typer.Option(None, "--data-dir"),
    database_url: str = typer.Option(None, "--database-url"),
):
    """Write the current resources as NDJSON, one file per resource type (streaming)."""
    from hutong.bulk import export_ndjson
    from hutong.store import Store

    store = Store.open(_settings(data_dir, database_url))
    try:
        counts = export_ndjson(store, out, [t for t in types.split(",") if t] or None, progress=True)
    finally:
        store.close()
    for res_type, n in sorted(counts.items()):
        typer.echo(f"{res_type}: {n}")
    typer.echo(f"exported {sum(counts.values())} resources to {out}")


def _register_capabilities() -> None:
    for name in CAPABILITY_CLI_MODULES:
        try:
            spec = importlib.util.find_spec(name)
        except ModuleNotFoundError:
            spec = None
        if spec is not None:
            importlib.import_module(name).register(app)


_register_capabilities()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
