"""IHE MHD: ITI-65 publish (with replacement), ITI-67 find across linked identities, ITI-68 retrieve,
large documents streamed as raw bytes; the CDA header indexed and checked, parsed safely."""

from __future__ import annotations

import base64
import hashlib
import threading
import time

import httpx
import pytest

from hutong.share import cda, demo


@pytest.fixture
def published(store, fhir):
    demo.load_demo(store)
    r = fhir.post("", json=demo.mhd_bundle(demo.demo_cda()), headers={"Content-Type": "application/fhir+json"})
    assert r.status_code == 200, r.text
    store.run_consumers()
    doc_loc = next(e["response"]["location"] for e in r.json()["entry"] if "DocumentReference" in e["response"]["location"])
    return doc_loc.split("/_history")[0].split("/")[-1]


def test_iti65_publish_and_iti67_find_from_another_institutions_record(published, fhir):
    # Published by 长春市第一医院 on record demo-p1; a doctor at 吉林市中心医院 knows the patient as demo-p2.
    found = fhir.get("/DocumentReference", params={"patient": "Patient/demo-p2", "status": "current"}).json()
    assert [e["resource"]["id"] for e in found["entry"]] == [published]
    by_id = fhir.get("/DocumentReference", params={"patient.identifier": "urn:hutong:mrn:demo-h2|MR002002222",
                                                   "status": "current"}).json()
    assert [e["resource"]["id"] for e in by_id.get("entry", [])] == [published]
    single = fhir.get("/DocumentReference", params={"patient": "demo-p2", "status": "current", "linked": "false"}).json()
    assert single.get("entry", []) == []
    assert fhir.get("/DocumentReference", params={"patient": "demo-p2", "creation": "2024-03-05"}).json()["total"] == 1
    assert fhir.get("/DocumentReference", params={"patient": "demo-p2", "creation": "ge2024-04-01"}).json()["total"] == 0
    assert fhir.get("/DocumentReference", params={"patient": "demo-p2", "type": "urn:oid:2.16.156.10011.2.4|C0032",
                                                  "status": "current"}).json()["total"] == 1
    assert fhir.get("/DocumentReference", params={"creation": "yesterday"}).status_code == 400


def test_iti68_retrieve_returns_the_document_itself(published, fhir):
    doc = fhir.get(f"/DocumentReference/{published}").json()
    url = doc["content"][0]["attachment"]["url"]
    assert url.startswith("Binary/")
    raw = fhir.get("/" + url, headers={"Accept": "application/hl7-v3+xml"})
    assert raw.status_code == 200 and raw.headers["content-type"].startswith("application/hl7-v3+xml")
    assert raw.content == demo.demo_cda()
    as_fhir = fhir.get("/" + url, headers={"Accept": "application/fhir+json"}).json()
    assert as_fhir["resourceType"] == "Binary" and base64.b64decode(as_fhir["data"]) == demo.demo_cda()


def test_relates_to_replaces_supersedes_the_old_document(published, store, fhir):
    new = demo.mhd_bundle(demo.demo_cda(), doc_uuid="urn:uuid:7f3c1a2e-0000-4000-8000-000000000011",
                          replaces=f"DocumentReference/{published}")
    assert fhir.post("", json=new).status_code == 200
    store.run_consumers()
    assert fhir.get(f"/DocumentReference/{published}").json()["status"] == "superseded"
    current = fhir.get("/DocumentReference", params={"patient": "demo-p3", "status": "current"}).json()
    assert len(current["entry"]) == 1 and current["entry"][0]["resource"]["id"] != published


def test_a_bad_bundle_loses_nothing(store, fhir):
    demo.load_demo(store)
    bundle = demo.mhd_bundle(demo.demo_cda())
    bundle["entry"][1]["resource"]["status"] = "bogus"  # not in the required value set
    r = fhir.post("", json=bundle)
    assert r.status_code == 400 and r.json()["resourceType"] == "OperationOutcome"
    assert fhir.get("/List", params={"code": "submissionset"}).json().get("total", 0) == 0


def test_cda_header_is_indexed_and_checked():
    h = cda.parse_cda(demo.demo_cda())
    assert (h.type_code, h.type_system) == ("C0032", cda.DOC_TYPE_SYSTEM)
    assert h.resident_id == demo.RESIDENT_ID and h.author_org_name == "长春市第一医院"
    assert h.effective.isoformat() == "2024-03-05T10:15:00+08:00"
    assert h.problems == []
    assert "<h2>主诉</h2>" in h.body and "<li>原发性高血压（I10）</li>" in h.body
    assert "<script>" not in h.body and "&lt;script&gt;" in h.body  # text escaped, never markup
    broken = demo.demo_cda(resident_id="220102196804120000").replace(b'codeSystem="2.16.156.10011.2.4"', b'codeSystem="1.2.3"')
    problems = cda.parse_cda(broken).problems
    assert any("身份证" in p for p in problems) and any("2.16.156.10011.2.4" in p for p in problems)


@pytest.mark.parametrize("payload", [
    b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><ClinicalDocument xmlns="urn:hl7-org:v3">&e;</ClinicalDocument>',
    b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;&a;">]><ClinicalDocument xmlns="urn:hl7-org:v3">&b;</ClinicalDocument>',
    b"<ClinicalDocument xmlns='urn:hl7-org:v3'><unclosed></ClinicalDocument>",
    b"<html/>",
])
def test_unsafe_or_broken_xml_is_refused(payload):
    from hutong.core.errors import FhirError

    with pytest.raises(FhirError) as exc:
        cda.parse_cda(payload)
    assert exc.value.status == 422


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_large_pdf_streams_in_and_out_without_blocking_others(server, store):
    size = 50 * 1024 * 1024
    chunk = hashlib.sha256(b"pdf").digest() * 2048  # 64 KiB
    health_times: list[float] = []
    digest = hashlib.sha256()

    def body():
        sent = 0
        yield b"%PDF-1.7\n"
        digest.update(b"%PDF-1.7\n")
        while sent < size:
            yield chunk
            digest.update(chunk)
            sent += len(chunk)
            if sent == 8 * len(chunk):
                time.sleep(0.3)  # a slow client: others must still be answered meanwhile

    def probe():
        time.sleep(0.1)
        t0 = time.perf_counter()
        httpx.get(server + "/health", timeout=30).raise_for_status()
        health_times.append(time.perf_counter() - t0)

    t = threading.Thread(target=probe)
    t.start()
    r = httpx.post(server + "/fhir/Binary", content=body(), headers={"Content-Type": "application/pdf"}, timeout=120)
    t.join()
    assert r.status_code == 201, r.text
    assert r.headers["x-content-sha256"] == digest.hexdigest()
    assert health_times, "the health check did not finish"
    loc = r.headers["location"].split("/fhir/")[1].split("/_history")[0]
    got = hashlib.sha256()
    n = 0
    with httpx.stream("GET", f"{server}/fhir/{loc}", headers={"Accept": "application/pdf"}, timeout=120) as resp:
        assert resp.status_code == 200 and resp.headers["content-type"] == "application/pdf"
        for part in resp.iter_bytes():
            got.update(part)
            n += len(part)
    assert got.hexdigest() == digest.hexdigest() and n == size + 9
    meta = httpx.get(f"{server}/fhir/{loc}", headers={"Accept": "application/fhir+json"}).json()
    assert meta == {**meta, "resourceType": "Binary", "contentType": "application/pdf"} and "data" not in meta
    assert httpx.post(server + "/fhir/Binary", content=b"", headers={"Content-Type": "application/pdf"}).status_code == 400
