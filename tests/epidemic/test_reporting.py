"""Direct reporting: validation (nothing stored on error), duplicates, deadlines, review, live counts."""

import csv
import io
import time
from datetime import date, datetime, timedelta

import httpx
import pytest
from sqlalchemy import func, select

from hutong.china.ids import make_resident_id
from hutong.core.clock import SHANGHAI
from hutong.core.errors import FhirError
from hutong.epidemic import cards, counts
from hutong.epidemic.tables import epidemic_card
from hutong.registry.capability import CAPABILITY as REGISTRY
from hutong.store import schema
from tests.registry.helpers import fever_clinic, load, location, organization

RID = make_resident_id("220102", date(1980, 5, 6), 12, "male")


def _card(**over) -> dict:
    now = datetime.now(SHANGHAI)
    base = {
        "disease": "covid19", "classification": "confirmed", "patient_name": "张三", "sex": "male",
        "birth_date": "1980-05-06", "resident_id": RID, "phone": "13900000000",
        "onset_date": (now - timedelta(days=2)).date().isoformat(),
        # an hour ago, but never yesterday: "new today" is counted by the Asia/Shanghai day, and from
        # 16:00 to 17:00 UTC an hour ago was yesterday in Shanghai
        "diagnosis_time": max(now - timedelta(hours=1), now.replace(hour=0, minute=0, second=0, microsecond=0))
                          .strftime("%Y-%m-%dT%H:%M"),
        "address_division": "220102", "address_text": "南关区某街道", "institution": "h1", "doctor": "李医生",
    }
    base.update(over)
    return base


def _setup(store):
    load(store, [organization("h1", "长春市测试医院", "220102", "3A"), location("l1", "h1", 43.88, 125.32),
                 fever_clinic("fc1", "h1", "l1")])
    from hutong.epidemic.capability import CAPABILITY

    for c in list(CAPABILITY.consumers) + list(REGISTRY.consumers):
        store.register_consumer(c.name, c.handler, c.types)


def _stored(store) -> tuple[int, int]:
    with store.read() as tx:
        n_cond = tx.conn.execute(select(func.count()).select_from(schema.resource).where(
            schema.resource.c.res_type == "Condition")).scalar_one()
        n_rows = tx.conn.execute(select(func.count()).select_from(epidemic_card)).scalar_one()
    return n_cond, n_rows


def test_invalid_card_gets_every_error_and_stores_nothing(store):
    _setup(store)
    bad = _card(disease="hepatitis", classification="carrier", onset_date="2030-01-01", resident_id="220102198005061234",
                address_division="999999", institution="nope", birth_date="1980-13-01")
    with pytest.raises(FhirError) as exc:
        cards.submit(store, cards.CardInput(**bad))
    assert exc.value.status == 422
    fields = {i.expression[0] for i in exc.value.issues}
    assert {"onset_date", "resident_id", "address_division", "institution", "birth_date",
            "extra.hepatitis_type"} <= fields
    assert _stored(store) == (0, 0)
    # diagnosis before onset; cholera has no clinical-only restriction but plague has no carriers
    with pytest.raises(FhirError) as exc:
        now = datetime.now(SHANGHAI)
        cards.submit(store, cards.CardInput(**_card(disease="plague", classification="carrier",
                                                    onset_date=now.date().isoformat(),
                                                    diagnosis_time=(now - timedelta(days=3)).strftime("%Y-%m-%dT%H:%M"))))
    assert {i.expression[0] for i in exc.value.issues} == {"classification", "diagnosis_time"}
    assert _stored(store) == (0, 0)


def test_duplicates_deadlines_and_review_move_the_counts(store):
    _setup(store)
    first = cards.submit(store, cards.CardInput(**_card()))
    assert first["status"] == "pending" and first["late"] is False and first["duplicate_of"] is None
    again = cards.submit(store, cards.CardInput(**_card(phone="13900000001")))  # same person, same episode
    assert again["status"] == "duplicate" and again["duplicate_of"] == first["id"]
    other = cards.submit(store, cards.CardInput(**_card(resident_id="", patient_name="李四", birth_date="1990-01-02")))
    assert other["status"] == "pending"
    now = datetime.now(SHANGHAI)
    late = cards.submit(store, cards.CardInput(**_card(
        disease="cholera", resident_id="", patient_name="王五", address_division="220122",
        diagnosis_time=(now - timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M"))))
    assert late["late"] is True  # class A: 2 hours
    store.run_consumers()
    with store.read() as tx:
        d = counts.dashboard(tx.conn)
        assert cards.late_reports(tx.conn) == 1
    assert d["total"]["reported"] == 3 and d["total"]["confirmed"] == 0  # the duplicate is not counted
    cards.review(store, first["id"], "approve")
    cards.review(store, other["id"], "correct", classification="suspected")
    cards.review(store, late["id"], "reject", reason="误报")
    store.run_consumers()
    with store.read() as tx:
        d = counts.dashboard(tx.conn)
    assert d["total"]["confirmed"] == 1 and d["total"]["new"] == 1 and d["total"]["reported"] == 2
    assert d["cities"]["2201"]["confirmed"] == 1 and d["counties"]["220102"]["reported"] == 2
    assert counts.recompute_matches(store)
    with pytest.raises(FhirError) as exc:
        cards.review(store, late["id"], "approve")
    assert exc.value.status == 409
    with store.read() as tx:
        hist = tx.history("Condition", other["id"], count=10)
    assert len(hist) == 2  # the correction is a new version


def test_fever_clinic_visits_are_counted_from_encounters(store):
    _setup(store)
    today = datetime.now(SHANGHAI).strftime("%Y-%m-%dT%H:%M:%S+08:00")
    enc = {"resourceType": "Encounter", "id": "e1", "status": "finished",
           "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
           "location": [{"location": {"reference": "Location/l1"}}], "period": {"start": today}}
    other = {k: v for k, v in enc.items() if k != "location"}
    load(store, [enc, dict(enc, id="e2"), dict(other, id="e3")])
    with store.read() as tx:
        assert counts.dashboard(tx.conn)["counties"]["220102"]["visits_today"] == 2
    with store.write() as tx:
        tx.delete("Encounter", "e2")
    store.run_consumers()
    with store.read() as tx:
        assert counts.dashboard(tx.conn)["total"]["visits_today"] == 1


def test_suppression_is_complementary():
    assert counts.suppress({"a": 12, "b": 3, "c": 7, "d": 0}, 5) == {"a": 12, "b": None, "c": None, "d": 0}
    assert counts.suppress({"a": 12, "b": 3, "c": 2}, 5) == {"a": 12, "b": None, "c": None}
    assert counts.suppress({"a": 12, "b": 30}, 5) == {"a": 12, "b": 30}
    view = counts.public_view({"today": "2026-12-02", "total": {"new": 4, "confirmed": 22, "visits_today": 0},
                               "cities": {"2201": {"new": 4, "confirmed": 20, "visits_today": 0},
                                          "2202": {"new": 0, "confirmed": 2, "visits_today": 0}},
                               "trend": {"2026-12-02": 4}}, 5)
    assert view["cities"]["2201"]["new"] is None and view["total"]["new"] is None
    assert view["cities"]["2202"]["confirmed"] is None and view["cities"]["2201"]["confirmed"] is None
    assert view["total"]["confirmed"] == 22 and view["trend"]["2026-12-02"] is None


def test_a_report_shows_on_the_dashboard_within_seconds(server, server_store, tmp_path):
    from hutong.api.consumers import ConsumerWorker

    _setup(server_store)
    worker = ConsumerWorker(server_store, tmp_path / "consumers.lock")  # what a node runs (tests turn it off)
    worker.start()
    try:
        _report_and_watch(server)
    finally:
        worker.stop()


def _report_and_watch(server):
    before = httpx.get(f"{server}/api/epidemic/dashboard").json()["total"]
    r = httpx.post(f"{server}/api/epidemic/reports", json=_card())
    assert r.status_code == 201, r.text
    cid = r.json()["id"]
    assert httpx.post(f"{server}/api/epidemic/reports/{cid}/review", json={"action": "approve"}).status_code == 200
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the server's consumer worker, not the test, updates the counts
        now = httpx.get(f"{server}/api/epidemic/dashboard").json()["total"]
        if now["confirmed"] == before["confirmed"] + 1:
            break
        time.sleep(0.2)
    assert now["confirmed"] == before["confirmed"] + 1 and now["new"] == before["new"] + 1
    public = httpx.get(f"{server}/api/epidemic/public").json()
    assert public["total"]["confirmed"] is None  # 1 < 5: suppressed in the open view
    bad = httpx.post(f"{server}/api/epidemic/reports", json=_card(onset_date="2999-01-01", address_division="22"))
    assert bad.status_code == 422 and bad.json()["resourceType"] == "OperationOutcome"
    assert {tuple(i["expression"]) for i in bad.json()["issue"]} >= {("onset_date",), ("address_division",)}
    extra = httpx.post(f"{server}/api/epidemic/reports", json=dict(_card(), unknown=1))
    assert extra.status_code in (400, 422)
    lines = httpx.get(f"{server}/api/epidemic/linelist", params={"format": "csv"})
    assert lines.status_code == 200
    table = list(csv.reader(io.StringIO(lines.content.decode("utf-8-sig"))))
    assert table[0][:5] == ["卡片编号", "卡片状态", "患者姓名", "有效证件号", "性别"]
    assert table[1][0] == cid and table[1][2] == "张三" and table[1][14] == "新型冠状病毒感染"
    xlsx = httpx.get(f"{server}/api/epidemic/aggregates", params={"format": "xlsx"})
    assert xlsx.status_code == 200 and xlsx.content[:2] == b"PK"
