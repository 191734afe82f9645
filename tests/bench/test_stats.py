"""Percentiles, loss and clear pairing over hand-made records."""

from __future__ import annotations

import numpy as np
import pytest

from bench import stats


def test_percentiles_in_ms() -> None:
    out = stats.percentiles(np.arange(1, 1001) * 1000)  # 1 … 1000 ms
    assert out["count"] == 1000
    assert out["p50"] == pytest.approx(500.5)
    assert out["p99"] == pytest.approx(990.01)
    assert out["p999"] == pytest.approx(999.001)
    assert out["max"] == 1000.0
    assert out["mean"] == 500.5


def test_percentiles_of_nothing() -> None:
    assert stats.percentiles([]) == {
        "count": 0,
        "p50": None,
        "p99": None,
        "p999": None,
        "max": None,
        "mean": None,
    }


def test_added_is_a_difference_of_percentiles() -> None:
    through = {"p50": 1.5, "p99": 4.0, "p999": None}
    base = {"p50": 0.5, "p99": 1.25, "p999": 2.0}
    assert stats.added(through, base) == {"p50": 1.0, "p99": 2.75, "p999": None}


def test_pack_keys_is_unique_per_pair() -> None:
    keys = stats.pack_keys([0, 0, 1, 65535], [0, 1, 0, 0xFFFFFFFF])
    assert len(set(keys.tolist())) == 4
    assert keys[2] == 1 << 32


def test_in_window_is_half_open() -> None:
    mask = stats.in_window([9, 10, 15, 20, 21], 10, 20)
    assert mask.tolist() == [False, True, True, False, False]


def test_lost_counts_distinct_missing_keys() -> None:
    sent = stats.pack_keys([1, 1, 1, 2, 2], [0, 1, 1, 0, 1])  # a duplicate (1, 1)
    received = stats.pack_keys([1, 2, 2, 9], [0, 0, 0, 9])  # a duplicate and a stranger
    assert stats.lost(sent, received) == 2  # (1, 1) and (2, 1)
    assert stats.lost([], received) == 0
    assert stats.lost(sent, []) == 4


def test_pair_clears() -> None:
    latencies, missed = stats.pair_clears(
        barge_conn=[1, 1, 2, 3],
        barge_us=[1000, 5000, 1000, 1000],
        clear_conn=[1, 1, 1, 2, 3],
        clear_us=[500, 1200, 5300, 9_000_000, 900],
        max_wait_us=2_000_000,
    )
    # conn 1: the clear at 500 predates the barge; 1200 answers 1000, 5300 answers 5000.
    # conn 2: the clear comes too late; conn 3: only a clear before the barge.
    assert sorted(latencies.tolist()) == [200, 300]
    assert missed == 2


def test_one_clear_answers_one_barge() -> None:
    latencies, missed = stats.pair_clears([1, 1], [100, 200], [1], [300], 1_000_000)
    assert latencies.tolist() == [200]
    assert missed == 1
