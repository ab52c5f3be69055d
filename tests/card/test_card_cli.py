"""``hutong card verify`` against a JWKS file, and ``register(app)`` wiring."""

from __future__ import annotations

import json
import os

import typer
from typer.testing import CliRunner

from hutong.card.cli import register
from hutong.card.crypto import SigningKey
from hutong.card.verify import sign_code


def _app():
    app = typer.Typer()

    @app.command()
    def noop():  # a second command keeps typer in group mode
        pass

    register(app)
    return app


def test_cli_verify_offline(tmp_path):
    key = SigningKey.generate("ed25519")
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps({"keys": [key.verify_key().to_jwk()]}))
    text, _ = sign_code(key, os.urandom(10), 60)
    runner = CliRunner()
    ok = runner.invoke(_app(), ["card", "verify", text, "--keys", str(jwks)])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.output)["result"] == "valid"
    bad = runner.invoke(_app(), ["card", "verify", text[:-1] + ("B" if text[-1] == "A" else "A"), "--keys", str(jwks)])
    assert bad.exit_code == 1 and json.loads(bad.output)["reason"] in {"bad-signature", "malformed"}
    missing = runner.invoke(_app(), ["card", "verify", text, "--keys", str(tmp_path / "none.json")])
    assert missing.exit_code == 2
