"""The lowest layer: what every other package may use and that uses nothing of Hutong's.

``errors`` (the one FHIR error and OperationOutcome), ``clock`` (the one ``now`` and the time
formats), ``ids`` (the one FHIR id pattern and server-assigned ids).
"""
