"""The registry's own table: the fever-clinic index (derived from HealthcareService + Location)."""

from sqlalchemy import BigInteger, Boolean, Column, Float, Index, String, Table, Text

from hutong.store.schema import metadata

#: One row per fever-clinic HealthcareService: its position (WGS-84, from the Location), hours and status,
#: so "the nearest open clinics" is one indexed range query. Kept by the change-log consumer
#: ``registry-clinics`` and, for status changes through the API, in the same transaction as the change.
registry_clinic = Table(
    "registry_clinic", metadata,
    Column("service_id", String(64), primary_key=True),
    Column("tenant", String(64), nullable=False),
    Column("org_id", String(64), nullable=False, default=""),
    Column("location_id", String(64), nullable=False, default=""),
    Column("name", String(255), nullable=False),
    Column("org_name", String(255), nullable=False, default=""),
    Column("lat", Float),
    Column("lon", Float),
    Column("division", String(12), nullable=False, default=""),
    Column("city", String(6), nullable=False, default=""),
    Column("features", String(128), nullable=False, default=""),  # ",children,24h,designated,"
    Column("active", Boolean, nullable=False),
    Column("status", String(16), nullable=False),
    Column("status_set_us", BigInteger),
    Column("hours", Text, nullable=False),  # JSON {"availableTime": [...], "notAvailable": [...]}
    Column("phone", String(64), nullable=False, default=""),
    Column("address", String(255), nullable=False, default=""),
    Column("demo_defaults", String(128), nullable=False, default=""),
    Column("updated_us", BigInteger, nullable=False),
    Index("ix_registry_clinic_pos", "lat", "lon"),
    Index("ix_registry_clinic_city", "city"),
)

TABLES = (registry_clinic,)
