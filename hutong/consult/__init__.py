"""Online consultation, five-level telemedicine and two-way referral (医生在线, 远程医疗, 双向转诊)."""
