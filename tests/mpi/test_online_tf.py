"""Term frequencies over the whole index (``mpi_freq``), online, on both backends."""

from __future__ import annotations

import orjson
from sqlalchemy import select

from hutong.mpi import person_for_patient, service, synth
from hutong.mpi.features import TF_FEATURES, FeatureTable, normalize_record
from hutong.mpi.tables import mpi_record


def _patient(pid: str, r: dict) -> dict:
    p = {"resourceType": "Patient", "id": pid, "name": [{"text": r["name"]}], "gender": r.get("gender") or "unknown",
         "birthDate": r["birth_date"]}
    if r.get("id_number"):
        p["identifier"] = [{"system": service.RESIDENT_ID_SYSTEM, "value": r["id_number"]}]
    if r.get("phone"):
        p["telecom"] = [{"system": "phone", "value": r["phone"]}]
    if r.get("address"):
        p["address"] = [{"text": r["address"]}]
    return p


def _background(store, n_people: int = 40) -> None:
    recs, _ = synth.generate(n_people, dup_rate=0.0, error_rate=0.0, twins=0.0, seed=9)
    for k, r in enumerate(recs):
        r = {**r, "birth_date": r["birth_date"] if len(r["birth_date"]) == 10 else "1970-01-01"}
        store.update("Patient", f"bg{k}", _patient(f"bg{k}", r))
    # a common name: several 王伟, born in other years
    for k in range(8):
        store.update("Patient", f"ww{k}", _patient(f"ww{k}", {"name": "王伟", "gender": "male",
                                                              "birth_date": f"19{60 + k}-0{1 + k % 9}-15"}))


A = {"gender": "male", "birth_date": "1980-01-01", "phone": "13900000001", "address": "长春市南关区人民大街1号"}
B = {"gender": "male", "birth_date": "1980-01-01", "phone": "13700000002", "address": "吉林市船营区解放大路88号"}


def test_common_name_is_not_certain_and_rare_name_scores_higher(store):
    store.register_consumer(service.CONSUMER, service.consume, types={"Patient"})
    _background(store)
    store.update("Patient", "wA", _patient("wA", {**A, "name": "王伟"}))
    store.update("Patient", "rA", _patient("rA", {**A, "name": "诸葛云鹤", "phone": "13900000009"}))
    store.run_consumers()
    store.update("Patient", "wB", _patient("wB", {**B, "name": "王伟"}))
    store.update("Patient", "rB", _patient("rB", {**B, "name": "诸葛云鹤", "phone": "13700000009"}))
    store.run_consumers()
    assert person_for_patient(store, "wB") != person_for_patient(store, "wA")  # not linked automatically
    queued = {(i["patient_id"], i["candidate_id"]): i for i in service.review_list(store)}
    assert ("wB", "wA") in queued and queued[("wB", "wA")]["grade"] in ("probable", "possible")
    common = service.match(store, _patient("q1", {**B, "name": "王伟"}))
    rare = service.match(store, _patient("q2", {**B, "name": "诸葛云鹤"}))
    sc = {c["patient_id"]: c for c in common}
    sr = {c["patient_id"]: c for c in rare}
    assert sc["wA"]["grade"] != "certain"
    assert sr["rA"]["score"] > sc["wA"]["score"]
    name_w = next(e["weight"] for e in sc["wA"]["evidence"] if e["field"] == "name")
    name_r = next(e["weight"] for e in sr["rA"]["evidence"] if e["field"] == "name")
    assert name_r > name_w  # the rare name says more


def test_index_frequencies_equal_batch_frequencies(store):
    store.register_consumer(service.CONSUMER, service.consume, types={"Patient"})
    _background(store, 30)
    store.run_consumers()
    store.update("Patient", "ww0", _patient("ww0", {"name": "王伟", "gender": "male", "birth_date": "1999-09-09",
                                                    "phone": "13911112222"}))  # an update: old values uncounted
    store.delete("Patient", "bg3")
    store.run_consumers()
    with store.read() as tx:
        feats = [orjson.loads(r[0]) for r in tx.conn.execute(select(mpi_record.c.features).order_by(mpi_record.c.patient_id))]
        full = FeatureTable.from_records(feats)
        for k in (0, 5, len(feats) - 1):
            one = FeatureTable.from_records([feats[k]])
            online = service.index_frequencies(tx.conn, one)
            for name in TF_FEATURES:
                assert abs(online[name][0] - full.frequencies(name)[k]) < 1e-12, name
        # a $match query not in the index is counted in, as if it were one more record of the file
        q = normalize_record({"name": "王伟", "birth_date": "1980-01-01"})
        online = service.index_frequencies(tx.conn, FeatureTable.from_records([q]), extra=1)
        batch = FeatureTable.from_records([q] + feats).frequencies("name")[0]
        assert abs(online["name"][0] - batch) < 1e-12
