"""A signed-in resident sees their own record only: the portal takes the Patient from the session the
security capability established, never from a request header anyone can send. Both backends, real HTTP."""

from __future__ import annotations

import re

import httpx

from hutong.security.sessions import Sessions
from hutong.share import demo
from tests.conftest import LiveServer


def _login(c: httpx.Client, username: str, password: str) -> None:
    page = c.get("/login")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    r = c.post("/login", data={"username": username, "password": password, "csrf_token": csrf})
    assert r.status_code in (302, 303) and "error" not in r.headers["location"], r.headers.get("location")


def test_portal_shows_the_signed_in_residents_record_whatever_the_headers_say(store):
    from hutong.api.app import create_app

    demo.load_demo(store)
    with store.write() as tx:  # somebody else, at another hospital
        tx.update("Patient", "other-p", {"resourceType": "Patient", "id": "other-p", "name": [{"text": "赵六"}],
                                         "managingOrganization": {"reference": "Organization/demo-h1"}})
        tx.update("Encounter", "other-e", {"resourceType": "Encounter", "id": "other-e", "status": "finished",
                                           "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
                                                     "code": "AMB"},
                                           "subject": {"reference": "Patient/other-p"},
                                           "period": {"start": "2024-10-01T09:00:00+08:00"},
                                           "reasonCode": [{"text": "骨折"}]})
    Sessions(store, store.settings).add_user("res-wang", "a long resident password", "resident", patient="demo-p1")
    with LiveServer(create_app(store=store), credentials=False) as live, \
            httpx.Client(base_url=live.url, headers={"Accept": "text/html"}) as c:
        _login(c, "res-wang", "a long resident password")
        mine = c.get("/portal/record")
        assert mine.status_code == 200 and "长春市第一医院" in mine.text and "骨折" not in mine.text
        spoofed = c.get("/portal/record", headers={"X-Hutong-Patient": "other-p"})
        assert spoofed.status_code == 200 and "骨折" not in spoofed.text and "2型糖尿病" in spoofed.text
        anonymous = httpx.get(live.url + "/portal/record", headers={"X-Hutong-Patient": "other-p",
                                                                     "Accept": "text/html"})
        assert anonymous.status_code == 401 and "骨折" not in anonymous.text
