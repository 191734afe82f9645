"""The API's error mapping: store errors become ``{"detail": …}`` responses with their status."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from fastapi import HTTPException
from pydantic import BaseModel

from bridge.journal.store import Conflict, JournalError, NotFound

__all__ = ["ERROR_RESPONSES", "ErrorOut", "invalid", "store_errors", "unavailable"]


class ErrorOut(BaseModel):
    detail: str


def invalid(where: tuple[str | int, ...], message: str, value: object = None) -> HTTPException:
    """A 422 shaped like FastAPI's own validation errors (``{"detail": [{"loc", "msg",
    "type"}]}``), so every 422 of the API has one schema — ``where`` is the ``loc``, e.g.
    ``("body", "inbound_agent")``."""
    item: dict[str, object] = {"loc": list(where), "msg": message, "type": "value_error"}
    if value is not None:
        item["input"] = value
    return HTTPException(422, detail=[item])


def unavailable(exc: JournalError) -> HTTPException:
    """503 when trying again can help (the database was unreachable or busy), else 500; the
    message carries no row data."""
    return HTTPException(status_code=503 if exc.retryable else 500, detail=exc.message)


@contextlib.contextmanager
def store_errors(conflict: str | None = None) -> Iterator[None]:
    """404 for a row that is not there (or not the caller's), 409 for a conflicting write."""
    try:
        yield
    except NotFound as exc:
        raise HTTPException(404, detail=exc.message) from exc
    except Conflict as exc:
        raise HTTPException(409, detail=conflict or exc.message) from exc
    except JournalError as exc:
        raise unavailable(exc) from exc


def _described(description: str) -> dict[str, object]:
    return {"model": ErrorOut, "description": description}


ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    401: _described("No API key, or an unknown or revoked one"),
    403: _described("The API key's scope is too low"),
    429: _described("Too many requests for this API key (see Retry-After)"),
}
