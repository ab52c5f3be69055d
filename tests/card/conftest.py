"""Small FHIR fixtures for the card tests."""

from __future__ import annotations

import pytest

from hutong.china.ids import make_resident_id

RID_SYSTEM = "urn:oid:2.16.156.10011.1.3"


def rid(n: int, born=(1980, 5, 17), sex="male") -> str:
    from datetime import date

    return make_resident_id("220102", date(*born), n, sex)


def put_org(store, org_id: str, name: str = "长春市第一医院") -> None:
    store.update("Organization", org_id, {"resourceType": "Organization", "id": org_id, "name": name})


def put_patient(store, pid: str, family="张", given="伟", resident_id=None, mrn_org=None, mrn=None,
                phone=None, managing=None, contact_phone=None) -> dict:
    ids = []
    if resident_id:
        ids.append({"system": RID_SYSTEM, "value": resident_id})
    if mrn_org:
        ids.append({"system": f"urn:hutong:mrn:{mrn_org}", "value": mrn})
    p = {"resourceType": "Patient", "id": pid, "name": [{"use": "official", "family": family, "given": [given]}],
         "gender": "male", "birthDate": "1980-05-17"}
    if ids:
        p["identifier"] = ids
    if phone:
        p["telecom"] = [{"system": "phone", "value": phone}]
    if contact_phone:
        p["contact"] = [{"telecom": [{"system": "phone", "value": contact_phone}]}]
    if managing:
        p["managingOrganization"] = {"reference": f"Organization/{managing}"}
    store.update("Patient", pid, p)
    return p


class _Helpers:
    rid = staticmethod(rid)
    put_org = staticmethod(put_org)
    put_patient = staticmethod(put_patient)


@pytest.fixture
def h():
    """Helper functions for card tests (the tests use importlib mode, so no helper module imports)."""
    return _Helpers


@pytest.fixture
def api(server, server_store, h):
    """An httpx client on a live server holding institutions h1 and h2 and patient p1 (MRN MR-0001 at h1)."""
    import httpx

    h.put_org(server_store, "h1")
    h.put_org(server_store, "h2")
    h.put_patient(server_store, "p1", resident_id=h.rid(11), mrn_org="h1", mrn="MR-0001")
    with httpx.Client(base_url=server, timeout=30) as client:
        yield client
