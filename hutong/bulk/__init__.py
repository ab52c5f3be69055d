"""Bulk data: loading files into the store (``load``), the one NDJSON exporter (``export``) and
FHIR Bulk Data ``$export`` jobs kept in the database (``jobs``, ``routes``)."""
