"""Waiting for a condition in tests, with a deadline instead of a hang."""

from __future__ import annotations

import asyncio
from collections.abc import Callable


async def until(predicate: Callable[[], object], limit_s: float = 5.0, what: str = "") -> None:
    """Poll ``predicate`` every 10 ms until it is true; fail the test after ``limit_s``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {limit_s} s waiting for {what or predicate}")
        await asyncio.sleep(0.01)
