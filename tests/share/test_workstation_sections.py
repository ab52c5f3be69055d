"""The workstation's patient page is a summary (the latest rows of every section) with each section one
link away as a paged list; its stages are reported in Server-Timing; every view is audited. Over real HTTP
on SQLite and PostgreSQL."""

from __future__ import annotations

import time

import httpx
import lxml.html
import pytest

from hutong.security import audit
from hutong.share import demo, views

DOCTOR = {"X-Hutong-Role": "clinician", "X-Hutong-Institution": "demo-h2", "X-Hutong-Client": "dr-zhao",
          "Accept": "text/html"}
EXTRA = 330  # 297 lab results and 33 visits beyond the demo's own


@pytest.fixture
def padded(store, server):
    demo.load_demo(store, extra=EXTRA)
    return server


def _get(server: str, path: str, **params) -> httpx.Response:
    return httpx.get(server + path, params=params, headers=DOCTOR, timeout=120)


def _rows(html: str, table: str) -> list[list[str]]:
    doc = lxml.html.fromstring(html)
    return [[c.text_content().strip() for c in tr.xpath("./th|./td")]
            for tr in doc.xpath(f"//*[@id='{table}']//tbody/tr[not(td[@class='empty'])]")]


def _expected_labs() -> int:
    labs = sum(1 for r in demo.demo_resources() + demo.extra_resources(EXTRA)
               if r["resourceType"] == "Observation")
    return labs - 1  # one result was sent by two institutions: shown once


def test_summary_shows_the_latest_rows_and_links_every_section(padded):
    r = _get(padded, "/workstation/patient/demo-p1")
    assert r.status_code == 200, r.text
    labs = _rows(r.text, "lab-table")
    assert len(labs) == views.SUMMARY_ROWS["lab"]
    assert [row[0] for row in labs] == sorted((row[0] for row in labs), reverse=True)  # newest first
    doc = lxml.html.fromstring(r.text)
    assert doc.xpath("//a[@href='/workstation/patient/demo-p1/lab']")[0].text_content().strip() == \
        f"全部 {_expected_labs()} 项检验结果"
    visits = doc.xpath("//*[@id='timeline']//ol/li")
    assert len(visits) == views.SUMMARY_ROWS["encounter"]
    # Trend charts on the summary carry at most SUMMARY_CHART_POINTS points each, labelled so.
    captions = [c.text_content() for c in doc.xpath("//figure[@class='chart']/figcaption")]
    assert captions and all(f"最近 {views.SUMMARY_CHART_POINTS} 次" in c for c in captions)
    stages = dict(part.strip().split(";dur=") for part in r.headers["server-timing"].split(","))
    assert set(stages) == {"load", "care", "view", "render"} and all(float(v) >= 0 for v in stages.values())


def test_a_section_pages_through_every_row_once(padded):
    seen: list[list[str]] = []
    page, pages = 1, None
    while True:
        r = _get(padded, "/workstation/patient/demo-p1/lab", page=page)
        assert r.status_code == 200, r.text
        seen += _rows(r.text, "lab-table")
        doc = lxml.html.fromstring(r.text)
        nxt = doc.xpath("//nav[@class='pager']/a[@rel='next']/@href")
        if not nxt:
            break
        assert nxt[0].endswith(f"page={page + 1}")
        page += 1
        assert page < 50
    pages = page
    assert pages == -(-_expected_labs() // views.SECTION_PAGE)
    assert len(seen) == _expected_labs()
    assert len({tuple(row) for row in seen}) == len(seen)
    assert [row[0] for row in seen] == sorted((row[0] for row in seen), reverse=True)
    # Past the last page: the last page; the section's pager keeps the filters.
    last = _get(padded, "/workstation/patient/demo-p1/lab", page=999)
    assert _rows(last.text, "lab-table") == _rows(_get(padded, "/workstation/patient/demo-p1/lab", page=pages).text,
                                                  "lab-table")
    only_h3 = _get(padded, "/workstation/patient/demo-p1/lab", inst="demo-h3")
    rows = _rows(only_h3.text, "lab-table")
    assert rows and all("四平市人民医院" in row[-1] for row in rows)
    nxt = lxml.html.fromstring(only_h3.text).xpath("//nav[@class='pager']/a[@rel='next']/@href")
    assert nxt and "inst=demo-h3" in nxt[0]


def test_sections_refuse_bad_input_with_a_clear_answer(padded):
    assert _get(padded, "/workstation/patient/demo-p1/nonsense").status_code == 404
    assert _get(padded, "/workstation/patient/demo-p1/lab", page="0").status_code == 400
    assert _get(padded, "/workstation/patient/demo-p1/lab", page="x").status_code == 400
    assert _get(padded, "/workstation/patient/demo-p1/lab", **{"from": "2024-13"}).status_code == 400
    assert _get(padded, "/workstation/patient/no-such-patient/lab").status_code == 404
    api = httpx.get(padded + "/workstation/patient/demo-p1/lab", params={"from": "x"},
                    headers={**DOCTOR, "Accept": "application/fhir+json"}, timeout=60)
    assert api.status_code == 400


def test_every_view_of_the_record_is_audited_for_each_linked_record(store, padded):
    r = _get(padded, "/workstation/patient/demo-p2/condition")
    assert r.status_code == 200
    deadline = time.monotonic() + 20
    found: dict[str, list] = {}
    while time.monotonic() < deadline:  # the trail writes read events from a queue
        found = {p: [e for e in audit.search(store, patient=p, agent="dr-zhao")
                     if e.get("outcomeDesc") == "workstation"] for p in ("demo-p1", "demo-p2", "demo-p3")}
        if all(found.values()):
            break
        time.sleep(0.2)
    assert all(found.values()), found
    event = found["demo-p2"][0]
    assert event["action"] == "R" and event["purposeOfEvent"][0]["coding"][0]["code"] == "TREAT"
    requestor = next(a for a in event["agent"] if a["requestor"])
    assert requestor["who"]["identifier"]["value"] == "dr-zhao"
