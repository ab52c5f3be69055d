"""``hutong web …`` commands: keep the message catalog in step with the pages."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the ``web`` command group to the main CLI."""
    web = typer.Typer(help="页面 / web layer", no_args_is_help=True)

    @web.command("catalog")
    def catalog_cmd(check: bool = typer.Option(False, "--check", help="只检查，不写文件 / report only")) -> None:
        """更新英文消息目录 / update the English message catalog (hutong/web/locale/en/LC_MESSAGES/messages.po)."""
        from hutong.web import catalog

        if check:
            missing = catalog.missing_translations()
        else:
            added, removed, missing = catalog.update_catalog()
            typer.echo(f"added {added}, removed {removed} message ids ({catalog.PO_FILE})")
        for msgid in missing:
            typer.echo(f"untranslated: {msgid}")
        if missing:
            raise typer.Exit(1)

    app.add_typer(web, name="web")
