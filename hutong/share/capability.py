"""The shared record as a capability of the node."""

from hutong.capability import Capability
from hutong.search import linked
from hutong.share.identity import linked_record_ids

# Searches and $everything resolve a patient through the patient index (hutong/search/linked.py).
linked.register_resolver(linked_record_ids)

CAPABILITY = Capability(
    name="share",
    summary="健康档案调阅 shared record: a person's records from every institution; IHE MHD documents",
    permissions={
        "share.record": "read a person's shared record across institutions (pages)",
    },
)
