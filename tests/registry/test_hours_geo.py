"""Opening hours (incl. across midnight), great-circle distance, GCJ-02/BD-09 conversion, city boundaries."""

import math
import random
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hutong.core.clock import SHANGHAI
from hutong.registry import geo, hours
from hutong.registry.seed import county_of, listed_clinics

NIGHT = [{"daysOfWeek": ["mon"], "availableStartTime": "20:00:00", "availableEndTime": "08:00:00"}]



@pytest.mark.parametrize(("when", "open_"), [
    (datetime(2026, 11, 30, 19, 59, tzinfo=SHANGHAI), False),  # Monday before the start
    (datetime(2026, 11, 30, 20, 0, tzinfo=SHANGHAI), True),
    (datetime(2026, 11, 30, 23, 59, tzinfo=SHANGHAI), True),
    (datetime(2026, 12, 1, 0, 0, tzinfo=SHANGHAI), True),  # Tuesday after midnight: Monday's night
    (datetime(2026, 12, 1, 7, 59, tzinfo=SHANGHAI), True),
    (datetime(2026, 12, 1, 8, 0, tzinfo=SHANGHAI), False),
    (datetime(2026, 12, 1, 20, 30, tzinfo=SHANGHAI), False),  # Tuesday evening is not in the slot
    (datetime(2026, 11, 30, 0, 30, tzinfo=SHANGHAI), False),  # Sunday night is not either
])
def test_hours_across_midnight(when, open_):
    assert hours.open_at(NIGHT, when) is open_


def test_hours_in_utc_are_read_in_shanghai():
    # 12:30 UTC Monday is 20:30 in Shanghai
    assert hours.open_at(NIGHT, datetime(2026, 11, 30, 12, 30, tzinfo=UTC))


def test_all_day_not_available_and_descriptions():
    slots = [{"daysOfWeek": ["mon", "tue", "wed", "thu", "fri"], "availableStartTime": "08:00:00",
              "availableEndTime": "17:00:00"}, {"daysOfWeek": ["sat", "sun"], "allDay": True}]
    sat = datetime(2026, 12, 5, 3, 0, tzinfo=SHANGHAI)
    assert hours.open_at(slots, sat)
    closed = [{"description": "设备检修", "during": {"start": "2026-12-05T00:00:00+08:00", "end": "2026-12-05T12:00:00+08:00"}}]
    assert not hours.open_at(slots, sat, closed)
    assert hours.unavailable_at(closed, sat) == "设备检修"
    assert hours.describe(slots) == "周一至周五 08:00–17:00；周六、周日 全天"
    assert hours.describe(NIGHT) == "周一 20:00–次日08:00"
    assert hours.describe([{"daysOfWeek": hours.DAYS, "allDay": True}]) == "全天24小时"
    assert hours.is_all_hours([{"availableStartTime": "08:00:00", "availableEndTime": "08:00:00"}])


def test_haversine_known_distance():
    # 长春 (43.88, 125.32) to 吉林 (43.84, 126.55): about 98.8 km
    assert geo.haversine_km(43.88, 125.32, 43.84, 126.55) == pytest.approx(98.8, abs=0.5)
    assert geo.haversine_km(0, 0, 0, 180) == pytest.approx(math.pi * geo.EARTH_RADIUS_KM, rel=1e-12)


@given(st.floats(40.8, 46.3), st.floats(121.6, 131.3))
def test_gcj02_round_trip(lat, lon):
    glat, glon = geo.wgs84_to_gcj02(lat, lon)
    assert geo.haversine_km(lat, lon, glat, glon) > 0.05  # the offset is hundreds of metres in Jilin
    wlat, wlon = geo.gcj02_to_wgs84(glat, glon)
    assert geo.haversine_km(lat, lon, wlat, wlon) < 1e-5  # under a centimetre


def test_bd09_and_known_point():
    # 天安门 on 百度 (BD-09) is about (39.915, 116.404); on WGS-84 about (39.9075, 116.3913)
    lat, lon = geo.bd09_to_wgs84(39.915, 116.404)
    assert geo.haversine_km(lat, lon, 39.9075, 116.3913) < 0.1
    with pytest.raises(ValueError):
        geo.to_wgs84(1, 2, "nad27")


def test_cities_and_placement():
    assert geo.city_at(43.88, 125.32) == "2201" and geo.city_at(42.89, 129.51) == "2224"
    assert geo.city_at(39.9, 116.4) is None
    rng = random.Random(1)
    for code in geo.CITY_CODES.values():
        lat, lon = geo.point_in_city(code, rng)
        assert geo.city_at(lat, lon) == code


def test_listed_clinics_and_counties():
    clinics = listed_clinics()
    assert len(clinics) == 112 and sum(c.designated for c in clinics) == 56
    assert sum(c.city == "2201" for c in clinics) == 21
    assert county_of("农安县人民医院", "2201") == "220122"
    assert county_of("二道区人民医院", "2201") == "220105"
    assert county_of("吉林大学第一医院", "2201") == "2201"
