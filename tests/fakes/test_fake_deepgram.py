"""Tests of the fake Deepgram live speech-to-text server, with the official SDK and raw sockets."""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosedError, ConnectionClosedOK, InvalidStatus

from .deepgram import (
    KNOWN_QUERY_PARAMETERS,
    NET_0001_REASON,
    SERVER_MESSAGES,
    FakeDeepgramServer,
    ListenConfig,
    ListenStream,
    MessageInvalid,
    QueryRejected,
    SpeechStartedAt,
    Transcribe,
    UtteranceEndAt,
    parse_listen_query,
    validate_message,
)

try:
    from .. import speech
except ImportError:  # tests/ is not a package: pytest put tests/ itself on sys.path
    import speech  # type: ignore[no-redef,import-not-found]

with warnings.catch_warnings():
    # deepgram-sdk 7.17 imports websockets.legacy and websockets' deprecated InvalidStatusCode;
    # `dg.listen.v1` imports its client lazily, so import it here, under the filter.
    warnings.simplefilter("ignore", DeprecationWarning)
    from deepgram import AsyncDeepgramClient
    from deepgram.core.api_error import ApiError
    from deepgram.listen.v1.client import AsyncV1Client
    from deepgram.listen.v1.socket_client import AsyncV1SocketClient
    from deepgram.listen.v1.types import (
        ListenV1Configure,
        ListenV1ConfigureFailure,
        ListenV1ConfigureSuccess,
        ListenV1Error,
        ListenV1Metadata,
        ListenV1Results,
        ListenV1SpeechStarted,
        ListenV1UtteranceEnd,
    )

SENTENCE = "hello I would like to book an appointment tomorrow"
WORDS = SENTENCE.lower().split()
PHRASES = [
    SENTENCE,
    "goodbye and have a nice day",
    "the weather in paris is sunny and warm",
    "please hold while I transfer you to a specialist",
    "I need to change my delivery address",
]
MULAW_QUERY = "model=nova-3&encoding=mulaw&sample_rate=8000"


def silence_ulaw(ms: int) -> bytes:
    return b"\xff" * (ms * 8)


def connect_sdk(fake: FakeDeepgramServer, api_key: str = "dg-test", **options: Any) -> Any:
    client = AsyncDeepgramClient(api_key=api_key, environment=fake.environment)
    return client.listen.v1.connect(**{"model": "nova-3", **options})


async def send_chunks(conn: AsyncV1SocketClient, audio: bytes, size: int = 160) -> None:
    """20 ms μ-law frames as fast as possible (the fake counts stream time, not wall time)."""
    for offset in range(0, len(audio), size):
        await conn.send_media(audio[offset : offset + size])


async def recv_until(conn: AsyncV1SocketClient, kind: type[Any]) -> list[Any]:
    seen: list[Any] = []
    async with asyncio.timeout(15):
        while not seen or not isinstance(seen[-1], kind):
            seen.append(await conn.recv())
    return seen


@asynccontextmanager
async def raw(
    fake: FakeDeepgramServer, query: str = MULAW_QUERY, auth: str = "Token dg-test"
) -> AsyncIterator[ClientConnection]:
    async with connect(f"{fake.url}?{query}", additional_headers={"Authorization": auth}) as ws:
        yield ws


async def next_json(ws: ClientConnection) -> dict[str, Any]:
    async with asyncio.timeout(10):
        message: dict[str, Any] = json.loads(await ws.recv())
        return message


async def refused(fake: FakeDeepgramServer, query: str, auth: str = "Token dg-test") -> Any:
    with pytest.raises(InvalidStatus) as caught:
        async with raw(fake, query, auth):
            pass
    return caught.value.response


# --------------------------------------------------------------------------- the SDK


async def test_sdk_client_gets_speech_events_results_and_metadata() -> None:
    audio = silence_ulaw(200) + speech.synthesize_ulaw8k(SENTENCE) + silence_ulaw(1500)
    async with FakeDeepgramServer(transcription_phrases=PHRASES) as fake:
        options: dict[str, Any] = {"interim_results": True, "endpointing": 300, "keyterm": ["book"]}
        async with connect_sdk(
            fake,
            encoding="mulaw",
            sample_rate=8000,
            vad_events=True,
            utterance_end_ms=1000,
            **options,
        ) as conn:
            await send_chunks(conn, audio)
            messages = await recv_until(conn, ListenV1UtteranceEnd)
            await conn.send_keep_alive()
            await conn.send_finalize()
            (flushed,) = await recv_until(conn, ListenV1Results)
            await conn.send_close_stream()
            (metadata,) = await recv_until(conn, ListenV1Metadata)
            with pytest.raises(ConnectionClosedOK):
                await conn.recv()

    started, *interims, final, utterance_end = messages
    assert isinstance(started, ListenV1SpeechStarted)
    assert started.channel == [0, 1]
    assert 0.2 <= started.timestamp <= 0.3  # stream time: after the 200 ms of silence
    assert len(interims) >= 4
    for interim in interims:
        assert isinstance(interim, ListenV1Results)
        assert interim.is_final is False
        assert interim.start == 0.0
        said = interim.channel.alternatives[0].transcript.split()
        assert said == WORDS[: len(said)]  # the partial hypothesis: a prefix of the sentence
    assert interims[-1].channel.alternatives[0].transcript
    assert [i.duration for i in interims] == sorted(i.duration for i in interims)

    assert isinstance(final, ListenV1Results)
    assert (final.is_final, final.speech_final, final.from_finalize) == (True, True, False)
    best = final.channel.alternatives[0]
    assert best.transcript == " ".join(WORDS)
    assert best.confidence > 0.9
    assert [w.word for w in best.words] == WORDS
    assert best.words[0].start >= started.timestamp
    assert all(a.end <= b.start + 1e-9 for a, b in zip(best.words, best.words[1:], strict=False))
    speech_end = 0.2 + len(speech.synthesize_ulaw8k(SENTENCE)) / 8000
    assert best.words[-1].end == pytest.approx(speech_end, abs=0.1)
    assert final.start == 0.0
    assert final.duration == pytest.approx(speech_end + 0.3, abs=0.1)  # + endpointing
    handshake = fake.handshakes[0]
    assert final.metadata.request_id == handshake.request_id
    assert final.metadata.model_info.arch == "nova-3"

    assert isinstance(utterance_end, ListenV1UtteranceEnd)
    assert utterance_end.last_word_end == pytest.approx(best.words[-1].end, abs=0.001)

    assert isinstance(flushed, ListenV1Results)
    assert (flushed.is_final, flushed.from_finalize) == (True, True)
    assert flushed.channel.alternatives[0].transcript == ""
    assert flushed.start == pytest.approx(final.start + final.duration)

    assert isinstance(metadata, ListenV1Metadata)
    assert metadata.duration == pytest.approx(len(audio) / 8000)
    assert metadata.sha256 == hashlib.sha256(audio).hexdigest()
    assert metadata.request_id == handshake.request_id

    assert handshake.status == 101
    assert handshake.headers["Authorization"] == "Token dg-test"
    assert handshake.query["keyterm"] == ["book"]
    assert handshake.query["interim_results"] == ["true"]
    assert fake.results == [" ".join(WORDS), ""]
    assert [m["type"] for _, m in fake.received] == ["KeepAlive", "Finalize", "CloseStream"]
    assert len(fake.keepalives) == len(fake.finalizes) == 1
    assert fake.finalizes[0].stream_s == pytest.approx(len(audio) / 8000)
    assert fake.audio_bytes == [len(audio)]
    assert fake.closes == [(1000, "")]


async def test_configure_finalize_mid_speech_and_linear16_with_odd_frames() -> None:
    pcm = speech.synthesize_pcm(SENTENCE, 16000)
    audio = b"\x00\x00" * 1600 + pcm[: 16000 * 2]  # 100 ms of silence, then 1 s of speech
    async with FakeDeepgramServer(transcript_override="Hello there!") as fake:
        async with connect_sdk(
            fake, encoding="linear16", sample_rate=16000, endpointing="false", punctuate=True
        ) as conn:
            await conn.send_configure(ListenV1Configure(keyterms=["appointment"]))
            success = await conn.recv()
            await send_chunks(conn, audio, size=321)  # odd sizes: samples split across frames
            await conn.send_finalize()
            (flushed,) = await recv_until(conn, ListenV1Results)
        async with connect_sdk(fake, model="nova-2", encoding="alaw", sample_rate=8000) as conn:
            await conn.send_configure(ListenV1Configure(keyterms=["appointment"]))
            failure = await conn.recv()

    assert isinstance(success, ListenV1ConfigureSuccess)
    assert success.keyterms == ["appointment"]
    assert fake.sessions[0].keyterms == ("appointment",)
    assert isinstance(flushed, ListenV1Results)
    assert (flushed.is_final, flushed.speech_final, flushed.from_finalize) == (True, False, True)
    best = flushed.channel.alternatives[0]
    assert best.transcript == "Hello there."
    assert [(w.word, w.punctuated_word) for w in best.words] == [
        ("hello", "Hello"),
        ("there", "there."),
    ]
    assert flushed.start == 0.0
    assert flushed.duration == pytest.approx(1.1, abs=0.02)
    assert fake.audio_bytes[0] == len(audio)
    assert isinstance(failure, ListenV1ConfigureFailure)
    assert failure.code == "CONFIGURE_KEYTERMS_NOT_SUPPORTED"
    assert fake.sessions[1].config.encoding == "alaw"


# --------------------------------------------------------------------------- violations


async def test_bad_control_messages_get_an_error_and_are_recorded() -> None:
    async with FakeDeepgramServer() as fake:
        async with raw(fake) as ws:
            assert ws.response is not None
            assert ws.response.headers["dg-request-id"] == fake.handshakes[0].request_id
            await ws.send(json.dumps({"type": "KeepAlive", "interval": 3}))
            unknown_key = await next_json(ws)
            await ws.send(json.dumps({"type": "Flush"}))
            unknown_type = await next_json(ws)
            await ws.send("//7/f39/f39/f39/f39/f38=")  # base64 audio in a text frame
            audio_as_text = await next_json(ws)
            await ws.send(json.dumps({"type": "KeepAlive"}))  # the stream stays usable
            await fake.wait_for("KeepAlive", received=True)
        violations = fake.take_violations()

    for error in (unknown_key, unknown_type, audio_as_text):
        ListenV1Error.model_validate(error)
        assert error["variant"] == "SchemaError"
    assert "interval" in unknown_key["description"]
    assert "Flush" in unknown_type["description"]
    assert "binary frames" in audio_as_text["description"]
    assert audio_as_text["message"] == "//7/f39/f39/f39/f39/f38="
    assert [v.code for v in violations] == ["SchemaError"] * 3
    assert len(fake.sent_of("Error")) == 3


async def test_handshake_checks_refusals_and_query_violations() -> None:
    async with FakeDeepgramServer() as fake:
        missing = await refused(fake, "model=nova-3&encoding=mulaw")
        bad_bool = await refused(fake, f"{MULAW_QUERY}&mip_opt_out=False")
        bad_key = await refused(fake, MULAW_QUERY, auth="Token wrong")
        no_scheme = await refused(fake, MULAW_QUERY, auth="dg-test")
        with pytest.raises(ApiError) as caught:
            async with connect_sdk(fake, api_key="wrong", encoding="mulaw", sample_rate=8000):
                pass
        async with raw(fake, f"{MULAW_QUERY}&keywords=book:2&bogus_param=1") as ws:
            await ws.send(json.dumps({"type": "CloseStream"}))
            metadata = await next_json(ws)
        violations = fake.take_violations()

    assert missing.status_code == 400
    body = json.loads(missing.body)
    assert body["err_code"] == "INVALID_QUERY_PARAMETER"
    assert "sample_rate" in body["err_msg"]
    assert missing.headers["dg-error"] == body["err_msg"]
    assert missing.headers["dg-request-id"] == body["request_id"]
    assert bad_bool.status_code == 400
    assert "mip_opt_out" in json.loads(bad_bool.body)["err_msg"]
    assert bad_key.status_code == no_scheme.status_code == 401
    assert json.loads(bad_key.body)["err_code"] == "INVALID_AUTH"
    assert caught.value.status_code == 401
    assert [h.status for h in fake.handshakes] == [400, 400, 401, 401, 401, 101]
    assert fake.handshakes[-1].query["keywords"] == ["book:2"]
    assert metadata["type"] == "Metadata"
    assert metadata["duration"] == 0
    assert [(v.code, v.message) for v in violations] == [
        ("INVALID_QUERY", "unknown query parameter 'bogus_param'"),
        ("INVALID_QUERY", "keywords are not supported by nova-3 models (use keyterm)"),
    ]


async def test_empty_binary_frame_closes_the_stream_as_a_violation() -> None:
    async with FakeDeepgramServer() as fake:
        async with raw(fake) as ws:
            await ws.send(silence_ulaw(100))
            await ws.send(b"")
            metadata = await next_json(ws)
            with pytest.raises(ConnectionClosedOK):
                await ws.recv()
        violations = fake.take_violations()
    assert metadata["duration"] == 0.1
    assert [v.code for v in violations] == ["EmptyFrame"]


# --------------------------------------------------------------------------- failures


async def test_idle_stream_is_closed_with_net_0001_unless_kept_alive() -> None:
    async with (
        FakeDeepgramServer(idle_timeout_s=0.3) as fake,
        raw(fake) as kept,
        raw(fake) as idle,
    ):
        for _ in range(5):
            await asyncio.sleep(0.1)
            await kept.send(json.dumps({"type": "KeepAlive"}))
        with pytest.raises(ConnectionClosedError) as caught:
            await asyncio.wait_for(idle.recv(), 5)
        await kept.send(silence_ulaw(20))  # still open after 0.5 s
        await kept.send(json.dumps({"type": "CloseStream"}))
        assert (await next_json(kept))["type"] == "Metadata"

    assert caught.value.rcvd is not None
    assert caught.value.rcvd.code == 1011
    assert "NET-0001" in caught.value.rcvd.reason
    assert (1011, NET_0001_REASON) in fake.closes
    assert len(fake.keepalives) == 5


async def test_misbehaviour_knobs_reach_the_sdk() -> None:
    async with FakeDeepgramServer() as fake:
        async with connect_sdk(fake, encoding="mulaw", sample_rate=8000) as conn:
            await fake.wait_connections(1)
            await fake.send_unknown_type()
            unknown = await conn.recv()
            await fake.send_raw('{"type": "Results", ')
            with pytest.raises(json.JSONDecodeError):
                await conn.recv()
            await fake.drop_connections(1011, "Internal server error")
            with pytest.raises(ConnectionClosedError) as caught:
                await conn.recv()
        fake.refuse_status = 503
        with pytest.raises(ApiError) as refusal:
            async with connect_sdk(fake, encoding="mulaw", sample_rate=8000):
                pass

    assert unknown is None  # the SDK's unchecked union parsing yields None for unknown types
    assert caught.value.rcvd is not None
    assert caught.value.rcvd.code == 1011
    assert refusal.value.status_code == 503
    assert fake.closes == [(1011, "Internal server error")]


# --------------------------------------------------------------------------- pure parts


def test_known_query_parameters_cover_the_sdk_signature() -> None:
    sdk = set(inspect.signature(AsyncV1Client.connect).parameters)
    assert sdk - {"self", "authorization", "request_options"} <= KNOWN_QUERY_PARAMETERS


def test_parse_listen_query() -> None:
    config, problems = parse_listen_query(
        {
            "model": ["nova-3"],
            "encoding": ["linear16"],
            "sample_rate": ["16000"],
            "endpointing": ["false"],
            "keyterm": ["a b", "c"],
            "utterance_end_ms": ["500"],
        }
    )
    assert config == ListenConfig(
        model="nova-3",
        encoding="linear16",
        sample_rate=16000,
        endpointing_ms=None,
        utterance_end_ms=500,
        keyterms=("a b", "c"),
    )
    assert len(problems) == 2  # utterance_end_ms without interim_results, and below 1000
    base = {"encoding": ["mulaw"], "sample_rate": ["8000"]}
    for bad in (
        {"encoding": ["opus"], "sample_rate": ["48000"]},
        {"encoding": ["mp3"], "sample_rate": ["8000"]},
        {**base, "channels": ["2"]},
        {**base, "endpointing": ["soon"]},
        {**base, "keywords": ["book:very"]},
        {"encoding": ["linear16"], "sample_rate": ["11025"]},
    ):
        with pytest.raises(QueryRejected):
            parse_listen_query(bad)


def test_server_message_validation_is_strict() -> None:
    speech_started = {"type": "SpeechStarted", "channel": [0, 1], "timestamp": 1.0}
    validate_message(speech_started, SERVER_MESSAGES)
    for bad in (
        {**speech_started, "extra": 1},
        {"type": "SpeechStarted", "channel": [0, 1]},
        {"type": "SpeechStarted", "channel": [0, 1], "timestamp": "1.0"},
        {"type": "Results"},
        ["not", "an", "object"],
    ):
        with pytest.raises(MessageInvalid):
            validate_message(bad, SERVER_MESSAGES)


def test_stream_actions_depend_on_audio_not_on_frame_sizes() -> None:
    config = ListenConfig(
        model="nova-3",
        encoding="mulaw",
        sample_rate=8000,
        interim_results=True,
        endpointing_ms=300,
        utterance_end_ms=1000,
        vad_events=True,
    )
    audio = silence_ulaw(200) + speech.synthesize_ulaw8k(SENTENCE) + silence_ulaw(1500)

    def run(size: int) -> list[Any]:
        stream = ListenStream(config)
        actions = [a for i in range(0, len(audio), size) for a in stream.feed(audio[i : i + size])]
        return [*actions, *stream.flush(from_finalize=True)]

    actions = run(160)
    assert actions == run(480)
    kinds = [type(a).__name__ for a in actions]
    assert kinds[0] == "SpeechStartedAt"
    assert kinds[-3:] == ["Transcribe", "UtteranceEndAt", "Transcribe"]
    started = actions[0]
    final = actions[-3]
    assert isinstance(started, SpeechStartedAt) and isinstance(final, Transcribe)
    assert isinstance(actions[-2], UtteranceEndAt)
    assert 200 <= started.ms <= 260  # espeak starts with a little silence
    assert final.is_final and final.speech_final
    assert final.segment.speech is not None
    assert actions[-2].last_word_end_ms == final.segment.speech[1]
    interims = [a for a in actions if isinstance(a, Transcribe) and not a.is_final]
    ends = [a.segment.end_ms for a in interims]  # every 500 ms, until endpointing ends it
    assert ends == list(range(started.ms + 500, final.segment.end_ms, 500))
    assert {a.segment.start_ms for a in interims} == {0}


def test_finalize_mid_speech_splits_the_utterance_and_utterance_end_follows() -> None:
    config = ListenConfig(
        model="nova-3",
        encoding="mulaw",
        sample_rate=8000,
        interim_results=True,
        endpointing_ms=300,
        utterance_end_ms=1000,
    )
    spoken = speech.synthesize_ulaw8k(SENTENCE)
    stream = ListenStream(config, interim_every_ms=10_000)
    assert stream.feed(spoken[:8000]) == []  # 1 s of speech: nothing due yet
    (first,) = stream.flush(from_finalize=True)
    rest = stream.feed(spoken[8000:] + silence_ulaw(1500))
    assert isinstance(first, Transcribe)
    assert (first.is_final, first.speech_final, first.from_finalize) == (True, False, True)
    assert first.segment.end_ms == 1000
    second, utterance_end = rest
    assert isinstance(second, Transcribe) and isinstance(utterance_end, UtteranceEndAt)
    assert second.segment.start_ms == 1000
    assert second.segment.speech is not None
    assert second.segment.speech[0] == 1000  # the new segment starts at the flush
    assert (second.is_final, second.speech_final, second.from_finalize) == (True, True, False)
    assert utterance_end.last_word_end_ms == second.segment.speech[1]

    stream.feed(spoken[:4000])  # speech, then a Finalize right as it stops
    stream.flush(from_finalize=True)
    actions = stream.feed(silence_ulaw(1500))
    assert [type(a) for a in actions] == [UtteranceEndAt]  # no empty final after the flush
