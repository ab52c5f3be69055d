"""Online consultation, telemedicine and two-way referral as a capability of the node."""

from hutong.capability import Capability, NavEntry
from hutong.consult import cli, pages, retention, routes, service, tables

CAPABILITY = Capability(
    name="consult",
    summary="医生在线、互联网复诊、五级远程医疗、双向转诊 consultations, telemedicine and referrals on FHIR Task",
    routers=[routes.router, pages.router],
    cli=cli.register,
    startup=service.startup,
    shutdown=service.shutdown,
    tables=tables.TABLES,
    delete_guards=retention.DELETE_GUARDS,
    nav=[
        NavEntry("resident", "/portal/consult", "在线咨询", "consult.ask", order=50),
        NavEntry("doctor", "/workstation/consult", "在线咨询", "consult.answer", order=20),
        NavEntry("doctor", "/workstation/referrals", "转诊与远程医疗", "consult.refer", order=30),
        NavEntry("console", "/console/consult", "咨询与转诊监管", "consult.coordinate", order=40),
    ],
    permissions={
        "consult.ask": "ask a doctor online, follow, cancel and rate one's own consultations (resident)",
        "consult.read": "see a consultation, referral or teleconsultation one is a party to, its notices and shared records",
        "consult.message": "write and read messages of a consultation one is a party to (live and polled)",
        "consult.answer": "take consultations from the queue, answer and close them (online doctor)",
        "consult.assign": "assign waiting consultations to doctors on duty (department, coordinator)",
        "consult.prescribe": "issue e-prescriptions in internet follow-up visits (doctor)",
        "consult.prescription.review": "review e-prescriptions before they are valid (pharmacist)",
        "consult.refer": "send, receive and work two-way referrals for one's institution",
        "consult.telemed": "request, schedule and report telemedicine across the five levels",
        "consult.schedule": "publish Schedule/Slot availability for referrals and telemedicine",
        "consult.contract": "sign family-doctor contracts and list a clinic's contracted residents",
        "consult.coordinate": "the province coordinator's view of every open item",
        "consult.stats": "consultation, referral and telemedicine statistics",
        "consult.admin": "run the response-time escalation now",
    },
)
