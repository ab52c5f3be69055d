"""The FHIR engine: validation, search parameters, bundles, OperationOutcome."""
