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

    clients = typer.Typer(help="hospital systems allowed to call the CDS services", no_args_is_help=True)
    rec.add_typer(clients, name="client")

    @clients.command("add")
    def add_client(iss: str = typer.Option(..., help="the JWT issuer the hospital system signs as"),
                   institution: str = typer.Option(..., help="Organization id it acts for"),
                   jku: str = typer.Option(None, help="URL of its JSON Web Key Set"),
                   jwks_file: str = typer.Option(None, "--jwks-file", help="its public key set as a file")) -> None:
        """Register (or replace) a CDS client."""
        import json
        from pathlib import Path

        from hutong.api.app import node_store
        from hutong.recognition.cdsauth import register_client

        jwks = json.loads(Path(jwks_file).read_text()) if jwks_file else None
        store = node_store()
        try:
            register_client(store, iss, institution, jku=jku, jwks=jwks)
        finally:
            store.close()
        typer.echo(f"registered {iss} for Organization/{institution}")

    app.add_typer(rec, name="recognition")
