"""``hutong clients …``, ``hutong auth …``, ``hutong users …`` and ``hutong audit …``."""

from __future__ import annotations

from pathlib import Path

import orjson
import typer


def _store(data_dir: Path | None, database_url: str | None = None):
    from hutong.api.app import node_store
    from hutong.cli import settings_from

    return node_store(settings_from(data_dir, database_url))


def _jwks_arg(value: str) -> tuple[dict | None, str | None]:
    if value.startswith(("https://", "http://")):
        return None, value
    try:
        return orjson.loads(Path(value).read_bytes()), None
    except (OSError, orjson.JSONDecodeError) as exc:
        raise typer.BadParameter(f"--jwks {value}: not a readable JWKS file ({exc})") from None


def register(app: typer.Typer) -> None:
    clients = typer.Typer(help="SMART Backend Services clients (institution systems)", no_args_is_help=True)
    auth = typer.Typer(help="Access tokens and demo credentials (development mode)", no_args_is_help=True)
    users = typer.Typer(help="People who sign in to the pages", no_args_is_help=True)
    audit_cmd = typer.Typer(help="The audit trail", no_args_is_help=True)

    @clients.command("add")
    def clients_add(name: str = typer.Option(..., "--name"),
                    jwks: str = typer.Option(..., "--jwks", help="JWKS file or https:// URL of the client's keys"),
                    scope: str = typer.Option(..., "--scope", help='e.g. "system/Patient.rs system/Observation.cruds"'),
                    institution: str = typer.Option(None, "--institution", help="Organization/ID the client acts for"),
                    tenant: str = typer.Option(None, "--tenant", help="city tenant (division code)"),
                    roles: str = typer.Option("system", "--roles"),
                    data_dir: Path = typer.Option(None, "--data-dir"),
                    database_url: str = typer.Option(None, "--database-url")):
        """Register a client; prints its client id."""
        from hutong.security.tokens import TokenService

        keys, url = _jwks_arg(jwks)
        inst = institution.split("/", 1)[1] if institution and institution.startswith("Organization/") else institution
        store = _store(data_dir, database_url)
        try:
            client_id = TokenService(store, store.settings).add_client(name, scope, jwks=keys, jwks_url=url,
                                                                       institution=inst, tenant=tenant, roles=roles)
        except ValueError as exc:
            typer.echo(f"refused: {exc}", err=True)
            raise typer.Exit(2) from None
        finally:
            store.close()
        typer.echo(client_id)

    @clients.command("list")
    def clients_list(data_dir: Path = typer.Option(None, "--data-dir"),
                     database_url: str = typer.Option(None, "--database-url")):
        """List registered clients."""
        from hutong.security.tokens import TokenService

        store = _store(data_dir, database_url)
        try:
            for c in TokenService(store, store.settings).clients():
                p = c.public()
                typer.echo(f"{p['client_id']}\t{p['status']}\t{p['name']}\t{p['institution'] or '-'}\t"
                           f"{p['tenant'] or '-'}\t{p['scope']}")
        finally:
            store.close()

    @clients.command("rotate")
    def clients_rotate(client_id: str = typer.Argument(...), jwks: str = typer.Option(..., "--jwks"),
                       data_dir: Path = typer.Option(None, "--data-dir"),
                       database_url: str = typer.Option(None, "--database-url")):
        """Replace a client's keys (publish old and new keys together during a rollover)."""
        from hutong.security.tokens import TokenService

        keys, url = _jwks_arg(jwks)
        store = _store(data_dir, database_url)
        try:
            TokenService(store, store.settings).rotate_client(client_id, jwks=keys, jwks_url=url)
        except (ValueError, KeyError) as exc:
            typer.echo(f"refused: {exc}", err=True)
            raise typer.Exit(2) from None
        finally:
            store.close()
        typer.echo(client_id)

    @clients.command("disable")
    def clients_disable(client_id: str = typer.Argument(...), data_dir: Path = typer.Option(None, "--data-dir"),
                        database_url: str = typer.Option(None, "--database-url")):
        """Disable a client: its tokens stop working within seconds, no new ones are issued."""
        from hutong.security.tokens import TokenService

        store = _store(data_dir, database_url)
        try:
            TokenService(store, store.settings).set_status(client_id, "disabled")
        except KeyError:
            typer.echo(f"no client {client_id}", err=True)
            raise typer.Exit(2) from None
        finally:
            store.close()
        typer.echo(client_id)

    @auth.command("token")
    def auth_token(data_dir: Path = typer.Option(..., "--data-dir"),
                   scope: str = typer.Option("system/*.*", "--scope"),
                   database_url: str = typer.Option(None, "--database-url")):
        """Print a fresh access token of the demo system client (development mode only)."""
        from hutong.security import demo, scopes
        from hutong.security.tokens import TokenService

        store = _store(data_dir, database_url)
        try:
            if demo.is_production(store.settings):
                typer.echo("refused: hutong auth token is for development mode only", err=True)
                raise typer.Exit(2)
            doc = demo.ensure_demo_accounts(store)
            service = TokenService(store, store.settings)
            client = service.client(doc["system_client"]["client_id"])
            try:
                granted = scopes.narrow(scopes.parse_scope(scope), client.scope)
            except Exception as exc:  # noqa: BLE001 - said plainly to the user
                typer.echo(f"refused: {exc}", err=True)
                raise typer.Exit(2) from None
            typer.echo(service.mint(client.client_id, granted, roles=client.roles))
        finally:
            store.close()

    @auth.command("assertion")
    def auth_assertion(data_dir: Path = typer.Option(..., "--data-dir"),
                       token_url: str = typer.Option("http://127.0.0.1:8080/auth/token", "--token-url")):
        """Print a signed client assertion of the demo system client (for curl against /auth/token)."""
        from hutong.cli import settings_from
        from hutong.security import demo

        try:
            typer.echo(demo.demo_assertion(settings_from(data_dir, None), token_url))
        except demo.ProductionRefusal as exc:
            typer.echo(f"refused: {exc}", err=True)
            raise typer.Exit(2) from None

    @auth.command("totp")
    def auth_totp(data_dir: Path = typer.Option(..., "--data-dir"), user: str = typer.Option(..., "--user")):
        """Print the current TOTP code of a demo user (development mode only)."""
        import pyotp

        from hutong.cli import settings_from
        from hutong.security import demo

        settings = settings_from(data_dir, None)
        if demo.is_production(settings) or not demo.credentials_path(settings).exists():
            typer.echo("refused: development mode demo users only", err=True)
            raise typer.Exit(2)
        secret = orjson.loads(demo.credentials_path(settings).read_bytes())["users"].get(user, {}).get("totp_secret")
        if not secret:
            typer.echo(f"{user} has no TOTP secret", err=True)
            raise typer.Exit(2)
        typer.echo(pyotp.TOTP(secret).now())

    @users.command("add")
    def users_add(username: str = typer.Argument(...), roles: str = typer.Option(..., "--roles"),
                  institution: str = typer.Option(None, "--institution"), tenant: str = typer.Option(None, "--tenant"),
                  patient: str = typer.Option(None, "--patient"),
                  data_dir: Path = typer.Option(None, "--data-dir"),
                  database_url: str = typer.Option(None, "--database-url")):
        """Create a user (the password is asked for; the TOTP secret is printed once)."""
        from hutong.security.sessions import Sessions

        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
        store = _store(data_dir, database_url)
        try:
            secret = Sessions(store, store.settings).add_user(username, password, roles, institution=institution,
                                                              tenant=tenant, patient=patient)
        except ValueError as exc:
            typer.echo(f"refused: {exc}", err=True)
            raise typer.Exit(2) from None
        finally:
            store.close()
        if secret:
            import pyotp

            typer.echo("TOTP: " + pyotp.TOTP(secret).provisioning_uri(username, issuer_name="Hutong"))

    @audit_cmd.command("verify")
    def audit_verify(data_dir: Path = typer.Option(None, "--data-dir"),
                     database_url: str = typer.Option(None, "--database-url")):
        """Verify the hash chain; names the first event changed, removed or reordered (exit 1)."""
        from hutong.security.audit import verify

        store = _store(data_dir, database_url)
        try:
            result = verify(store)
        finally:
            store.close()
        typer.echo(result.text())
        if not result.ok:
            raise typer.Exit(1)

    @audit_cmd.command("prune")
    def audit_prune(data_dir: Path = typer.Option(None, "--data-dir"),
                    database_url: str = typer.Option(None, "--database-url"),
                    days: int = typer.Option(None, "--days", help="keep this many days (default: HUTONG_AUDIT_RETENTION_DAYS)")):
        """Purge audit events older than the retention period, leaving a signed cut (verify keeps working)."""
        from hutong.security.retention import purge

        store = _store(data_dir, database_url)
        try:
            result = purge(store, days if days is not None else store.settings.audit_retention_days)
        finally:
            store.close()
        typer.echo(result.text())
        if result.refused:
            raise typer.Exit(1)

    app.add_typer(clients, name="clients")
    app.add_typer(auth, name="auth")
    app.add_typer(users, name="users")
    app.add_typer(audit_cmd, name="audit")
