"""The FHIR store: resources, their versions, the change log, on SQLite or PostgreSQL.

Layers: ``store`` uses only ``hutong.core`` and ``hutong.config``; it never imports ``hutong.fhir``
or ``hutong.search`` (their validator and index are handed in).
"""

from hutong.store.records import StoredResource, WriteResult
from hutong.store.store import Store
from hutong.store.tx import Tx

__all__ = ["Store", "StoredResource", "Tx", "WriteResult"]
