"""The HTTP layer: a thin FastAPI app over the capability services."""
