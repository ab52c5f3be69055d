"""Settings from ``HUTONG_*`` environment variables, an optional TOML file, and explicit overrides.

Precedence (highest first): keyword overrides, environment, the TOML file named by
``HUTONG_CONFIG`` (or ``hutong.toml`` in the working directory), defaults.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    """Runtime configuration of one Hutong node."""

    data_dir: Path = Path("./hutong-data")
    #: SQLAlchemy-style or plain ``postgresql://`` URL; empty means SQLite in ``data_dir``.
    database_url: str = ""
    host: str = "127.0.0.1"
    port: int = 8080
    #: Tenant that writes without an explicit tenant belong to (the province node).
    default_tenant: str = "22"
    #: Largest request body accepted on any route, in bytes (Bundles, documents).
    max_body_bytes: int = 64 * 1024 * 1024
    #: Largest single resource sent as JSON (create, update, patch), in bytes.
    max_resource_bytes: int = 16 * 1024 * 1024
    #: Default and largest page size for searches and history.
    default_count: int = 50
    max_count: int = 1000
    #: Run background consumers of the change log (MPI linking, etc.) inside the server.
    workers: bool = True
    #: Health card: lifetime of a dynamic QR code.
    card_qr_ttl_seconds: int = 60
    #: Health card: key-encryption key (base64 or passphrase) protecting signing keys at rest.
    card_kek: str = ""
    #: Health card: signature algorithm, ``ed25519`` or ``sm2``.
    card_alg: str = "ed25519"
    #: Health card: replay policy, ``one-visit`` (one institution per code) or ``single-use``.
    card_replay_policy: str = "one-visit"
    #: The node's URL as clients see it (behind a proxy it differs from host:port); empty: from the request.
    public_url: str = ""
    #: Browser origins allowed to call the API cross-origin (comma-separated; empty: CORS off).
    cors_origins: str = ""
    #: Chained search parameters deeper than this are refused with 400.
    max_chain_depth: int = 4
    #: A conditional delete matching more resources than this deletes nothing (412).
    conditional_delete_max: int = 1000
    #: Bulk Data export jobs and their files are deleted this many hours after the kick-off.
    export_retention_hours: int = 24
    #: The public epidemic dashboard hides counts from 1 to this minus one (with complementary suppression).
    epidemic_min_cell: int = 5
    #: A write waits at most this long for the write lock; then 503 with Retry-After.
    db_lock_timeout_s: float = 10.0
    #: A PostgreSQL statement runs at most this long (reads page in chunks far below it).
    db_statement_timeout_s: float = 60.0
    #: Requests waiting for a database thread beyond this many get 503 at once (overload).
    max_waiting_requests: int = 200
    #: A request's headers must arrive within this many seconds of its first byte (slow clients).
    header_timeout_s: float = 10.0
    #: A request's body must arrive within this many seconds of its headers.
    body_timeout_s: float = 120.0
    #: Connections one client address may hold open per worker process.
    max_connections_per_client: int = 256
    #: Triage: the department model file (empty: the one installed by ``hutong triage train``, else the shipped one).
    triage_model: str = ""
    #: Report reading: minutes a doctor has to acknowledge a critical value before it escalates.
    reportread_ack_minutes: int = 15
    #: Report reading: an institution's own critical-value table (CSV: key,low,high,unit,note); empty: the shipped one.
    reportread_critical_table: str = ""
    #: Report reading: seconds between checks for overdue critical values in a running node (0: off).
    reportread_escalation_seconds: int = 30
    #: Recognition: TCP port of the HL7 v2 MLLP listener (ORU^R01, OUL^R22); 0: no listener.
    mllp_port: int = 0
    #: Recognition: refuse CDS Hooks calls without a signed JWT from a registered client (a JWT that
    #: is sent is always checked). Off until the security capability enforces authentication.
    recognition_cds_require_jwt: bool = False
    #: Web layer: root secret for signed cookies and workstation-launch keys (empty: a random one kept in
    #: the database, shared by every worker and node on it).
    web_secret: str = ""
    # -- events and federation (hutong/federation, docs/federation.md) --------------------------
    #: NATS server(s) with JetStream for the node's event stream (comma-separated URLs); empty: no
    #: broker (in-process consumers, application events by database polling).
    nats_url: str = "nats://127.0.0.1:4222"
    #: JetStream stream holding this node's change events and application events, and its limits.
    events_stream: str = "HUTONG"
    events_subject_prefix: str = "hutong"
    events_max_age_hours: int = 168
    events_max_bytes: int = 8 * 1024 * 1024 * 1024
    events_max_msgs: int = -1
    #: JetStream's de-duplication window by event id (consumers de-duplicate beyond it by position).
    events_duplicate_window_s: int = 120
    events_replicas: int = 1
    #: The node's place in the federation: ``standalone``, ``city`` or ``province``.
    federation_role: str = "standalone"
    #: City: the province's base URL (``https://province.example``) for HTTPS push-up and pull-down.
    federation_province_url: str = ""
    #: City: how changes go up: ``https``, ``jetstream`` (the province's broker, ``federation_nats_url``)
    #: or ``auto`` (JetStream when ``federation_nats_url`` is set, else HTTPS).
    federation_uplink: str = "auto"
    #: The broker shared with the province (city push-up, province ingest); empty: none shared.
    federation_nats_url: str = ""
    #: Resource types that flow up from a city (comma-separated; ``clinical`` names the clinical set,
    #: see hutong/federation/config.py) and types the province distributes down (registry,
    #: recognition catalog, terminology, statistics forms). A type is never in both.
    federation_up_types: str = "clinical"
    federation_down_types: str = "registry,catalog,terminology,forms"
    #: Subscriptions: how long a failing rest-hook is retried (with backoff) before dead-lettering.
    subscription_retry_hours: int = 48
    # -- security (hutong/security, docs/security.md) --------------------------------------------
    #: ``development`` (demo accounts, ``hutong auth token``) or ``production`` (refuses both, checks keys).
    env: str = "development"
    #: A trusted gateway's shared key: requests carrying it in ``X-Hutong-Gateway-Key`` have their
    #: ``X-Hutong-*`` identity headers believed. Empty: no gateway, the headers are ignored.
    security_gateway_key: str = ""
    #: Lifetime of an access token from ``POST /auth/token``, in seconds.
    security_token_ttl_s: int = 300
    #: A page session ends this many minutes after sign-in.
    security_session_minutes: int = 30
    #: Failed sign-ins before an account is locked, and for how long.
    security_lockout_failures: int = 5
    security_lockout_minutes: int = 15
    #: The node sits behind a TLS-terminating proxy (production may then bind a non-loopback address).
    security_behind_proxy: bool = False
    #: Audit events are kept at least this many days (网络安全法 Article 21: six months).
    audit_retention_days: int = 183
    #: Forward audit events to this syslog server (``host:port``, UDP); empty: off.
    audit_syslog: str = ""
    #: Requests per second per network address and per authenticated client (0: no limit); a bucket
    #: holds this many seconds of its rate. ``auto``: loopback exempt in development only;
    #: ``loopback``: always; ``none``: never (hutong/security/protection.py).
    security_rate_address: float = 300.0
    security_rate_client: float = 1000.0
    security_rate_burst_s: float = 2.0
    security_rate_exempt: str = "auto"
    #: Detection windows and thresholds (security events: credential-stuffing, scraping, scanning).
    security_detect_window_s: int = 600
    security_stuffing_names: int = 10
    security_scraping_patients: int = 1000
    security_scanning_refusals: int = 200
    # -- consultations, telemedicine, referrals (hutong/consult, docs/consult.md) ----------------
    #: Minutes (in working hours) within which an online consultation gets its first response.
    consult_first_response_minutes: int = 30
    #: Working hours of the online clinic, Asia/Shanghai (``HH:MM-HH:MM``; ``00:00-24:00``: always).
    consult_hours: str = "08:00-22:00"
    #: Hours a referral or telemedicine request may wait for action before it is flagged.
    consult_referral_action_hours: int = 48
    #: A follow-up visit needs an in-person visit within this many days.
    consult_followup_window_days: int = 365
    #: Seconds between checks for missed response times in a running node (0: off).
    consult_escalation_seconds: int = 30
    #: Where notifications go besides the platform's notice list: ``log``, ``memory`` or ``file:/path``.
    consult_notifier: str = "log"
    extra: dict = field(default_factory=dict)

    @property
    def sqlalchemy_url(self) -> str:
        """The URL SQLAlchemy should use; SQLite under ``data_dir`` when none is configured."""
        url = self.database_url
        if not url:
            return f"sqlite:///{(Path(self.data_dir) / 'hutong.db').resolve()}"
        if url.startswith("postgresql://") or url.startswith("postgres://"):
            return "postgresql+psycopg://" + url.split("://", 1)[1]
        return url

    @property
    def is_postgres(self) -> bool:
        return self.sqlalchemy_url.startswith("postgresql")


def _coerce(value: str, typ: type):
    if typ is bool or typ == "bool":
        return value.strip().lower() in {"1", "true", "yes", "on"}
    if typ is int or typ == "int":
        return int(value)
    if typ is float or typ == "float":
        return float(value)
    if typ is Path or typ == "Path":
        return Path(value)
    return value


def load_settings(**overrides) -> Settings:
    """Build settings from the TOML file, the environment and ``overrides``."""
    values: dict = {}
    known = {f.name: f.type for f in fields(Settings) if f.name != "extra"}
    config_file = os.environ.get("HUTONG_CONFIG") or ("hutong.toml" if Path("hutong.toml").exists() else "")
    extra: dict = {}
    if config_file:
        with open(config_file, "rb") as fh:
            doc = tomllib.load(fh)
        for key, value in doc.items():
            if key in known:
                values[key] = _coerce(str(value), known[key]) if not isinstance(value, (int, bool)) else value
            else:
                extra[key] = value
    for name, typ in known.items():
        env = os.environ.get("HUTONG_" + name.upper())
        if env is not None and env != "":
            values[name] = _coerce(env, typ)
    for key, value in overrides.items():
        if value is None:
            continue
        if key in known:
            values[key] = value
        else:
            extra[key] = value
    settings = Settings(**values)
    if extra:
        settings = replace(settings, extra=extra)
    return replace(settings, data_dir=Path(settings.data_dir))
