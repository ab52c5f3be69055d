"""``hutong share …`` commands: the demo resident, and an institution's workstation-launch key."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add the ``share`` command group to the main CLI."""
    share = typer.Typer(help="健康档案调阅 / shared record", no_args_is_help=True)

    @share.command("launch-key")
    def launch_key_cmd(org: str = typer.Argument(..., help="机构 Organization id")) -> None:
        """打印机构的工作站启动密钥（base64url）/ print the institution's launch key for its HIS."""
        import base64

        from hutong.api.app import node_store
        from hutong.share.launch import launch_key

        store = node_store()
        try:
            typer.echo(base64.urlsafe_b64encode(launch_key(store, org)).decode().rstrip("="))
        finally:
            store.close()

    @share.command("demo")
    def demo_cmd(extra: int = typer.Option(0, help="追加的检验/就诊条数 / padding resources")) -> None:
        """载入示例居民（三家医院的记录）/ load the demo resident seen at three hospitals."""
        from hutong.api.app import node_store
        from hutong.share.demo import load_demo, publish_demo_document

        store = node_store()
        try:
            ids = load_demo(store, extra)
            publish_demo_document(store)
            typer.echo(f"demo records: {', '.join(ids.values())} → /workstation/patient/{ids['demo-h1']}")
        finally:
            store.close()

    app.add_typer(share, name="share")
