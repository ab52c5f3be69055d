"""FHIR documents (a document Bundle with a Composition) published by ITI-65 and opened in the workstation
like CDA documents: sections and narrative rendered safely, entries shown when a section has no narrative."""

from __future__ import annotations

import json

import httpx

from hutong.share import demo
from hutong.share.composition import narrative_html, parse_fhir_document

DOCTOR = {"X-Hutong-Role": "clinician", "X-Hutong-Institution": "demo-h2", "X-Hutong-Client": "dr-li",
          "Accept": "text/html"}
XHTML = 'xmlns="http://www.w3.org/1999/xhtml"'


def discharge_summary() -> dict:
    return {
        "resourceType": "Bundle", "type": "document", "identifier": {"system": "urn:ietf:rfc:3986",
                                                                     "value": "urn:uuid:0c3e6a58-7d1c-4f8e-9d51-1f2a3b4c5d6e"},
        "timestamp": "2024-06-24T16:00:00+08:00",
        "entry": [
            {"fullUrl": "urn:uuid:c0000000-0000-4000-8000-000000000001", "resource": {
                "resourceType": "Composition", "status": "final", "title": "出院小结",
                "type": {"coding": [{"system": "http://loinc.org", "code": "18842-5"}], "text": "出院小结"},
                "subject": {"reference": "Patient/demo-p2"}, "date": "2024-06-24T08:00:00Z",
                "author": [{"reference": "urn:uuid:c0000000-0000-4000-8000-000000000002"}],
                "section": [
                    {"title": "出院诊断", "text": {"status": "generated", "div":
                        f'<div {XHTML}><p onclick="alert(1)">2型糖尿病，血糖控制欠佳</p>'
                        '<script>alert(2)</script><img src="http://evil.example/x.png"/>'
                        '<table><tr><td style="color:red">HbA1c</td><td>7.8 %</td></tr></table></div>'}},
                    {"title": "出院时检验", "entry": [{"reference": "urn:uuid:c0000000-0000-4000-8000-000000000003"}]},
                ]}},
            {"fullUrl": "urn:uuid:c0000000-0000-4000-8000-000000000002", "resource": {
                "resourceType": "Practitioner", "name": [{"text": "李明"}]}},
            {"fullUrl": "urn:uuid:c0000000-0000-4000-8000-000000000003", "resource": {
                "resourceType": "Observation", "status": "final", "code": {"text": "空腹血糖"},
                "valueQuantity": {"value": 6.4, "unit": "mmol/L"}}},
        ]}


def test_narrative_keeps_text_and_structure_and_drops_everything_active():
    html = narrative_html(discharge_summary()["entry"][0]["resource"]["section"][0]["text"]["div"])
    assert "<p>2型糖尿病，血糖控制欠佳</p>" in html
    assert "<script" not in html and "alert(2)" not in html and "onclick" not in html
    assert "<img" not in html and "evil.example" not in html and "style=" not in html
    assert "<td>HbA1c</td>" in html
    assert narrative_html("<div>a < b</div>") == "<p>&lt;div&gt;a &lt; b&lt;/div&gt;</p>"  # not XML: escaped text


def test_parse_fhir_document_reads_the_composition_and_resolves_entries():
    doc = parse_fhir_document(discharge_summary())
    assert doc.title == "出院小结" and doc.authors == ["李明"] and doc.subject == "demo-p2" and doc.problems == []
    assert "空腹血糖" in doc.body and "6.4" in doc.body
    assert parse_fhir_document({"resourceType": "Bundle", "type": "collection", "entry": []}) is None
    bare = parse_fhir_document({"resourceType": "Composition", "section": []})
    assert bare is not None and any("Composition.title" in p for p in bare.problems)


def test_a_fhir_document_published_by_one_hospital_opens_at_another(store, server, fhir):
    demo.load_demo(store)
    body = json.dumps(discharge_summary(), ensure_ascii=False).encode()
    bundle = demo.mhd_bundle(body, patient="demo-p2", org="demo-h2", content_type="application/fhir+json",
                             format_code="urn:ihe:iti:xds:2017:mimeTypeSufficient")
    r = fhir.post("", json=bundle)
    assert r.status_code == 200, r.text
    store.run_consumers()
    doc_id = next(e["response"]["location"] for e in r.json()["entry"]
                  if "DocumentReference" in e["response"]["location"]).split("/_history")[0].split("/")[-1]
    # Found from the record at 长春 (demo-p1), opened by a doctor.
    found = fhir.get("/DocumentReference", params={"patient": "demo-p1", "status": "current"}).json()
    assert doc_id in {e["resource"]["id"] for e in found["entry"]}
    page = httpx.get(f"{server}/workstation/document/{doc_id}", headers=DOCTOR, timeout=60)
    assert page.status_code == 200
    assert "<h1>出院小结</h1>" in page.text and "2型糖尿病，血糖控制欠佳" in page.text and "李明" in page.text
    assert "alert(" not in page.text and "evil.example" not in page.text
    assert "2024-06-24 16:00" in page.text  # the Composition's date in Asia/Shanghai (08:00Z)
