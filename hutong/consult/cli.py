"""``hutong consult …``: escalate missed response times now, print the statistics."""

from __future__ import annotations

from pathlib import Path

import orjson
import typer

consult_app = typer.Typer(help="在线咨询、远程医疗与双向转诊 (online consultation, telemedicine, referrals)",
                          no_args_is_help=True)


def _store(data_dir: Path | None, database_url: str | None):
    from hutong.api.app import node_store
    from hutong.config import load_settings

    overrides = {}
    if data_dir:
        overrides["data_dir"] = data_dir
    if database_url:
        overrides["database_url"] = database_url
    return node_store(load_settings(**overrides, workers=False))


@consult_app.command("escalate")
def escalate_cmd(data_dir: Path = typer.Option(None, "--data-dir"), database_url: str = typer.Option(None, "--database-url")):
    """Escalate every consultation, referral and telemedicine request past its deadline."""
    from hutong.consult import sla
    from hutong.consult.work import Env

    store = _store(data_dir, database_url)
    try:
        ids = sla.escalate_overdue(Env(store, store.settings))
    finally:
        store.close()
    typer.echo(f"escalated {len(ids)} item(s)")


@consult_app.command("stats")
def stats_cmd(data_dir: Path = typer.Option(None, "--data-dir"), database_url: str = typer.Option(None, "--database-url")):
    """Print the statistics as JSON."""
    from hutong.consult import stats

    store = _store(data_dir, database_url)
    try:
        typer.echo(orjson.dumps(stats.consult_statistics(store), option=orjson.OPT_INDENT_2).decode())
    finally:
        store.close()


def register(app: typer.Typer) -> None:
    app.add_typer(consult_app, name="consult")
