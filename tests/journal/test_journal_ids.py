from __future__ import annotations

import itertools
import threading
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.journal.ids import CROCKFORD, IdGenerator, id_timestamp, new_call_id

MAX_MS = (1 << 48) - 1
LAST_DATETIME_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
MAX_RANDOM = (1 << 80) - 1
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def test_new_call_id_is_26_crockford_digits() -> None:
    call_id = new_call_id()
    assert len(call_id) == 26
    assert set(call_id) <= set(CROCKFORD)


def test_id_holds_its_creation_time() -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    call_id = new_call_id()
    assert before <= id_timestamp(call_id) <= datetime.now(UTC)


def test_known_encoding() -> None:
    generator = IdGenerator(clock=lambda: 1_700_000_000_123, random_bits=lambda _bits: 0)
    call_id = generator.new()
    assert call_id == "01HF7YAT3V" + "0" * 16  # 1700000000123 = 0b1…, 5 bits a digit
    assert id_timestamp(call_id) == datetime(2023, 11, 14, 22, 13, 20, 123_000, tzinfo=UTC)


@given(
    readings=st.lists(st.integers(0, LAST_DATETIME_MS - 1_000), min_size=1, max_size=200),
    randoms=st.lists(
        st.one_of(st.integers(0, MAX_RANDOM), st.integers(MAX_RANDOM - 3, MAX_RANDOM)),
        min_size=1,
    ),
)
def test_ids_strictly_increase_whatever_the_clock_does(
    readings: list[int], randoms: list[int]
) -> None:
    clock, random_source = iter(readings), itertools.cycle(randoms)
    generator = IdGenerator(clock=lambda: next(clock), random_bits=lambda _: next(random_source))
    ids = [generator.new() for _ in readings]
    assert all(a < b for a, b in itertools.pairwise(ids))
    for n, call_id in enumerate(ids):
        stamp = id_timestamp(call_id)
        latest = EPOCH + timedelta(milliseconds=max(readings[: n + 1]))
        # never before the latest clock reading; after it only by overflow bumps, 1 ms each
        assert latest <= stamp <= latest + timedelta(milliseconds=n)


def test_same_millisecond_increments_the_random_part() -> None:
    generator = IdGenerator(clock=lambda: 5, random_bits=lambda _bits: 41)
    first, second = generator.new(), generator.new()
    assert first == "0000000005" + "0" * 14 + "19"  # 41 = 1·32 + 9
    assert second == "0000000005" + "0" * 14 + "1A"


def test_random_overflow_moves_to_the_next_millisecond() -> None:
    generator = IdGenerator(clock=lambda: 5, random_bits=lambda _bits: MAX_RANDOM)
    first, second = generator.new(), generator.new()
    assert first == "0000000005" + "Z" * 16
    assert second == "0000000006" + "Z" * 16
    assert id_timestamp(second) - id_timestamp(first) == timedelta(milliseconds=1)


def test_timestamp_beyond_48_bits_is_refused() -> None:
    with pytest.raises(ValueError, match="48 bits"):
        IdGenerator(clock=lambda: MAX_MS + 1).new()


def test_ids_after_the_year_9999_have_no_datetime() -> None:
    call_id = IdGenerator(clock=lambda: LAST_DATETIME_MS + 1).new()
    with pytest.raises(ValueError, match="9999"):
        id_timestamp(call_id)


@pytest.mark.parametrize("bad", ["", "0" * 25, "U" * 26, "8" + "0" * 25])
def test_id_timestamp_refuses_malformed_ids(bad: str) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the messages differ by cause
        id_timestamp(bad)


def test_default_generator_is_monotonic_across_threads() -> None:
    results: list[list[str]] = [[] for _ in range(4)]

    def make(out: list[str]) -> None:
        out.extend(new_call_id() for _ in range(2_000))

    threads = [threading.Thread(target=make, args=(out,)) for out in results]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [call_id for out in results for call_id in out]
    assert len(set(every)) == len(every)
    for out in results:  # each thread sees its own ids increase
        assert out == sorted(out)
