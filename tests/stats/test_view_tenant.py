"""A view run sees only the caller's tenant and those below it (a city and its counties), on both
backends; the province's own tenant sees everything."""

from __future__ import annotations

from types import SimpleNamespace

from hutong.stats import operation, run
from hutong.stats.views import View

VIEW = View({"resource": "Patient", "select": [{"column": [{"name": "id", "path": "getResourceKey()", "type": "id"}]}]})


def test_view_rows_follow_the_tenant(store):
    for tenant, pid in (("2201", "a"), ("220102", "b"), ("2202", "c"), ("22", "d"), ("22011", "e")):
        with store.write(tenant) as tx:
            tx.update("Patient", pid, {"resourceType": "Patient", "id": pid})

    def ids(tenant):
        with store.read() as tx:
            return sorted(r["id"] for r in run.view_rows(tx, VIEW, tenant=tenant))

    assert ids(None) == ["a", "b", "c", "d", "e"]
    # 22011 is not a division code but shows prefix matching is on the code's characters
    assert ids("2201") == ["a", "b", "e"]
    assert ids("220102") == ["b"]
    assert ids("2202") == ["c"]
    assert ids("2203") == []
    assert ids("22%") == []   # a LIKE wildcard in a tenant is a character, not a pattern

    def call(tenant):
        return SimpleNamespace(caller=SimpleNamespace(tenant=tenant), store=store)
    assert operation.view_tenant(call(store.settings.default_tenant)) is None
    assert operation.view_tenant(call(None)) is None
    assert operation.view_tenant(call("2201")) == "2201"
