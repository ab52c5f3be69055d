"""Security: who calls (SMART Backend Services tokens, staff and resident sign-in), what each may do
(the policy table), and the tamper-evident audit trail of every access to a person's data."""
