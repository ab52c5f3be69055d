"""Audit retention keeps the chain verifiable (a signed cut of the purged prefix), and the trail is
forwarded to a syslog server as RFC 5424 messages over UDP and TCP — both backends."""

from __future__ import annotations

import dataclasses
import re
import socketserver
import threading
import time

import httpx
import orjson
import pytest
from sqlalchemy import update

from hutong.core.caller import Caller
from hutong.security import audit
from hutong.security.retention import DAY_US, purge
from hutong.security.syslog import parse_target
from hutong.security.tables import audit_cut, audit_event
from tests.conftest import LiveServer, bootstrap_token

CALLER = Caller(client_id="his-1", institution="h1", roles=frozenset({"system"}), auth="token")


def _events(store, n: int, start_us: int) -> None:
    entries = [audit.Entry(start_us + i * 1000, "R", "read", CALLER, "10.0.0.1", "TREAT", "0", [f"p{i}"],
                           [f"Patient/p{i}"]) for i in range(n)]
    with store.write() as tx:
        audit.append(tx.conn, entries)


def test_purge_keeps_verify_working(store):
    now = audit.now_us()
    _events(store, 30, now - 200 * DAY_US)  # older than six months
    _events(store, 10, now - DAY_US)
    result = purge(store, 183, now=now)
    assert result.purged == 30 and result.cut_seq == 30, result.text()
    checked = audit.verify(store)
    assert checked.ok and checked.checked == 10, checked.text()
    assert purge(store, 183, now=now).purged == 0  # nothing more to purge
    _events(store, 5, now)
    assert audit.verify(store).ok  # the chain goes on after the cut

    # removing more events at the front leaves no signed cut to continue from
    with store.write() as tx:
        tx.conn.execute(audit_event.delete().where(audit_event.c.seq == 31))
    bad = audit.verify(store)
    assert not bad.ok and bad.first_bad == 32 and "cut" in bad.problem


def test_a_forged_cut_is_caught(store):
    now = audit.now_us()
    _events(store, 12, now - 400 * DAY_US)
    _events(store, 3, now)
    assert purge(store, 183, now=now).purged == 12
    with store.write() as tx:  # the cut claims fewer purged events than it signed
        tx.conn.execute(update(audit_cut).values(purged=2))
    bad = audit.verify(store)
    assert not bad.ok and "signed" in bad.problem


def test_a_broken_chain_is_not_purged(store):
    now = audit.now_us()
    _events(store, 8, now - 300 * DAY_US)
    with store.write() as tx:
        tx.conn.execute(update(audit_event).where(audit_event.c.seq == 3).values(outcome="8"))
    result = purge(store, 183, now=now)
    assert result.refused and result.purged == 0
    assert not audit.verify(store).ok  # the evidence of the edit is still there


def test_parse_target():
    assert parse_target("udp://127.0.0.1:514") == ("udp", "127.0.0.1", 514)
    assert parse_target("tcp://syslog.example:6514") == ("tcp", "syslog.example", 6514)
    assert parse_target("10.1.1.1:514") == ("udp", "10.1.1.1", 514)
    for bad in ("", "host", "ftp://h:1", "h:0", "h:99999"):
        with pytest.raises(ValueError):
            parse_target(bad)


RFC5424 = re.compile(rb"^<(\d+)>1 (\S+) (\S+) hutong (\d+) (\S+) \[hutong@32473 ([^\]]*)\] \xef\xbb\xbf(.*)$", re.S)


class _Udp(socketserver.BaseRequestHandler):
    def handle(self):
        self.server.got.append(self.request[0])


class _Tcp(socketserver.StreamRequestHandler):
    def handle(self):  # RFC 6587 octet counting: "LEN SP MSG"
        while True:
            length = b""
            while not length.endswith(b" "):
                ch = self.rfile.read(1)
                if not ch:
                    return
                length += ch
            self.server.got.append(self.rfile.read(int(length)))


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_audit_forwarded_to_syslog(server_store, transport):
    kind = socketserver.ThreadingUDPServer if transport == "udp" else socketserver.ThreadingTCPServer
    with kind(("127.0.0.1", 0), _Udp if transport == "udp" else _Tcp) as syslog:
        syslog.got = []
        threading.Thread(target=syslog.serve_forever, daemon=True).start()
        target = f"{transport}://127.0.0.1:{syslog.server_address[1]}"
        server_store.create({"resourceType": "Patient", "gender": "male"}, res_id="sys1")
        token = bootstrap_token(server_store, frozenset({"system/*.rs"}))
        from hutong.api.app import create_app

        settings = dataclasses.replace(server_store.settings, audit_syslog=target)
        with LiveServer(create_app(settings=settings, store=server_store), credentials=False) as live:
            r = httpx.get(live.url + "/fhir/Patient/sys1", headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 200
            deadline = time.monotonic() + 10
            while not any(b"Patient/sys1" in m for m in syslog.got) and time.monotonic() < deadline:
                time.sleep(0.1)
        syslog.shutdown()
    found = [m for m in syslog.got if b"Patient/sys1" in m]
    assert found, syslog.got
    m = RFC5424.match(found[0])
    assert m, found[0][:200]
    assert int(m.group(1)) == 13 * 8 + 6 and m.group(5) == b"audit"
    assert m.group(2).endswith(b"Z") and b'action="R"' in m.group(6) and b'outcome="0"' in m.group(6)
    event = orjson.loads(m.group(7))
    assert event["resourceType"] == "AuditEvent" and event["action"] == "R"
    assert any(e.get("what", {}).get("reference") == "Patient/sys1" for e in event["entity"])


def test_bad_syslog_target_refuses_to_start(server_store):
    from hutong.security.service import SecurityService

    class _Node:
        store = server_store
        settings = dataclasses.replace(server_store.settings, audit_syslog="ftp://nowhere")
        services: dict = {}

    service = SecurityService(_Node())
    with pytest.raises(ValueError):
        service.start()
    service.retention.stop()
