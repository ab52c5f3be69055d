"""The facility and practitioner registry (IHE mCSD) and fever-clinic navigation.

Other capabilities ask it "which institution, which department, which doctor" through
``hutong.registry.service`` (plain functions on a store)."""
