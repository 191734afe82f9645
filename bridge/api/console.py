"""The web console: static HTML/CSS/JS under ``/console`` (no build step), ``/`` sends you there.

Pages: ``/console/`` (a browser test call with live transcript), ``/console/calls.html`` (the
journal) and ``/console/call.html?id=…`` (one call). They use only the public HTTP API.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from starlette.staticfiles import StaticFiles

__all__ = ["STATIC_DIR", "mount_console"]

STATIC_DIR = Path(__file__).with_name("static")


def mount_console(app: FastAPI) -> None:
    app.mount("/console", StaticFiles(directory=STATIC_DIR, html=True), name="console")

    @app.get("/", include_in_schema=False)
    async def home() -> RedirectResponse:
        return RedirectResponse("/console/")
