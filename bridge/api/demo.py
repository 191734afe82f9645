"""The demo agent's tool, served by callbridge itself so the offline demo needs nothing else.

``agents/demo.toml`` books appointments through ``POST /demo/tools/book_appointment``: a stand-in
for your own booking service (same signed request any tool webhook receives).
"""

from __future__ import annotations

import hashlib
from typing import Any

from fastapi import APIRouter, Body

from bridge.api.errors import invalid

router = APIRouter(prefix="/demo/tools", tags=["demo"])

_DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


@router.post("/book_appointment")
async def book_appointment(payload: dict[str, Any] = Body(...)) -> dict[str, str]:  # noqa: B008
    arguments = payload.get("arguments")
    if not isinstance(arguments, dict):
        raise invalid(("body", "arguments"), "arguments must be an object")
    day, time = str(arguments.get("day", "")).strip(), str(arguments.get("time", "")).strip()
    if not day or not time:
        raise invalid(("body", "arguments"), "day and time are required")
    digest = hashlib.sha256(f"{payload.get('call_id')}/{day}/{time}".encode()).digest()
    code = " ".join(_DIGITS[b % 10] for b in digest[:3])
    return {"status": "booked", "day": day, "time": time, "confirmation": code}
