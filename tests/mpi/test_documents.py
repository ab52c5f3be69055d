"""Identity documents beyond the mainland resident ID: recognised, validated, typed, used in matching."""

from __future__ import annotations

import pytest

from hutong.china import ids
from hutong.mpi import documents, service
from hutong.mpi.documents import classify, from_patient, to_identifier
from hutong.mpi.features import normalize_record


def _with_check(first17: str) -> str:
    return first17 + ids.resident_id_check_char(first17)


def _break_check(v: str) -> str:
    good = v[-1]
    return v[:-1] + ("0" if good != "0" else "1")


HK_PERMIT = _with_check("81000019900823002")  # 港澳台居民居住证 (Hong Kong)
TW_PERMIT = _with_check("83000019750101003")
FPR_2023 = _with_check("91184019800101001")  # 9 · 11 (受理地) · 840 (USA) · 1980-01-01 · 001


def test_gb11643_example_is_a_resident_id():
    doc = classify("11010519491231002X")  # the standard's own example
    assert doc.kind == "resident-id" and doc.birth_date.isoformat() == "1949-12-31"
    assert classify("110105194912310021") is None  # wrong check character


@pytest.mark.parametrize(("number", "region"), [(HK_PERMIT, "HK"), (TW_PERMIT, "TW"),
                                                (_with_check("82000020000229001"), "MO")])
def test_residence_permits_are_recognised_not_typos(number, region):
    doc = classify(number)
    assert doc is not None and doc.kind == "hmt-residence-permit" and doc.country == region
    assert doc.id_like
    assert classify(_break_check(number)) is None
    # a division-prefix-style kind check: declared as a resident ID, it is not one
    assert classify(number, kind="resident-id") is None
    ident = to_identifier(doc)
    assert ident["system"].endswith("/hmt-residence-permit") and ident["type"]["coding"][0]["code"] == "NNCHN"


def test_permanent_residence_cards_2023_and_2017():
    doc = classify(FPR_2023)
    assert doc.kind == "foreign-permanent-residence" and doc.birth_date.isoformat() == "1980-01-01"
    assert classify(_break_check(FPR_2023)) is None
    assert classify(_with_check("91184019801301001")) is None  # month 13
    old = classify("USA118001010012")  # 2017: nationality letters + 受理地 + YYMMDD + sequence/check
    assert old.kind == "foreign-permanent-residence" and old.country == "USA"
    assert old.birth_date.isoformat() == "1980-01-01" and not old.id_like
    assert classify("USA119913010012") is None  # no such date
    assert classify("US1180010100123") is None  # two letters
    assert to_identifier(doc)["type"]["coding"][0]["code"] == "PRC"


def test_travel_permits_and_passports_need_their_kind():
    assert classify("H12345678", kind="hk-macau-permit").country == "HK"
    assert classify("m 1234 5678", kind="hk-macau-permit").value == "M12345678"
    assert classify("X12345678", kind="hk-macau-permit") is None
    assert classify("H1234567", kind="hk-macau-permit") is None
    assert classify("12345678", kind="taiwan-permit").kind == "taiwan-permit"
    assert classify("1234567", kind="taiwan-permit") is None
    assert classify("E12345678", kind="passport", country="chn").system == "http://hl7.org/fhir/sid/passport-CHN"
    assert classify("EA1234567", kind="passport", country="CHN") is not None
    assert classify("EI1234567", kind="passport", country="CHN") is None  # I and O are not used
    assert classify("E1234567", kind="passport", country="CHN") is None
    assert classify("C01X00T47", kind="passport", country="DEU") is not None
    assert classify("E12345678", kind="passport", country="XX") is None
    assert classify("H12345678") is None  # without a declared kind a bare number is no document


def _pat(pid, idents, name=("WANG", "Xiaoming"), birth="1980-01-01"):
    return {"resourceType": "Patient", "id": pid, "identifier": idents, "gender": "male", "birthDate": birth,
            "name": [{"family": name[0], "given": [name[1]]}]}


def test_documents_on_a_patient_feed_the_matcher():
    pat = _pat("p1", [{"system": "urn:hutong:mrn:h1", "value": HK_PERMIT},  # platform-local: ignored
                      {"system": "http://hl7.org/fhir/sid/passport-USA", "value": "561234567"},
                      {"system": "https://hutong.example/fhir/sid/hmt-residence-permit", "value": HK_PERMIT}])
    docs = from_patient(pat)
    assert [d.kind for d in docs] == ["passport", "hmt-residence-permit"]
    raw = service.patient_raw(pat)
    assert raw["id_number"] == HK_PERMIT and raw["identifier"] == "passport:USA:561234567"
    f = normalize_record(raw)
    assert f["id_valid"] == "1" and f["birth"] == "19800101"
    # the same number as another kind of document is another identifier
    tw = service.patient_raw(_pat("p2", [{"system": documents.KINDS["taiwan-permit"].system, "value": "56123456"}]))
    pp = service.patient_raw(_pat("p2", [{"system": "http://hl7.org/fhir/sid/passport-USA", "value": "56123456"}]))
    assert tw["identifier"] == "taiwan-permit:56123456" and pp["identifier"] == "passport:USA:56123456"
    # a passport typed by v2-0203 PPN with the issuing country as assigner
    typed = _pat("p3", [{"type": {"coding": [{"code": "PPN"}]}, "assigner": {"identifier": {"value": "usa"}},
                         "value": "561234567"}])
    assert service.patient_raw(typed)["identifier"] == raw["identifier"]
    # an invalid document number is left out, not guessed
    bad = _pat("p4", [{"system": "http://hl7.org/fhir/sid/passport-CHN", "value": "E1234"}])
    assert "identifier" not in service.patient_raw(bad)


def test_same_passport_finds_a_record_whatever_its_name(store):
    """The document number is a blocking key: a record written in characters at one desk (史密斯) and in Latin
    at another, with another birth date, is still compared. (Its weight as evidence comes from a model fitted on
    an index that holds such documents — ``retrain``; the shipped default has no documents to learn from.)"""
    store.register_consumer(service.CONSUMER, service.consume, types={"Patient"})
    pp = [{"system": "http://hl7.org/fhir/sid/passport-USA", "value": "561234567"}]
    store.update("Patient", "f1", _pat("f1", pp, ("史密斯", "约翰"), birth="1980-10-01"))
    store.update("Patient", "f2", _pat("f2", [{"system": "http://hl7.org/fhir/sid/passport-USA",
                                              "value": "561234568"}], ("史密斯", "约翰"), birth="1980-10-01"))
    store.run_consumers()
    with store.read() as tx:
        got = {c["patient_id"] for c in service.score_against_index(
            tx.conn, normalize_record(service.patient_raw(_pat("q", pp, ("SMITH", "John")))))}
    assert "f1" in got and "f2" not in got
