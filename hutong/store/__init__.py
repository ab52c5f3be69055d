"""The FHIR store: resources, their versions, the change log, on SQLite or PostgreSQL."""

from hutong.store.store import Store, StoredResource, WriteResult

__all__ = ["Store", "StoredResource", "WriteResult"]
