"""The registry's Python API: which institution, which department, which doctor."""

from hutong.registry import service
from tests.registry.helpers import load, organization, small_registry, uscc


def test_find_institution_by_id_uscc_and_name(store):
    load(store, small_registry())
    inst = service.find_institution(store, id="h-prov")
    assert inst.name == "吉林省测试医院" and inst.level_text == "三级甲等" and inst.tier == "tertiary"
    assert inst.division == "220102" and inst.platform == "2201"
    assert inst.position == (43.8868, 125.3245) and inst.location_id == "l-prov"
    assert service.find_institution(store, uscc=inst.uscc).id == "h-prov"
    assert service.find_institution(store, name="农安县测试医院").id == "h-county"
    assert service.find_institution(store, name="不存在的医院") is None


def test_departments_practitioners_and_hierarchy(store):
    load(store, small_registry())
    depts = service.departments_of(store, "h-prov")
    assert [(d.code, d.name) for d in depts] == [("03.01", "呼吸内科"), ("07", "儿科")]
    assert depts[0].hours == "周一至周五 08:00–17:00"
    docs = service.practitioners_of(store, "h-prov")
    assert sorted(d.name for d in docs) == ["李医生", "王医生"]
    assert [d.name for d in service.practitioners_of(store, "h-prov", department="07")] == ["王医生"]
    assert [d.name for d in service.practitioners_of(store, "h-prov", online=True)] == ["李医生"]
    role = service.role_of(store, "r3")
    assert role.institution_id == "h-town" and role.department == "02" and role.title == "主治医师"
    assert [p.id for p in service.parents_of(store, "h-town")] == ["h-county"]
    assert [m.id for m in service.consortium_members(store, "h-county")] == ["h-town"]


def test_institutions_filtered_by_division_level_and_tier(store):
    load(store, small_registry())
    assert {i.id for i in service.institutions(store, division="220122")} == {"h-county", "h-town"}
    assert [i.id for i in service.institutions(store, level="3A")] == ["h-prov"]
    assert [i.id for i in service.institutions(store, tier="primary")] == ["h-town"]
    assert {i.id for i in service.institutions(store, platform="2201")} == {"h-prov", "h-county", "h-town"}


def test_check_organization_catches_bad_codes():
    good = organization("x", "某医院", "220102", "3A", code=uscc("220102"))
    assert service.check_organization(good) == []
    bad = organization("x", "", "229999", "3A", code=uscc("220102")[:-1] + "0")
    bad["type"][-1]["coding"][0]["code"] = "4A"
    problems = service.check_organization(bad)
    assert len(problems) == 4
    assert any("统一社会信用代码" in p for p in problems) and any("229999" in p for p in problems)
