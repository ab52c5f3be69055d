"""Online consultation, telemedicine and two-way referral as a capability of the node."""

from hutong.capability import Capability
from hutong.consult import tables

CAPABILITY = Capability(
    name="consult",
    summary="医生在线、互联网复诊、五级远程医疗、双向转诊 consultations, telemedicine and referrals on FHIR Task",
    tables=tables.TABLES,
)
