"""The interoperability and data-quality assessment as a capability of the node."""

from hutong.capability import Capability
from hutong.quality import measure, tables

CAPABILITY = Capability(
    name="quality",
    summary="互联互通测评 interoperability and data-quality assessment, measured from the change log",
    consumers=[measure.CONSUMER],
    tables=tables.TABLES,
)
