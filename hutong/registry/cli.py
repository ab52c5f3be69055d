"""``hutong registry …``: import the real 2020 fever-clinic list, look up institutions."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add ``hutong registry`` to the command."""
    reg = typer.Typer(help="机构/人员注册与发热门诊 (registry, fever clinics)")
    app.add_typer(reg, name="registry")

    @reg.command("import-fever-clinics")
    def import_clinics() -> None:
        """Import the real 2020 Jilin fever-clinic list (112 facilities; positions, hours, phone are demo defaults)."""
        from hutong.api.app import node_store
        from hutong.config import load_settings
        from hutong.registry.seed import import_fever_clinics

        store = node_store(load_settings())
        try:
            n = import_fever_clinics(store)
            store.run_consumers()
            typer.echo(f"{n} resources written")
        finally:
            store.close()

    @reg.command("find")
    def find(uscc: str = typer.Option("", help="统一社会信用代码"), name: str = typer.Option("", help="机构名称")) -> None:
        """Find an institution by unified social credit code or exact name."""
        from hutong.api.app import node_store
        from hutong.config import load_settings
        from hutong.registry import service

        store = node_store(load_settings())
        try:
            inst = service.find_institution(store, uscc=uscc or None, name=name or None)
            typer.echo("not found" if inst is None else f"{inst.id}\t{inst.name}\t{inst.level_text or ''}\t{inst.division}")
        finally:
            store.close()
