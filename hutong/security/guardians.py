"""Guardians: a resident reads the records of the dependants they manage.

The card capability stores the relation: a dependant's card (a child's, an elderly parent's) names
the card of the guardian who manages it (``card_card.guardian_card``, set when the guardian applies
for it with their own holder token). A resident's compartment is their own Patient plus the Patients
of every active or frozen (not revoked) card whose guardian card is one of the resident's own
non-revoked cards. Only one level: a dependant's dependants are not the guardian's.
"""

from __future__ import annotations

from sqlalchemy import select


def dependants(store, patient: str, conn=None) -> frozenset[str]:
    """Patient ids of the dependants the resident ``patient`` manages (empty without the card capability)."""
    try:
        from hutong.card.tables import card_card as C
    except ImportError:  # a node without the card capability has no guardian relation
        return frozenset()
    if conn is None:
        with store.read(snapshot=False) as tx:
            return dependants(store, patient, tx.conn)
    own = select(C.c.card_id).where(C.c.patient.in_([patient, f"Patient/{patient}"]), C.c.status != "revoked")
    rows = conn.execute(select(C.c.patient).where(C.c.guardian_card.in_(own), C.c.status != "revoked")).all()
    return frozenset(p.removeprefix("Patient/") for (p,) in rows if p) - {patient}
