"""A care relationship comes from what a doctor does for a patient — a card scan, a signed launch from
the hospital system, an order — not from opening the record page, which would otherwise grant itself
the access the rule withholds (both backends)."""

from __future__ import annotations

from hutong.share import launch


def test_opening_the_page_is_recorded_but_is_not_a_care_relationship(store):
    launch.record_care(store, "dr-sun", "h1", "p-care-1", "search")
    assert not launch.has_care_relationship(store, "dr-sun", "p-care-1")
    launch.record_care(store, "dr-sun", "h1", "p-care-1", "card-scan")
    assert launch.has_care_relationship(store, "dr-sun", "p-care-1")
    assert not launch.has_care_relationship(store, "dr-qian", "p-care-1")  # another doctor: none
