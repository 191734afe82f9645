"""Pure statistics over the stamped-frame records of a run: latency percentiles, loss, clears.

Both load processes record plain arrays (microseconds of ``CLOCK_MONOTONIC``); this module joins
them. No I/O, no clock: the orchestrator loads the arrays and passes them in, tests pass
hand-made ones.

How each figure is computed:

* **Latency** of a frame = receive time at one end − stamp time written by the other end. Only
  frames *stamped* inside the measurement window count (the ramp-up and the tail are excluded).
* **Lost** = frames stamped inside the window by one end whose ``(call, seq)`` key never reached the
  other end (duplicates count once).
* **Added latency** = a percentile through the bridge − the same percentile of the baseline run
  (same load generator and fake engine, connected directly). It is a difference of percentiles,
  not a percentile of per-frame differences: frames of the two runs cannot be paired.
* **Clear latency** = the first ``clear`` the caller receives at or after the engine sent
  ``speech_started`` on the same connection, minus that send time; none within ``max_wait`` is
  a miss.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "PERCENTILES",
    "added",
    "in_window",
    "lost",
    "pack_keys",
    "pair_clears",
    "percentiles",
]

IntArray = npt.NDArray[np.int64]
PERCENTILES = {"p50": 50.0, "p99": 99.0, "p999": 99.9}


def percentiles(values_us: npt.ArrayLike) -> dict[str, float | int | None]:
    """Count, p50, p99, p99.9, max and mean of microsecond samples, in milliseconds."""
    values = np.asarray(values_us, dtype=np.float64)
    out: dict[str, float | int | None] = {"count": int(values.size)}
    if values.size == 0:
        out.update(dict.fromkeys([*PERCENTILES, "max", "mean"]))
        return out
    # "linear" is numpy's default; named so the method is visible where it is used
    qs = np.percentile(values, list(PERCENTILES.values()), method="linear")
    for name, q in zip(PERCENTILES, qs, strict=True):
        out[name] = round(float(q) / 1000.0, 3)
    out["max"] = round(float(values.max()) / 1000.0, 3)
    out["mean"] = round(float(values.mean()) / 1000.0, 3)
    return out


def added(through: Mapping[str, Any], baseline: Mapping[str, Any]) -> dict[str, float | None]:
    """Through-bridge percentile minus baseline percentile, for p50, p99 and p99.9 (ms)."""
    out: dict[str, float | None] = {}
    for name in PERCENTILES:
        a, b = through.get(name), baseline.get(name)
        out[name] = None if a is None or b is None else round(float(a) - float(b), 3)
    return out


def pack_keys(a: npt.ArrayLike, b: npt.ArrayLike) -> IntArray:
    """One int64 key per ``(a, b)`` pair: ``a`` (< 2**31) in the high word, ``b`` in the low."""
    hi = np.asarray(a, dtype=np.int64)
    lo = np.asarray(b, dtype=np.int64) & 0xFFFFFFFF
    return np.asarray((hi << 32) | lo, dtype=np.int64)


def in_window(t_us: npt.ArrayLike, start_us: int, end_us: int) -> npt.NDArray[np.bool_]:
    """Mask of times within ``[start_us, end_us)``."""
    t = np.asarray(t_us, dtype=np.int64)
    return np.asarray((t >= start_us) & (t < end_us), dtype=np.bool_)


def lost(sent_keys: npt.ArrayLike, received_keys: npt.ArrayLike) -> int:
    """How many distinct sent keys were never received."""
    sent = np.unique(np.asarray(sent_keys, dtype=np.int64))
    received = np.asarray(received_keys, dtype=np.int64)
    if sent.size == 0:
        return 0
    return int(np.count_nonzero(~np.isin(sent, received)))


def pair_clears(
    barge_conn: npt.ArrayLike,
    barge_us: npt.ArrayLike,
    clear_conn: npt.ArrayLike,
    clear_us: npt.ArrayLike,
    max_wait_us: int,
) -> tuple[IntArray, int]:
    """Latency of each barge-in (speech_started sent → clear received) and the number missed.

    Each clear answers at most one barge-in: the earliest unanswered one before it on its
    connection.
    """
    bc = np.asarray(barge_conn, dtype=np.int64)
    bt = np.asarray(barge_us, dtype=np.int64)
    cc = np.asarray(clear_conn, dtype=np.int64)
    ct = np.asarray(clear_us, dtype=np.int64)
    clears: dict[int, list[int]] = {}
    for conn, t in sorted(zip(cc.tolist(), ct.tolist(), strict=True), key=lambda x: x[1]):
        clears.setdefault(conn, []).append(t)
    latencies: list[int] = []
    missed = 0
    order = np.argsort(bt, kind="stable")
    used: dict[int, int] = {}
    for i in order.tolist():
        conn, t = int(bc[i]), int(bt[i])
        times = clears.get(conn, [])
        j = used.get(conn, 0)
        while j < len(times) and times[j] < t:
            j += 1
        if j < len(times) and times[j] - t <= max_wait_us:
            latencies.append(times[j] - t)
            used[conn] = j + 1
        else:
            missed += 1
            used[conn] = j
    return np.asarray(latencies, dtype=np.int64), missed
