"""``hutong federation …``: run the relay and links in the foreground, show status and lag."""

from __future__ import annotations

import logging
from pathlib import Path

import orjson
import typer

fed = typer.Typer(help="省市一体化 federation: the event relay, city/province links, status.", no_args_is_help=True)


def _settings(data_dir, database_url, **kw):
    from hutong.cli import settings_from

    return settings_from(data_dir, database_url, **kw)


@fed.command("run")
def run_command(
    data_dir: Path = typer.Option(None, "--data-dir", help="Data folder (default ./hutong-data)"),
    database_url: str = typer.Option(None, "--database-url", help="postgresql://… (default: SQLite in the data folder)"),
    nats: str = typer.Option(None, "--nats", help="NATS URL(s) for the event stream (default: the setting nats_url)"),
):
    """Run the node's background federation work (relay, uplink, downlink, ingest, Subscription
    delivery) in this process, without serving HTTP. Only one process per database runs it; others wait."""
    from hutong.api.app import CAPABILITIES, node_store
    from hutong.api.logs import configure_logging
    from hutong.api.node import build_node
    from hutong.federation.config import FederationConfig
    from hutong.federation.runtime import tasks_for
    from hutong.federation.worker import FederationWorker, LeaderLock

    configure_logging(logging.INFO)  # the node's format, repeats collapsed
    settings = _settings(data_dir, database_url, nats_url=nats)
    store = node_store(settings)
    node = build_node(settings, store, CAPABILITIES)
    config = FederationConfig.from_settings(settings, store.known_types())
    node.services["federation.config"] = config
    worker = FederationWorker(LeaderLock(store, Path(settings.data_dir)), tasks_for(node, config))

    typer.echo(f"federation tasks: {', '.join(worker.tasks) or 'none'}", err=True)
    try:
        worker.run_forever()
    finally:
        store.close()


@fed.command("status")
def status_command(
    data_dir: Path = typer.Option(None, "--data-dir"),
    database_url: str = typer.Option(None, "--database-url"),
    tenant: str = typer.Option(None, "--tenant", help="Only this city (tenant)"),
):
    """Each linked node's position, lag and conflicts (JSON)."""
    from hutong.api.app import node_store
    from hutong.federation.status import federation_status

    store = node_store(_settings(data_dir, database_url))
    try:
        typer.echo(orjson.dumps(federation_status(store, tenant=tenant), option=orjson.OPT_INDENT_2).decode())
    finally:
        store.close()


@fed.command("resend")
def resend_command(
    after: int = typer.Option(..., "--after", min=0, help="Publish again every change after this seq"),
    link: str = typer.Option("relay", "--link", help="relay (the node's event stream) or uplink (JetStream uplink)"),
    data_dir: Path = typer.Option(None, "--data-dir"),
    database_url: str = typer.Option(None, "--database-url"),
):
    """Move the relay's (or the JetStream uplink's) position back, so that the changes after ``--after``
    are published again (a stream lost or purged at the broker). Consumers drop what they already
    had by event id. The HTTPS uplink needs nothing: it resumes at the province's position."""
    from hutong.api.app import node_store
    from hutong.federation.relay import POSITION as RELAY
    from hutong.federation.uplink import POSITION as UPLINK

    names = {"relay": RELAY, "uplink": UPLINK}
    if link not in names:
        raise typer.BadParameter("--link must be relay or uplink")
    store = node_store(_settings(data_dir, database_url))
    try:
        before = store.outbox.position(names[link])
        store.outbox.rewind(names[link], min(after, before))
        typer.echo(f"{link}: position {before} -> {min(after, before)} (head {store.outbox.last_seq()})")
    finally:
        store.close()


def register(app: typer.Typer) -> None:
    app.add_typer(fed, name="federation")
