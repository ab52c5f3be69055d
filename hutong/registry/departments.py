"""The national department list (《医疗机构诊疗科目名录》) as the registry uses it.

One list serves the whole platform: the one shipped with triage (``hutong/triage/departments.py``,
with its common names and aliases). Departments of a HealthcareService carry its codes in
``specialty`` (system ``hutong.registry.vocab.DEPARTMENT``)."""

from __future__ import annotations

from hutong.triage.departments import Department, departments


def department_name(code: str) -> str | None:
    """The list's name of a department code (None when the code is not in the list)."""
    d = departments().get(code)
    return d.name if d else None


def is_department(code: str) -> bool:
    """True for a code of the national list."""
    return code in departments()


__all__ = ["Department", "departments", "department_name", "is_department"]
