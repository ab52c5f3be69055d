"""Master patient index (主索引): matching, batch deduplication, online linking to Person records, PIXm/$match."""


def linked_patients(store, patient_id: str) -> list[dict]:
    """Patient resources linked to the same person as ``patient_id`` (the given one first)."""
    from hutong.mpi.service import linked_patients as _lp

    return _lp(store, patient_id)


def person_for_patient(store, patient_id: str) -> str | None:
    """The Person id ``patient_id`` is linked to, or None."""
    from hutong.mpi.service import person_for_patient as _pp

    return _pp(store, patient_id)
