"""The node's signing keys for access tokens (ES256), kept in the database so that every worker and
every node on the same database signs and verifies alike; published at ``/.well-known/jwks.json``."""

from __future__ import annotations

import threading

import orjson
from joserfc.jwk import ECKey, KeySet
from sqlalchemy import insert, select, update

from hutong.core.clock import now_us
from hutong.core.errors import FhirError
from hutong.core.ids import new_id
from hutong.security.tables import security_node_key

ALG = "ES256"


class NodeKeys:
    """The signing key and the verification key set of one store (loaded once, reloaded on rotation)."""

    def __init__(self, store):
        self.store = store
        self._lock = threading.Lock()
        self._signing: ECKey | None = None
        self._keyset: KeySet | None = None
        self._public: list[dict] = []

    def _load(self) -> None:
        with self.store.read() as tx:
            rows = tx.conn.execute(select(security_node_key).where(security_node_key.c.retired_us.is_(None))
                                   .order_by(security_node_key.c.created_us)).all()
        if not rows:
            self._create()
            with self.store.read() as tx:
                rows = tx.conn.execute(select(security_node_key).where(security_node_key.c.retired_us.is_(None))
                                       .order_by(security_node_key.c.created_us)).all()
        newest = rows[-1]
        self._signing = ECKey.import_key(newest.private_pem, parameters={"kid": newest.kid, "alg": ALG, "use": "sig"})
        self._public = [orjson.loads(r.public_jwk) for r in rows]
        self._keyset = KeySet.import_key_set({"keys": self._public})

    def _create(self) -> str:
        key = ECKey.generate_key("P-256", parameters={"kid": new_id()[:16], "alg": ALG, "use": "sig"})
        public = key.as_dict(private=False)
        try:
            with self.store.write() as tx:
                tx.conn.execute(insert(security_node_key).values(
                    kid=key.kid, alg=ALG, private_pem=key.as_pem(private=True).decode(),
                    public_jwk=orjson.dumps(public).decode(), created_us=now_us()))
        except FhirError:
            pass  # another worker created one at the same moment: both stay valid
        return key.kid

    def signing(self) -> ECKey:
        with self._lock:
            if self._signing is None:
                self._load()
            return self._signing  # type: ignore[return-value]

    def keyset(self) -> KeySet:
        with self._lock:
            if self._keyset is None:
                self._load()
            return self._keyset  # type: ignore[return-value]

    def jwks(self) -> dict:
        """The public JWKS document."""
        self.keyset()
        return {"keys": list(self._public)}

    def rotate(self, keep: int = 2) -> str:
        """Make a new signing key; keys beyond the newest ``keep`` are retired (their tokens stop verifying)."""
        kid = self._create()
        with self.store.write() as tx:
            rows = tx.conn.execute(select(security_node_key.c.kid).where(security_node_key.c.retired_us.is_(None))
                                   .order_by(security_node_key.c.created_us.desc())).scalars().all()
            for old in rows[keep:]:
                tx.conn.execute(update(security_node_key).where(security_node_key.c.kid == old)
                                .values(retired_us=now_us()))
        with self._lock:
            self._signing = self._keyset = None
        return kid
