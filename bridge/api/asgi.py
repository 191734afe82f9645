"""ASGI entry point for ``uvicorn --factory bridge.api.asgi:build`` (one app per worker)."""

from __future__ import annotations

import logging
import os

from fastapi import FastAPI

from bridge.api.app import create_app
from bridge.config import Settings

log = logging.getLogger("bridge")


LOG_FORMAT = "%(asctime)s %(levelname)s %(process)d %(name)s: %(message)s"


def configure_logging(level: str) -> None:
    """Standard logging for this process (a worker process starts with none)."""
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(level=level.upper(), format=LOG_FORMAT)


def build() -> FastAPI:
    """Settings from the environment; warn loudly about what a real call will still need."""
    settings = Settings.from_env(os.environ)
    configure_logging(settings.log_level)
    if not settings.openai_api_key:
        log.warning(
            "OPENAI_API_KEY is not set: the server runs and journals calls, but calls to an "
            "OpenAI Realtime agent (the default agent is one) will fail until you set it "
            "and restart."
        )
    return create_app(settings)
