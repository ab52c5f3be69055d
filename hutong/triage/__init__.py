"""Smart triage (智能导诊): a resident's own words -> ranked departments of the national list,
red flags with the 120 advice, and the kind of question asked."""
