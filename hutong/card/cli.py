"""``hutong card …`` commands: offline verification, key management and issuing from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import typer

card_app = typer.Typer(help="电子健康卡 Electronic health card: verify codes offline, manage keys, issue cards.",
                       no_args_is_help=True)


def register(app: typer.Typer) -> None:
    """Add the ``card`` command group to the main CLI."""
    app.add_typer(card_app, name="card")


def _store(data_dir: Path | None, database_url: str | None):
    from hutong.api.app import node_store
    from hutong.config import load_settings

    return node_store(load_settings(data_dir=data_dir, database_url=database_url))


@card_app.command("verify")
def verify_cmd(
    qr_text: str = typer.Argument(..., help="The scanned code text (HTC1:…)"),
    keys: str = typer.Option(..., "--keys", help="JWKS trust list: a file or an http(s) URL (GET /api/card/keys)"),
    leeway: int = typer.Option(5, help="Seconds of clock skew tolerated"),
):
    """Check a code's signature and expiry offline against the published keys (exit 1 if refused)."""
    from hutong.card.verify import CardRefusal, load_jwks, verify_qr

    try:
        jwks = load_jwks(keys)
    except Exception as exc:  # noqa: BLE001 - report any load failure plainly
        typer.echo(f"cannot load keys from {keys}: {exc}", err=True)
        raise typer.Exit(2) from None
    try:
        code = verify_qr(qr_text, jwks, leeway=leeway)
    except CardRefusal as refusal:
        typer.echo(json.dumps({"result": "refused", "reason": refusal.reason, "message": refusal.diagnostics},
                              ensure_ascii=False))
        raise typer.Exit(1) from None
    typer.echo(json.dumps({"result": "valid", **code.to_dict()}, ensure_ascii=False))


@card_app.command("keys")
def keys_cmd(
    data_dir: Path = typer.Option(None, "--data-dir"),
    database_url: str = typer.Option(None, "--database-url"),
    out: Path = typer.Option(None, "--out", help="Write the JWKS to this file instead of printing it"),
):
    """Print (or write) the node's JWKS trust list, creating the first signing key if needed."""
    from hutong.card.service import service_for

    store = _store(data_dir, database_url)
    try:
        svc = service_for(store)
        svc.keys.signer()
        text = json.dumps(svc.keys.jwks(), indent=2)
    finally:
        store.close()
    if out:
        out.write_text(text + "\n", encoding="utf-8")
    else:
        typer.echo(text)


@card_app.command("rotate")
def rotate_cmd(
    grace_seconds: int = typer.Option(86400, help="How long the old key keeps verifying"),
    data_dir: Path = typer.Option(None, "--data-dir"),
    database_url: str = typer.Option(None, "--database-url"),
):
    """Retire the current signing key and start signing with a new one."""
    from hutong.card.service import service_for

    store = _store(data_dir, database_url)
    try:
        kid = service_for(store).keys.rotate(grace_seconds)
    finally:
        store.close()
    typer.echo(f"new signing key {kid}")


@card_app.command("issue")
def issue_cmd(
    patient: str = typer.Argument(..., help="Patient/{id}"),
    data_dir: Path = typer.Option(None, "--data-dir"),
    database_url: str = typer.Option(None, "--database-url"),
):
    """Issue a card for a known Patient; prints the card id and the resident page link with its token."""
    from hutong.card.service import issue_card
    from hutong.core.errors import FhirError

    store = _store(data_dir, database_url)
    try:
        card, token = issue_card(store, patient, issued_by="cli")
    except FhirError as exc:
        typer.echo(exc.diagnostics, err=True)
        raise typer.Exit(1) from None
    finally:
        store.close()
    typer.echo(json.dumps({"card_id": card["card_id"], "page": f"{card['page']}#t={token}"}, ensure_ascii=False))
