"""FHIR R4 search: index extraction from the official SearchParameters, query planning, bundles, routes."""
