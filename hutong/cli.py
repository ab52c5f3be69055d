"""The ``hutong`` command line: serve, import, export, and the capabilities' own commands."""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from hutong.config import load_settings

app = typer.Typer(help="Hutong (互通): regional health information platform on FHIR R4.", no_args_is_help=True)


def settings_from(data_dir: Path | None, database_url: str | None, **extra):
    """Settings with the common ``--data-dir`` and ``--database-url`` options applied."""
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
    role: str = typer.Option(None, "--role", help="Federation role: standalone (default), city or province"),
    province: str = typer.Option(None, "--province", help="City: the province's base URL (HTTPS push-up, pull-down)"),
    tenant: str = typer.Option(None, "--tenant", help="This node's tenant (a city's division code, e.g. 2201)"),
    nats: str = typer.Option(None, "--nats", help="NATS URL(s) of the event stream ('' for none)"),
    federation_nats: str = typer.Option(None, "--federation-nats",
                                        help="The broker shared between cities and province (JetStream push-up)"),
):
    """Start the platform: FHIR at /fhir, APIs under /api, OpenAPI at /docs."""
    import os

    import uvicorn

    federation = {"federation_role": role, "federation_province_url": province, "default_tenant": tenant,
                  "nats_url": nats, "federation_nats_url": federation_nats}
    settings = settings_from(data_dir, database_url, host=host, port=port, **federation)
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
        for key, value in federation.items():
            if value is not None:
                os.environ["HUTONG_" + key.upper()] = value
        uvicorn.run("hutong.api.asgi:app", host=settings.host, port=settings.port, workers=workers,
                    log_level=log_level, access_log=False)
    else:
        from hutong.api.app import create_app

        uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=log_level, access_log=False)


def _prepare_store(settings, demo: bool) -> None:
    """Create or migrate the schema and, when asked, load the demo province."""
    from hutong.api.app import node_store

    store = node_store(settings)
    try:
        if demo:
            from hutong.sim.demo import ensure_demo_loaded

            ensure_demo_loaded(store)
    finally:
        store.close()


def _register_capabilities() -> None:
    from hutong.api.app import CAPABILITIES

    for cap in CAPABILITIES:
        if cap.cli is not None:
            cap.cli(app)


_register_capabilities()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
