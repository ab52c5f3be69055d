"""The ``hutong`` command line: serve, import, export, and the capabilities' own commands."""

from __future__ import annotations

from pathlib import Path

import typer

from hutong.config import load_settings

#: uvicorn's HTTP protocol with read deadlines and a per-client connection limit.
GUARDED_PROTOCOL = "hutong.api.protocol:GuardedHttpToolsProtocol"

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
    mllp_port: int = typer.Option(None, "--mllp-port", help="TCP port of the HL7 v2 MLLP listener (ORU^R01, OUL^R22)"),
):
    """Start the platform: FHIR at /fhir, APIs under /api, OpenAPI at /docs."""
    import os

    import uvicorn

    from hutong.api.logs import configure_logging

    federation = {"federation_role": role, "federation_province_url": province, "default_tenant": tenant,
                  "nats_url": nats, "federation_nats_url": federation_nats}
    settings = settings_from(data_dir, database_url, host=host, port=port, mllp_port=mllp_port, **federation)
    configure_logging()
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
        if mllp_port is not None:
            os.environ["HUTONG_MLLP_PORT"] = str(mllp_port)
        uvicorn.run("hutong.api.asgi:app", host=settings.host, port=settings.port, workers=workers,
                    log_level=log_level, access_log=False, http=GUARDED_PROTOCOL)
    else:
        from hutong.api.app import create_app

        uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=log_level, access_log=False,
                    http=GUARDED_PROTOCOL)


@app.command()
def backup(
    to: Path = typer.Option(..., "--to", help="File to write (SQLite: a database file; PostgreSQL: a pg_dump archive)"),
    data_dir: Path = typer.Option(None, "--data-dir"),
    database_url: str = typer.Option(None, "--database-url"),
):
    """Write a consistent backup of the store (online: the node may keep serving)."""
    from hutong.store.backup import BackupError
    from hutong.store.backup import backup as do_backup

    try:
        out = do_backup(settings_from(data_dir, database_url), to)
    except BackupError as exc:
        typer.echo(f"backup failed: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"backup written to {out} ({out.stat().st_size:,} bytes). Keep the card key-encryption key "
               "(HUTONG_CARD_KEK or the data folder's card-kek) with it, as a secret.")


@app.command()
def restore(
    from_: Path = typer.Option(..., "--from", help="A file written by hutong backup"),
    data_dir: Path = typer.Option(None, "--data-dir"),
    database_url: str = typer.Option(None, "--database-url"),
    force: bool = typer.Option(False, "--force", help="Replace an existing store"),
):
    """Restore a backup as the store (stop every node on it first)."""
    from hutong.store.backup import BackupError
    from hutong.store.backup import restore as do_restore

    try:
        do_restore(settings_from(data_dir, database_url), from_, force=force)
    except BackupError as exc:
        typer.echo(f"restore failed: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo("restored; start the node to check it (it verifies the database at start-up)")


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
