"""ASGI entry point for multi-process serving (``uvicorn hutong.api.asgi:app``); settings from the environment."""

from hutong.api.app import create_app

app = create_app()
