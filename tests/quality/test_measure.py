"""The consumer keeps arrivals, rule counts and issues from the change log; a recomputation agrees
(both backends); a stopped sender is flagged the next day; lab results without units are counted
with examples."""

from __future__ import annotations

from datetime import date, timedelta

from hutong.quality import measure, report
from tests.quality.province import lab, organization, patient, visit, weekdays


def _province(store):
    for oid, name in (("h1", "长春市第一医院"), ("h2", "吉林市中心医院")):
        store.create(organization(oid, name), res_id=oid)


def test_live_figures_equal_a_recomputation_through_updates_and_deletes(assessed):
    store = assessed
    _province(store)
    p1 = store.create(patient("h1", 1)).stored.res_id
    p2 = store.create(patient("h2", 2, valid_id=False)).stored.res_id
    o1 = store.create(lab("h1", p1, unit=False)).stored.res_id
    o2 = store.create(lab("h1", p1)).stored.res_id
    store.create(visit("h2", p2, dx=None))
    store.run_consumers()
    assert measure.stored(store) == measure.recompute(store)
    issues = measure.stored(store)["issues"]
    assert ("lab-unit", "Observation", o1) in issues and ("lab-unit", "Observation", o2) not in issues
    assert ("resident-id-check", "Patient", p2) in issues

    # The sender corrects one result, moves another to h2, deletes a patient.
    fixed = lab("h1", p1)
    store.update("Observation", o1, {**fixed, "id": o1})
    store.update("Observation", o2, {**lab("h2", p1, unit=False), "id": o2})
    store.delete("Observation", o2)
    store.run_consumers()
    live = measure.stored(store)
    assert live == measure.recompute(store)
    assert not any(k[0] == "lab-unit" for k in live["issues"])
    # Arrivals only grow: every create, update and delete arrived.
    totals = {}
    for (org, _day, res_type, _iface), row in live["arrivals"].items():
        totals[(org, res_type)] = totals.get((org, res_type), 0) + row[0] + row[1] + row[2]
    assert totals[("h1", "Observation")] == 3 and totals[("h2", "Observation")] == 2

    measure.rebuild(store)
    assert measure.stored(store) == live


def test_lab_results_without_units_show_in_the_report_with_count_and_examples(assessed, clock):
    store = assessed
    _province(store)
    clock.at("2026-11-02")
    pid = store.create(patient("h1", 3)).stored.res_id
    bad = [store.create(lab("h1", pid, unit=False)).stored.res_id for _ in range(3)]
    for _ in range(5):
        store.create(lab("h1", pid))
    store.run_consumers()
    rep = report.institution_report(store, "h1", day="2026-11-02", days=7)
    assert rep.rules["lab-unit"] == (8, 3)
    assert sorted(e["res_id"] for e in rep.examples["lab-unit"]) == sorted(bad)
    assert rep.indicators["rate:lab-unit"] == 5 / 8
    assert rep.by_type["Observation"] == 8 and rep.by_type["Patient"] == 1
    assert rep.latency["n"] == 8  # each result's issued time against its arrival
    short = {s.requirement.indicator: s.value for s in rep.estimate.missing}
    assert rep.estimate.level.code == "1" and "sends:Encounter" in short


def test_an_institution_that_stops_sending_is_flagged_the_next_day(assessed, clock):
    store = assessed
    _province(store)
    start = date(2026, 10, 5)  # a Monday; five weeks of weekday data from both hospitals
    pids = {}
    for d in weekdays(start, 35):
        clock.at(d)
        for org in ("h1", "h2"):
            pid = pids.get(org) or store.create(patient(org, len(pids) + 1)).stored.res_id
            pids[org] = pid
            store.create(visit(org, pid, when=f"{d.isoformat()}T09:00:00+08:00"))
    stop = start + timedelta(days=35)  # Monday: only h1 sends
    clock.at(stop)
    store.create(visit("h1", pids["h1"], when=f"{stop.isoformat()}T09:00:00+08:00"))
    store.run_consumers()
    sunday = (stop - timedelta(days=1)).isoformat()
    h2 = report.institution_report(store, "h2", day=stop.isoformat(), days=7)
    assert h2.gap_days == [stop.isoformat()]  # the Monday; the weekend before is not a gap
    h1 = report.institution_report(store, "h1", day=stop.isoformat(), days=7)
    assert h1.gap_days == []
    assert sunday not in h2.gap_days
    ranking = report.province_overview(store, day=stop.isoformat(), days=7)
    by_id = {r.institution.org_id: r for r in ranking}
    assert by_id["h2"].gap_days == [stop.isoformat()] and by_id["h1"].gap_days == []
    assert by_id["h1"].scores["connectivity"] > by_id["h2"].scores["connectivity"]
    assert [r.institution.org_id for r in ranking].index("h1") < [r.institution.org_id for r in ranking].index("h2")
