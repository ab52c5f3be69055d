"""``hutong recognition …``: install the starter catalog."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add ``hutong recognition`` to the command."""
    rec = typer.Typer(help="检查检验结果互认 result mutual recognition", no_args_is_help=True)
    catalog = typer.Typer(help="the recognition catalog", no_args_is_help=True)
    rec.add_typer(catalog, name="catalog")

    @catalog.command("install")
    def install(replace: bool = typer.Option(False, help="overwrite items already in the store")) -> None:
        """Write the starter catalog (data/catalog.json) into the store."""
        from hutong.api.app import node_store
        from hutong.recognition.catalog import install_starter

        store = node_store()
        try:
            out = install_starter(store, replace=replace)
        finally:
            store.close()
        typer.echo(f"written {out['written']}, kept {out['kept']}")

    app.add_typer(rec, name="recognition")
