"""The audit trail: every access to a person's data becomes a BALP AuditEvent, residents see who
opened their record, and the verifier names an edited, a deleted and a reordered row. Both backends."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
from sqlalchemy import delete, select, update

from hutong.security import audit
from hutong.security.service import security_of
from hutong.security.tables import audit_event
from tests.conftest import REPO, TEST_GATEWAY_KEY
from tests.security.conftest import get_token


def _node_audit(server_store):
    """Append what the serving node has queued (the node runs in this process)."""
    from hutong.security.audit import AuditTrail

    return AuditTrail(server_store, server_store.settings)


def _drain(secure, token):
    # the auditor API drains the node's queue before it answers
    return httpx.get(secure + "/api/security/audit/verify", headers={"Authorization": "Bearer " + token}).json()


def test_accesses_are_audited_in_balp_shape(secure, institution, server_store):
    server_store.update("Patient", "p1", {"resourceType": "Patient", "id": "p1", "gender": "male"})
    server_store.update("Patient", "p2", {"resourceType": "Patient", "id": "p2", "gender": "female"})
    his = institution("system/Patient.rs system/Observation.cruds", institution="h1")
    auditor = institution("hutong/audit.*")
    with httpx.Client(base_url=secure) as c:
        token = get_token(c, secure, his, "system/Patient.rs system/Observation.cruds")
        auth = {"Authorization": "Bearer " + token, "X-Purpose-Of-Use": "TREAT"}
        assert c.get("/fhir/Patient/p1", headers=auth).status_code == 200
        assert c.get("/fhir/Patient", headers=auth).status_code == 200
        obs = {"resourceType": "Observation", "status": "final", "code": {"text": "体温"},
               "subject": {"reference": "Patient/p2"}}
        assert c.post("/fhir/Observation", json=obs, headers=auth).status_code == 201
        assert c.get("/fhir/Patient/nobody", headers=auth).status_code == 404
        atoken = get_token(c, secure, auditor, "hutong/audit.*")
        assert _drain(secure, atoken)["ok"] is True
        found = c.get("/api/security/audit", params={"patient": "p1"},
                      headers={"Authorization": "Bearer " + atoken}).json()["entry"]
    events = [e["resource"] for e in found]
    read = next(e for e in events if e["subtype"][0]["code"] == "read")
    assert read["resourceType"] == "AuditEvent" and read["action"] == "R" and read["outcome"] == "0"
    assert read["meta"]["profile"][0].endswith("IHE.BasicAudit.PatientRead")
    requestor = next(a for a in read["agent"] if a["requestor"])
    assert requestor["who"]["identifier"]["value"] == his.client_id
    assert requestor["location"]["reference"] == "Organization/h1"
    assert requestor["network"]["address"] == "127.0.0.1"
    assert read["purposeOfEvent"][0]["coding"][0]["code"] == "TREAT"
    assert {"Patient/p1"} <= {e["what"]["reference"] for e in read["entity"] if "what" in e}
    # the search audited once per patient it returned
    searches = [e for e in events if e["subtype"][0]["code"] == "search-type"]
    assert searches and searches[0]["meta"]["profile"][0].endswith("IHE.BasicAudit.PatientQuery")
    # the write, in its own transaction, about p2
    p2 = audit.search(server_store, patient="p2")
    assert any(e["action"] == "C" and e["subtype"][0]["code"] == "create" for e in p2)
    # the refused read is audited with its outcome
    missing = audit.search(server_store, patient="nobody")
    assert missing and missing[0]["outcome"] == "4"


def test_resident_sees_who_opened_their_record(secure, institution, server_store):
    server_store.update("Patient", "p1", {"resourceType": "Patient", "id": "p1"})
    his = institution("system/Patient.rs", institution="h-jilin-1")
    token = get_token(httpx, secure, his)
    assert httpx.get(secure + "/fhir/Patient/p1", headers={"Authorization": "Bearer " + token}).status_code == 200
    security_of_node = secure  # noqa: F841 - the node's queue is drained by the API itself
    resident = {"X-Hutong-Gateway-Key": TEST_GATEWAY_KEY, "X-Hutong-Role": "resident", "X-Hutong-Patient": "p1",
                "X-Hutong-Client": "resident-p1"}
    log = httpx.get(secure + "/api/security/my-access", headers=resident).json()
    assert any(a["institution"] == "h-jilin-1" and a["what"] == "read" for a in log["accesses"])
    other = httpx.get(secure + "/api/security/my-access", params={"patient": "p2"}, headers=resident)
    assert other.status_code == 403


def _chain(store, n=6):
    trail = audit.AuditTrail(store, store.settings)
    from hutong.core.caller import Caller

    caller = Caller(client_id="his-1", institution="h1", roles=frozenset({"system"}), auth="token")
    for i in range(n):
        trail.enqueue(audit.Entry(audit.now_us(), "R", "read", caller, "10.0.0.1", "TREAT", "0", [f"p{i}"], []), None)
    trail.drain()
    assert audit.verify(store).ok


def _cli_verify(store):
    env = {**os.environ, "PYTHONPATH": str(REPO), "HUTONG_DATABASE_URL": store.settings.database_url}
    return subprocess.run([sys.executable, "-m", "hutong.cli", "audit", "verify", "--data-dir",
                           str(store.settings.data_dir)], capture_output=True, text=True, env=env, timeout=120)


def test_verifier_catches_an_edited_row(store):
    _chain(store)
    ok = _cli_verify(store)
    assert ok.returncode == 0 and "6 events verified" in ok.stdout
    with store.write() as tx:
        body = tx.conn.execute(select(audit_event.c.event).where(audit_event.c.seq == 3)).scalar()
        tx.conn.execute(update(audit_event).where(audit_event.c.seq == 3)
                        .values(event=body.replace('"10.0.0.1"', '"10.0.0.9"')))
    result = audit.verify(store)
    assert not result.ok and result.first_bad == 3 and "edited" in result.problem
    cli = _cli_verify(store)
    assert cli.returncode == 1 and "event 3" in cli.stdout


def test_verifier_catches_an_edited_column(store):
    _chain(store)
    with store.write() as tx:
        tx.conn.execute(update(audit_event).where(audit_event.c.seq == 2).values(patient="someone-else"))
    result = audit.verify(store)
    assert not result.ok and result.first_bad == 2


def test_verifier_catches_a_deleted_row(store):
    _chain(store)
    with store.write() as tx:
        tx.conn.execute(delete(audit_event).where(audit_event.c.seq == 4))
    result = audit.verify(store)
    assert not result.ok and result.first_bad == 4 and "removed" in result.problem


def test_verifier_catches_a_deleted_last_row(store):
    _chain(store)
    with store.write() as tx:
        tx.conn.execute(delete(audit_event).where(audit_event.c.seq == 6))
    result = audit.verify(store)
    assert not result.ok and "removed from the end" in result.problem


def test_verifier_catches_reordered_rows(store):
    _chain(store)
    with store.write() as tx:
        rows = {r.seq: r for r in tx.conn.execute(select(audit_event).where(audit_event.c.seq.in_([2, 3]))).all()}
        # swap the two events wholesale (content, hashes and columns), keeping the sequence numbers
        for seq, other in ((2, rows[3]), (3, rows[2])):
            tx.conn.execute(update(audit_event).where(audit_event.c.seq == seq).values(
                event=other.event, hash=other.hash, prev_hash=other.prev_hash, patient=other.patient,
                ts_us=other.ts_us))
    result = audit.verify(store)
    assert not result.ok and result.first_bad == 2


def test_write_audit_commits_with_the_write(store):
    """A write that fails leaves neither data nor a write AuditEvent behind (same transaction)."""
    from hutong.api.app import create_app

    app = create_app(store=store)
    node = app.node
    security_of(node)
    from hutong.core.caller import Caller
    from hutong.fhir.rest import FhirRequest, perform
    from hutong.fhir.routes import Call

    caller = Caller(client_id="his-1", institution="h1", roles=frozenset({"system"}), auth="token",
                    scopes=frozenset({"system/*.*"}))
    interaction, params = node.routes.match("PUT", "Patient/p9")
    req = FhirRequest("PUT", "Patient/p9", [], {}, {"resourceType": "Patient", "id": "p9"})
    perform(Call(interaction, params, req, store, caller, "http://x/fhir", None, node.routes))
    assert [e["action"] for e in audit.search(store, patient="p9")] == ["C"]
    bad = FhirRequest("PUT", "Patient/p9", [], {"if-match": 'W/"7"'}, {"resourceType": "Patient", "id": "p9"})
    try:
        perform(Call(interaction, params, bad, store, caller, "http://x/fhir", None, node.routes))
    except Exception:  # noqa: BLE001 - 412 expected
        pass
    assert [e["action"] for e in audit.search(store, patient="p9")] == ["C"]  # no write event for the failure
    security_of(node).audit.drain()
    assert audit.verify(store).ok
