"""One person's Patient records at every institution, from the patient index (``hutong/mpi``).

``linked_record_ids(conn, patient_id)`` answers inside the caller's own transaction (the search index
and ``$everything`` call it with their snapshot's connection), from the index's ``mpi_record`` rows —
the same rows ``hutong.mpi.service.person_for_patient`` and ``linked_patients`` read. A patient the
index has not (yet) linked is a person of one record.
"""

from __future__ import annotations

from sqlalchemy import select

from hutong.mpi.tables import mpi_record


def person_of(conn, patient_id: str) -> str | None:
    """The Person id the patient index links ``patient_id`` to (None when not indexed)."""
    return conn.execute(select(mpi_record.c.person_id).where(mpi_record.c.patient_id == patient_id)).scalar()


def linked_record_ids(conn, patient_id: str) -> list[str]:
    """Ids of every Patient record of the same person, ``patient_id`` first, the others in id order."""
    r = mpi_record.c
    person = select(r.person_id).where(r.patient_id == patient_id).scalar_subquery()
    rows = conn.execute(select(r.patient_id).where(r.person_id == person).order_by(r.patient_id)).all()
    return [patient_id] + [row[0] for row in rows if row[0] != patient_id]
