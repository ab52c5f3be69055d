"""Hutong (互通): a regional health information platform on FHIR R4."""

__version__ = "0.1.0"
FHIR_VERSION = "4.0.1"
