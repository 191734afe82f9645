"""The v1 webhook signature: fixed vectors, and what verify accepts and rejects."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.tools.signing import sign, signature, signed_headers, verify

# Vectors computed once outside this code base, with
#   printf '<timestamp>.<body>' | openssl dgst -sha256 -hmac '<secret>'
VECTORS = [
    (
        "whsec_test_0123456789",
        1700000000,
        b'{"call_id":"CA123","tool":"lookup_order"}',
        "6949adfd348c3724c7ff0710bba57d6a1077b890e828882346184b2883cdb047",
    ),
    (
        "rotate-me-2",
        1712345678,
        '{"arguments":{"name":"Zoë"}}'.encode(),
        "e6c37cd809c8cea13a5589b1d44133ff1492ff6bb66adf3ec689fee03d525ce1",
    ),
]
SECRET, TS, BODY, HEX = VECTORS[0]


@pytest.mark.parametrize(("secret", "timestamp", "body", "expected"), VECTORS)
def test_vectors(secret: str, timestamp: int, body: bytes, expected: str) -> None:
    assert sign(secret, timestamp, body) == f"v1={expected}"
    assert signature(secret, timestamp, body) == expected
    # and an independent recomputation straight from the written-down scheme
    message = str(timestamp).encode() + b"." + body
    assert hmac.new(secret.encode(), message, hashlib.sha256).hexdigest() == expected
    headers = signed_headers(secret, timestamp, body)
    assert headers == {
        "X-Callbridge-Timestamp": str(timestamp),
        "X-Callbridge-Signature": f"v1={expected}",
    }
    assert verify(secret, str(timestamp), f"v1={expected}", body, now=timestamp)


def test_empty_secret_cannot_sign_or_verify() -> None:
    with pytest.raises(ValueError, match="empty secret"):
        sign("", TS, BODY)
    assert not verify("", str(TS), f"v1={HEX}", BODY, now=TS)


def test_rejects_tampered_body() -> None:
    assert not verify(SECRET, str(TS), f"v1={HEX}", BODY + b" ", now=TS)
    assert not verify(SECRET, str(TS), f"v1={HEX}", BODY.replace(b"CA123", b"CA124"), now=TS)


def test_rejects_wrong_secret() -> None:
    assert not verify("another-secret", str(TS), f"v1={HEX}", BODY, now=TS)


def test_rejects_signature_moved_to_another_timestamp() -> None:
    assert not verify(SECRET, str(TS + 1), f"v1={HEX}", BODY, now=TS)


@pytest.mark.parametrize(
    ("now", "ok"),
    [(TS, True), (TS + 300, True), (TS - 300, True), (TS + 300.5, False), (TS - 301, False)],
)
def test_tolerance_window(now: float, ok: bool) -> None:
    assert verify(SECRET, str(TS), f"v1={HEX}", BODY, now=now) is ok


def test_custom_tolerance() -> None:
    assert not verify(SECRET, str(TS), f"v1={HEX}", BODY, now=TS + 10, tolerance_s=5)
    assert verify(SECRET, str(TS), f"v1={HEX}", BODY, now=TS + 10, tolerance_s=10)


@pytest.mark.parametrize(
    "timestamp", ["", "abc", "-1700000000", "+1700000000", "1.7e9", "1700000000.0", "١٧", "9" * 40]
)
def test_rejects_malformed_timestamp(timestamp: str) -> None:
    assert not verify(SECRET, timestamp, f"v1={HEX}", BODY, now=TS)


def test_timestamp_whitespace_is_tolerated() -> None:
    assert verify(SECRET, f" {TS} ", f"v1={HEX}", BODY, now=TS)


@pytest.mark.parametrize(
    "header",
    [
        f"v1={HEX}",
        f"v1={HEX.upper()}",
        f"v1={'0' * 64},v1={HEX}",
        f"v1={HEX}, v1={'0' * 64}",
        f"v0=legacy, v1={HEX}",
        f" v1 = {HEX} ".replace(" = ", "=", 1),
    ],
)
def test_accepts_rotation_lists(header: str) -> None:
    assert verify(SECRET, str(TS), header, BODY, now=TS)


@pytest.mark.parametrize(
    "header",
    ["", HEX, f"v2={HEX}", f"v0={HEX}", f"v1={HEX[:-1]}", f"v1={HEX}0", "v1=", ",,,", "v1=ü"],
)
def test_rejects_bad_signature_headers(header: str) -> None:
    assert not verify(SECRET, str(TS), header, BODY, now=TS)


def test_old_and_new_secret_both_verify_a_dual_signed_request() -> None:
    header = f"{sign('old-secret', TS, BODY)},{sign('new-secret', TS, BODY)}"
    assert verify("old-secret", str(TS), header, BODY, now=TS)
    assert verify("new-secret", str(TS), header, BODY, now=TS)
    assert not verify("third-secret", str(TS), header, BODY, now=TS)


@given(st.text(st.characters(codec="utf-8"), min_size=1), st.integers(0, 10**12), st.binary())
def test_sign_then_verify_round_trips(secret: str, timestamp: int, body: bytes) -> None:
    header = sign(secret, timestamp, body)
    assert verify(secret, str(timestamp), header, body, now=timestamp)
    assert not verify(secret + "x", str(timestamp), header, body, now=timestamp)


@given(st.text(), st.text(), st.binary())
def test_verify_never_raises(timestamp: str, header: str, body: bytes) -> None:
    assert verify(SECRET, timestamp, header, body, now=TS) in {True, False}
