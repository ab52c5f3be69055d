"""``hutong stats …``: run a ViewDefinition, read a live indicator, check the live counters against a
full recomputation, list the indicators."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import typer

stats_app = typer.Typer(help="统计 Statistics: SQL on FHIR views, live indicators.", no_args_is_help=True)

DATA_DIR = typer.Option(None, "--data-dir", help="the node's data folder (default: the configured one)")
DATABASE_URL = typer.Option(None, "--database-url", help="the store (default: the configured one)")


def register(app: typer.Typer) -> None:
    """Add ``hutong stats`` to the command line."""
    app.add_typer(stats_app, name="stats")


def _store(data_dir, database_url):
    from hutong.api.app import node_store
    from hutong.config import load_settings
    from hutong.stats import indicators

    store = node_store(load_settings(data_dir=data_dir, database_url=database_url))
    # node_store opens the tables only; the commands catch the counters up themselves
    store.register_consumer(indicators.CONSUMER.name, indicators.CONSUMER.handler, indicators.CONSUMER.types)
    return store


def _fail(message: str) -> None:
    typer.echo(message, err=True)
    raise typer.Exit(2)


@stats_app.command("run")
def run_cmd(view: str = typer.Argument(..., help="a ViewDefinition JSON file, or a stored view's id or URL"),
            fmt: str = typer.Option("csv", "--format", help="csv, ndjson, json or parquet"),
            out: Path = typer.Option(None, "--out", help="write here (required for parquet; default stdout)"),
            limit: int = typer.Option(None, "--limit", min=1),
            data_dir: Path = DATA_DIR, database_url: str = DATABASE_URL):
    """Run a SQL on FHIR ViewDefinition over the store (what ``$viewdefinition-run`` does)."""
    from hutong.core.errors import FhirError
    from hutong.stats import library, run

    store = _store(data_dir, database_url)
    try:
        kind = run.parse_format(fmt)
        if kind == "parquet" and out is None:
            _fail("--format parquet needs --out FILE")
        with store.read() as tx:
            path = Path(view)
            definition = json.loads(path.read_text(encoding="utf-8")) if path.is_file() \
                else library.load_view(tx, view)
            checked = library.check_view(definition)
            rows = run.view_rows(tx, checked, limit=limit)
            if kind == "parquet":
                with tempfile.TemporaryDirectory(dir=out.parent if out.parent.exists() else None) as d:
                    Path(run.write_parquet(checked, rows, d)).replace(out)
                typer.echo(f"wrote {out}", err=True)
                return
            text = run.write_text(checked, rows, kind)
    except FhirError as exc:
        _fail(f"cannot run the view: {exc.diagnostics}")
    except (OSError, ValueError) as exc:
        _fail(f"cannot read the view: {exc}")
    finally:
        store.close()
    if out is None:
        typer.echo(text, nl=False)
    else:
        out.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {out}", err=True)


@stats_app.command("indicators")
def indicators_cmd():
    """List the live indicators (code, name)."""
    from hutong.stats import indicators

    for code, ind in indicators.INDICATORS.items():
        typer.echo(f"{code}\t{ind.name}")


@stats_app.command("indicator")
def indicator_cmd(code: str = typer.Argument(..., help="indicator code, e.g. OP_VISITS (see `hutong stats indicators`)"),
                  unit: str = typer.Option(None, "--unit", help="division code or institution id to drill into"),
                  start: str = typer.Option(None, "--start", help="first day, YYYY-MM-DD"),
                  end: str = typer.Option(None, "--end", help="last day, YYYY-MM-DD"),
                  data_dir: Path = DATA_DIR, database_url: str = DATABASE_URL):
    """A live indicator from the counters (after catching up the change log), as JSON."""
    from hutong.core.errors import FhirError
    from hutong.stats import indicators

    store = _store(data_dir, database_url)
    try:
        store.run_consumers()
        with store.read() as tx:
            result = indicators.compute(tx, code, unit=unit, start=start, end=end)
    except FhirError as exc:
        _fail(f"cannot compute {code}: {exc.diagnostics}")
    finally:
        store.close()
    typer.echo(json.dumps(result, ensure_ascii=False, indent=2))


@stats_app.command("check")
def check_cmd(data_dir: Path = DATA_DIR, database_url: str = DATABASE_URL):
    """Compare every live counter with a full recomputation from the current resources (exit 1 when
    any differs)."""
    from hutong.stats import counters, indicators

    store = _store(data_dir, database_url)
    bad = 0
    try:
        store.run_consumers()
        for counter in indicators.COUNTERS:
            live, full = counters.stored(store, counter), counters.recompute(store, counter)
            keys = set(live) | set(full)
            diff = [k for k in keys if abs(live.get(k, 0) - full.get(k, 0)) > 1e-9]
            bad += bool(diff)
            typer.echo(f"{counter.name}\t{len(keys)} keys\t{sum(full.values()):g} total\t"
                       f"{'ok' if not diff else f'{len(diff)} keys differ'}")
    finally:
        store.close()
    if bad:
        raise typer.Exit(1)
