from hutong.china import divisions as dv


def test_jilin_hierarchy_counts():
    cities = dv.jilin_cities()
    assert len(cities) == 9
    counties = dv.jilin_counties()
    assert len(counties) == 69
    towns = [t for c in counties for t in dv.children(c)]
    assert len(towns) == 1075
    assert sum(len(dv.children(t)) for t in towns) == 11860


def test_lookups():
    assert dv.division_name("22") == "吉林省"
    assert dv.division_name("2224") == "延边朝鲜族自治州"
    assert dv.parent("220102") == "2201"
    assert dv.parent("220102001") == "220102"
    assert "220102" in dv.children("2201")
    assert dv.is_known_division("220102001001")
    assert not dv.is_known_division("229999")
    assert dv.level("220102001001") == 5
    assert dv.full_name("220102001001").startswith("吉林省长春市南关区")
    assert dv.division_name("110101") == "东城区"  # national county list for birth places
    assert dv.is_statistical_only("220171") and not dv.is_statistical_only("220102")
    assert all(not c.startswith("22") for c in dv.national_counties(exclude_province="22"))


def test_platforms():
    ps = dv.jilin_platforms()
    assert len(ps) == 11
    codes = {p.code for p in ps}
    assert {"2201", "2224", "220581", "2290"} <= codes
    assert dv.platform_of("220581100") == "220581"
    assert dv.platform_of("222426120") == "2290"  # 池北区 belongs to 长白山
    assert dv.platform_of("222426102") == "2224"
    assert dv.platform_of("220102001001") == "2201"
    for c in dv.jilin_counties():
        lat, lon = dv.position(c)
        assert 40.8 < lat < 46.4 and 121.5 < lon < 131.5
