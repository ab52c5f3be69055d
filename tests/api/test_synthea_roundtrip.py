"""Real Synthea bundles load through the API and read back equal to what was sent (apart from
``meta``, server-assigned ids and the references rewritten to them)."""

from __future__ import annotations

import copy
import gzip

import orjson
import pytest


def _bundles(shared_data, folder, names):
    base = shared_data / "synthea_fhir_r4" / folder
    files = sorted(base.glob("*.json.gz"))
    chosen = [f for f in files if f.name.startswith(names)] if names else files
    return [orjson.loads(gzip.decompress(f.read_bytes())) for f in chosen]


def _strip(resource: dict) -> dict:
    resource = copy.deepcopy(resource)
    resource.pop("meta", None)
    resource.pop("id", None)
    return resource


def _rewrite(node, id_map):
    if isinstance(node, dict):
        return {k: (id_map.get(v, v) if k == "reference" and isinstance(v, str) else _rewrite(v, id_map))
                for k, v in node.items()}
    if isinstance(node, list):
        return [_rewrite(v, id_map) for v in node]
    return node


def _load_and_compare(fhir, bundle):
    sent = copy.deepcopy(bundle)
    r = fhir.post("", json=bundle)
    assert r.status_code == 200, r.text[:500]
    entries = r.json()["entry"]
    id_map = {}
    for req_entry, resp in zip(sent["entry"], entries, strict=True):
        location = resp["response"]["location"]
        rel = location.split("/fhir/", 1)[1].split("/_history")[0]
        if req_entry.get("fullUrl"):
            id_map[req_entry["fullUrl"]] = rel
    for req_entry, resp in zip(sent["entry"], entries, strict=True):
        rel = resp["response"]["location"].split("/fhir/", 1)[1].split("/_history")[0]
        back = fhir.get("/" + rel).json()
        expected = _rewrite(req_entry["resource"], id_map)
        assert _strip(back) == _strip(expected), rel
    return len(entries)


@pytest.mark.slow
def test_smart_2019_bundles_round_trip(fhir, shared_data):
    bundles = _bundles(shared_data, "smart_2019", ("Abdul_Koepp", "Adalberto", "hospitalInformation"))
    assert len(bundles) == 3
    loaded = sum(_load_and_compare(fhir, b) for b in bundles)
    assert loaded > 300


@pytest.mark.slow
def test_synthea_hiv_batch_and_conditional_references(fhir, shared_data):
    """Directory bundles are batches with ifNoneExist; patient bundles use conditional references."""
    directory = _bundles(shared_data, "synthea_hiv_2021", ("hospitalInformation", "practitionerInformation"))
    for bundle in directory:
        r = fhir.post("", json=bundle)
        assert r.status_code == 200
        statuses = {e["response"]["status"][:3] for e in r.json()["entry"]}
        assert statuses <= {"200", "201"}, statuses
    # Loading the directory again creates nothing new: ifNoneExist finds each one.
    again = fhir.post("", json=directory[0]).json()
    assert {e["response"]["status"][:3] for e in again["entry"]} == {"200"}
    patients = [b for b in _bundles(shared_data, "synthea_hiv_2021", None)
                if b["entry"][0]["resource"]["resourceType"] == "Patient"][:2]
    for bundle in patients:
        assert _load_and_compare_conditional(fhir, bundle)


def _load_and_compare_conditional(fhir, bundle):
    r = fhir.post("", json=bundle)
    assert r.status_code == 200, r.text[:500]
    for entry in r.json()["entry"]:
        rel = entry["response"]["location"].split("/fhir/", 1)[1].split("/_history")[0]
        back = fhir.get("/" + rel).json()
        for ref in _references(back):
            assert "?" not in ref, f"unresolved conditional reference {ref}"
    return True


def _references(node):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "reference" and isinstance(v, str):
                yield v
            else:
                yield from _references(v)
    elif isinstance(node, list):
        for v in node:
            yield from _references(v)
