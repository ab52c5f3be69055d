"""The consult HTTP API over real HTTP (both backends): a question reaches the queue, the doctor
answers in real time (server-sent events), and the same Tasks are searchable under /fhir; the
sender and the receiver on different server processes."""

from __future__ import annotations

import dataclasses
import json
import os
import queue
import subprocess
import sys
import threading
import time

import httpx
import pytest

from tests.consult.conftest import seed

RESIDENT = {"X-Hutong-Role": "resident", "X-Hutong-Patient": "pat-1", "X-Hutong-Client": "Patient/pat-1"}


def doctor(role: str, org: str = "org-prov") -> dict:
    return {"X-Hutong-Role": "clinician", "X-Hutong-Client": f"PractitionerRole/{role}", "X-Hutong-Institution": org}


class SseReader:
    """Reads an SSE stream in a thread; ``next_message()`` returns the next ``message`` event's data."""

    def __init__(self, url: str, headers: dict):
        self.events: queue.Queue = queue.Queue()
        self.opened = threading.Event()
        self.client = httpx.Client(timeout=httpx.Timeout(30, read=60))
        self.thread = threading.Thread(target=self._run, args=(url, headers), daemon=True)
        self.thread.start()
        assert self.opened.wait(20), "the event stream did not open"

    def _run(self, url, headers):
        try:
            with self.client.stream("GET", url, headers=headers) as r:
                self.status = r.status_code
                self.opened.set()
                event, data = None, []
                for line in r.iter_lines():
                    if line.startswith("event:"):
                        event = line[6:].strip()
                    elif line.startswith("data:"):
                        data.append(line[5:].strip())
                    elif line == "" and data:
                        self.events.put((event, json.loads("".join(data))))
                        event, data = None, []
        except (httpx.HTTPError, RuntimeError):
            self.opened.set()

    def next_message(self, timeout: float = 20) -> dict:
        deadline = time.time() + timeout
        while time.time() < deadline:
            event, data = self.events.get(timeout=max(0.1, deadline - time.time()))
            if event == "message":
                return data
        raise AssertionError("no message arrived")

    def close(self):
        self.client.close()


def test_question_answered_in_real_time(server, server_store):
    seed(server_store)
    with httpx.Client(base_url=server, timeout=30) as http:
        r = http.post("/api/consult/questions", headers=RESIDENT, json={
            "text": "高血压三年，最近早上头晕，血压150/95，药要不要调", "age": 58, "sex": "male",
            "hospital": "Organization/org-prov", "department": "03.04"})
        assert r.status_code == 201, r.text
        item = r.json()["id"]
        assert r.json()["first_response_due"]

        desk = http.get("/api/consult/desk", headers=doctor("prr-cardio1")).json()
        assert [w["id"] for w in desk["waiting"]] == [item]
        assert http.get("/api/consult/desk", headers=doctor("prr-resp")).json()["waiting"] == []

        # Hospital systems work the same queue through FHIR.
        found = http.get("/fhir/Task", params={"owner": "Organization/org-prov", "status": "requested"}).json()
        assert [e["resource"]["id"] for e in found.get("entry", [])] == [item]

        assert http.post(f"/api/consult/items/{item}/accept", headers=doctor("prr-cardio1")).status_code == 200
        assert http.post(f"/api/consult/items/{item}/accept", headers=doctor("prr-cardio2")).status_code == 409
        found = http.get("/fhir/Task", params={"owner": "PractitionerRole/prr-cardio1", "status": "in-progress"}).json()
        assert [e["resource"]["id"] for e in found["entry"]] == [item]

        reader = SseReader(f"{server}/api/consult/items/{item}/events", RESIDENT)
        try:
            assert reader.status == 200
            sent = http.post(f"/api/consult/items/{item}/messages", headers=doctor("prr-cardio1"),
                             json={"text": "请连续测一周早晚血压"})
            assert sent.status_code == 201, sent.text
            got = reader.next_message()
            assert got["text"] == "请连续测一周早晚血压" and got["sender"] == "PractitionerRole/prr-cardio1"
        finally:
            reader.close()

        # Reconnecting with Last-Event-ID replays only what came after.
        http.post(f"/api/consult/items/{item}/messages", headers=RESIDENT, json={"text": "好的"})
        reader = SseReader(f"{server}/api/consult/items/{item}/events", {**RESIDENT, "Last-Event-ID": str(got["seq"])})
        try:
            assert reader.next_message()["text"] == "好的"
        finally:
            reader.close()
        polled = http.get(f"/api/consult/items/{item}/messages", params={"after": got["seq"]}, headers=RESIDENT).json()
        assert [m["text"] for m in polled] == ["好的"]

        comms = http.get("/fhir/Communication", params={"part-of": f"Task/{item}"}).json()
        assert comms["total"] == 2 if "total" in comms else len(comms["entry"]) == 2

        stranger = {"X-Hutong-Role": "resident", "X-Hutong-Patient": "pat-child", "X-Hutong-Client": "Patient/pat-child"}
        assert http.get(f"/api/consult/items/{item}/messages", headers=stranger).status_code == 403
        assert http.post(f"/api/consult/items/{item}/messages", headers=stranger, json={"text": "x"}).status_code == 403

        closed = http.post(f"/api/consult/items/{item}/close", headers=doctor("prr-cardio1"),
                           json={"advice": "氨氯地平加量，两周后复诊"})
        assert closed.status_code == 200
        assert http.post(f"/api/consult/items/{item}/rating", headers=RESIDENT, json={"stars": 5}).status_code == 200
        figures = http.get("/api/consult/statistics").json()
        assert figures["consultations"]["rating_avg"] == 5 and figures["by_department"]["03.04"]["answered"] == 1


def test_bad_input_gets_clear_errors(server, server_store):
    seed(server_store)
    with httpx.Client(base_url=server, timeout=30) as http:
        cases = [
            ("post", "/api/consult/questions", RESIDENT, {"text": ""}),
            ("post", "/api/consult/questions", RESIDENT, {"text": "x", "kind": "first-visit"}),
            ("post", "/api/consult/questions", RESIDENT, {"text": "x", "attachments": [{"contentType": "text/html",
                                                                                        "data": "PGI+"}]}),
            ("post", "/api/consult/questions", RESIDENT, {"text": "x", "attachments": [{"contentType": "image/png",
                                                                                        "data": "not base64!"}]}),
            ("post", "/api/consult/questions", RESIDENT, {"text": "x", "hospital": "Organization/nope"}),
            ("post", "/api/consult/questions", {"X-Hutong-Role": "resident"}, {"text": "x"}),
            ("post", "/api/consult/items/nope/accept", doctor("prr-cardio1"), None),
            ("post", "/api/consult/referrals", doctor("prr-town", "org-town"),
             {"patient": "Patient/pat-1", "receiver": "Organization/org-county", "reason": "x", "records": ["bad"]}),
            ("post", "/api/consult/referrals/x/fly", doctor("prr-town", "org-town"), {}),
            ("post", "/api/consult/telemedicine", doctor("prr-village", "org-village"),
             {"patient": "Patient/pat-1", "target": "Organization/org-county", "kind": "xray", "question": "?"}),
            ("get", "/api/consult/desk", RESIDENT, None),
        ]
        for method, path, headers, body in cases:
            r = http.request(method.upper(), path, headers=headers, json=body)
            assert 400 <= r.status_code < 500, (path, body, r.status_code, r.text)
            assert r.json()["resourceType"] == "OperationOutcome", r.text
        assert http.get("/fhir/Task").json().get("total", 0) == 0  # nothing half-written


def test_referral_and_teleconsultation_over_http(server, server_store):
    seed(server_store)
    town, county = doctor("prr-town", "org-town"), doctor("prr-county", "org-county")
    with httpx.Client(base_url=server, timeout=30) as http:
        r = http.post("/api/consult/referrals", headers=town, json={
            "patient": "Patient/pat-1", "receiver": "Organization/org-county", "reason": "血压控制不佳",
            "records": ["Observation/obs-ecg"]})
        assert r.status_code == 201, r.text
        ref = r.json()["id"]
        assert [i["id"] for i in http.get("/api/consult/referrals/inbox", headers=county).json()] == [ref]
        r = http.post(f"/api/consult/referrals/{ref}/decline", headers=county, json={"reason": "no-slot"})
        assert r.json()["status"] == "no-slot"
        out = http.get("/api/consult/referrals/outbox", headers=town).json()
        assert out[0]["id"] == ref and out[0]["status"] == "no-slot"
        r = http.post(f"/api/consult/referrals/{ref}/redirect", headers=town, json={"receiver": "Organization/org-prov"})
        assert r.status_code == 200 and r.json()["redirected_to"]
        tasks = http.get("/fhir/Task", params={"owner": "Organization/org-prov", "code": "referral"}).json()
        assert [e["resource"]["id"] for e in tasks["entry"]] == [r.json()["redirected_to"]]

        village = doctor("prr-village", "org-village")
        r = http.post("/api/consult/telemedicine", headers=village, json={
            "patient": "Patient/pat-1", "target": "Organization/org-county", "kind": "consultation",
            "question": "反复头晕，请会诊", "records": ["Observation/obs-ecg"]})
        assert r.status_code == 201, r.text
        tele = r.json()["id"]
        slots = http.post("/api/consult/slots", headers=county, json={"actor": "PractitionerRole/prr-county",
                                                                       "start": "2026-12-05T09:00", "count": 2})
        slot = f"Slot/{slots.json()['slots'][0]}"
        r = http.post(f"/api/consult/telemedicine/{tele}/schedule", headers=county, json={
            "consultant": "PractitionerRole/prr-county", "slot": slot, "room_link": "https://meet.example/r/1"})
        assert r.status_code == 200, r.text
        ok = http.get(f"/api/consult/items/{tele}/shared/Observation/obs-ecg", headers=county)
        assert ok.status_code == 200 and ok.json()["id"] == "obs-ecg"
        assert http.get(f"/api/consult/items/{tele}/shared/Observation/obs-other", headers=county).status_code == 403
        other = doctor("prr-cardio1")
        assert http.get(f"/api/consult/items/{tele}/shared/Observation/obs-ecg", headers=other).status_code == 403
        r = http.post(f"/api/consult/telemedicine/{tele}/report", headers=county, json={"conclusion": "考虑后循环缺血"})
        assert r.status_code == 200 and r.json()["report"].startswith("Communication/")


def _start_second_worker(settings, port: int) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=os.environ.get("PYTHONPATH", ""), HUTONG_WORKERS="false")
    cmd = [sys.executable, "-c", "from hutong.cli import app; app()", "serve", "--data-dir", str(settings.data_dir),
           "--port", str(port), "--nats", settings.nats_url]
    if settings.database_url:
        cmd += ["--database-url", settings.database_url]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.mark.slow
def test_sender_and_receiver_on_different_workers(store, tmp_path, backend):
    """The doctor writes to one server process, the resident listens on another: the message
    crosses through the event stream — on SQLite without a broker (the database carries the
    events), on PostgreSQL through NATS JetStream (a private broker). One run each: starting a
    second server process is the slow part."""
    from hutong.api.app import create_app
    from tests.conftest import LiveServer, _free_port

    with_nats = backend == "postgres"
    if with_nats:
        from hutong.federation.localnats import NATS_SERVER, PrivateNats

        if NATS_SERVER is None:
            pytest.skip("nats-server is not installed")
        broker = PrivateNats(tmp_path / "nats").start()
        url = broker.url
    else:
        broker, url = None, ""
    settings = dataclasses.replace(store.settings, nats_url=url)
    seed(store)
    port = _free_port()
    other = _start_second_worker(settings, port)
    try:
        with LiveServer(create_app(settings, store=store)) as live, httpx.Client(timeout=30) as http:
            second = f"http://127.0.0.1:{port}"
            deadline = time.time() + 60
            while True:
                try:
                    if http.get(f"{second}/health").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert other.poll() is None, other.stderr.read().decode()[-2000:]
                assert time.time() < deadline, "the second worker did not start"
                time.sleep(0.2)
            item = http.post(f"{live.url}/api/consult/questions", headers=RESIDENT, json={
                "text": "咳嗽一周，有黄痰", "hospital": "Organization/org-prov", "department": "03.01"}).json()["id"]
            accepted = http.post(f"{second}/api/consult/items/{item}/accept", headers=doctor("prr-resp"))
            assert accepted.status_code == 200, accepted.text
            reader = SseReader(f"{live.url}/api/consult/items/{item}/events", RESIDENT)
            try:
                time.sleep(0.3)  # the subscription is live before the doctor writes
                for text in ("您好，发热吗？", "有没有胸痛？"):
                    r = http.post(f"{second}/api/consult/items/{item}/messages", headers=doctor("prr-resp"),
                                  json={"text": text})
                    assert r.status_code == 201
                    got = reader.next_message()
                    assert got["text"] == text
            finally:
                reader.close()
    finally:
        other.terminate()
        other.wait(10)
        if broker is not None:
            broker.stop()
