"""ASGI entry point for multi-process serving (``uvicorn hutong.api.asgi:app``); settings from the environment."""

from hutong.api.app import create_app
from hutong.api.logs import configure_logging

configure_logging()
app = create_app()
