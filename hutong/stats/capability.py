"""Statistics as a capability of the node."""

from hutong.capability import Capability
from hutong.stats import counters

CAPABILITY = Capability(
    name="stats",
    summary="统计 statistics: live counters kept from the change log",
    tables=counters.TABLES,
)
