"""Tests of the fake ElevenLabs streaming TTS and the fake OpenAI-compatible chat LLM, driven
through the official SDKs."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any, TypeVar

import httpx
import openai
import pytest
from elevenlabs.client import AsyncElevenLabs
from elevenlabs.core.api_error import ApiError
from elevenlabs.errors import UnprocessableEntityError
from elevenlabs.types import VoiceSettings
from hypothesis import given
from hypothesis import strategies as st
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionChunk

from .elevenlabs_tts import (
    FakeElevenLabsTTS,
    Rendered,
    TTSBody,
    render,
    sdk_body_parameters,
    timestamp_lines,
)
from .espeak_timing import WordStart, character_times
from .openai_chat import FakeChatLLM, plan_reply, split_text, validate_chat_request
from .openai_script import Reply, scripted

try:
    from .. import speech
    from ..waiting import until
except ImportError:  # tests/ is not a package: pytest put tests/ itself on sys.path
    import speech  # type: ignore[no-redef,import-not-found]
    from waiting import until  # type: ignore[no-redef,import-not-found]

TEXT = "your order has shipped and will arrive on friday"
PHRASES = [
    TEXT,
    "thanks for calling how can I help you today",
    "please hold while I transfer you to a specialist",
    "the weather in paris is sunny and warm",
    "goodbye and have a nice day",
]
MODEL = "eleven_flash_v2_5"
T = TypeVar("T")
TOOLS: list[Any] = [
    {
        "type": "function",
        "function": {
            "name": "lookup_order",
            "description": "Look an order up.",
            "parameters": {
                "type": "object",
                "properties": {"order_id": {"type": "string"}},
                "required": ["order_id"],
            },
        },
    }
]
USER: list[Any] = [
    {"role": "system", "content": "You are a phone agent."},
    {"role": "user", "content": "where is my order 42"},
]


@contextlib.asynccontextmanager
async def tts_client(fake: FakeElevenLabsTTS, key: str = "k") -> AsyncIterator[AsyncElevenLabs]:
    """The official client, on an httpx client the test closes (the SDK never closes its own)."""
    async with httpx.AsyncClient(timeout=10) as http:
        yield AsyncElevenLabs(api_key=key, base_url=fake.base_url, httpx_client=http)


async def drain(stream: AsyncIterable[T], into: list[T]) -> None:
    """Append everything ``stream`` yields to ``into`` (kept when the stream fails)."""
    async for item in stream:
        into.append(item)


async def raw_stream(http: httpx.AsyncClient, fake: FakeElevenLabsTTS) -> AsyncIterator[bytes]:
    """``/stream`` read with httpx itself: chunks exactly as the fake sent them."""
    url = f"{fake.base_url}/v1/text-to-speech/v/stream?output_format=ulaw_8000"
    request = http.stream("POST", url, headers={"xi-api-key": "k"}, json={"text": TEXT})
    async with request as response:
        async for chunk in response.aiter_raw():
            yield chunk


def llm_client(fake: FakeChatLLM, key: str = "k", retries: int = 0) -> AsyncOpenAI:
    return AsyncOpenAI(api_key=key, base_url=fake.base_url, max_retries=retries)


# --------------------------------------------------------------------------- TTS: SDK


async def test_sdk_stream_with_timestamps_speaks_the_text_with_alignment() -> None:
    async with (
        FakeElevenLabsTTS(api_key="k", voices={"voice1"}) as fake,
        tts_client(fake) as client,
    ):
        chunks = [
            chunk
            async for chunk in client.text_to_speech.stream_with_timestamps(
                "voice1", text=TEXT, model_id=MODEL, output_format="ulaw_8000"
            )
        ]
    audio = b"".join(base64.b64decode(c.audio_base_64) for c in chunks)
    heard = await asyncio.to_thread(speech.recognize_ulaw8k, audio, grammar_words=PHRASES)
    assert heard == TEXT
    aligned = [c.alignment for c in chunks if c.alignment is not None]
    assert "".join(ch for a in aligned for ch in a.characters) == TEXT
    starts = [t for a in aligned for t in a.character_start_times_seconds]
    ends = [t for a in aligned for t in a.character_end_times_seconds]
    assert starts == sorted(starts) and starts[0] == 0.0
    assert all(s <= e for s, e in zip(starts, ends, strict=True))
    assert abs(ends[-1] - len(audio) / 8000) < 0.01
    # Each line carries the characters that start within its own 100 ms of audio.
    offset = 0.0
    for chunk in chunks:
        length = len(base64.b64decode(chunk.audio_base_64)) / 8000
        if chunk.alignment is not None and chunk is not chunks[-1]:
            assert all(
                offset - 0.001 <= t < offset + length + 0.001
                for t in chunk.alignment.character_start_times_seconds
            )
        offset += length
    (request,) = fake.requests
    assert request.body == {"text": TEXT, "model_id": MODEL}
    assert request.query == {"output_format": "ulaw_8000"}
    assert (request.outcome, request.bytes_sent) == ("completed", len(audio))


@pytest.mark.parametrize(
    ("output_format", "rate", "width"), [("ulaw_8000", 8000, 1), ("pcm_16000", 16000, 2)]
)
async def test_sdk_stream_returns_raw_audio(output_format: str, rate: int, width: int) -> None:
    async with FakeElevenLabsTTS(realtime_factor=0) as fake, tts_client(fake) as client:
        audio = b"".join(
            [
                chunk
                async for chunk in client.text_to_speech.stream(
                    "any-voice",
                    text=TEXT,
                    model_id=MODEL,
                    output_format=output_format,
                    optimize_streaming_latency=3,
                    enable_logging=False,
                    voice_settings=VoiceSettings(stability=0.5, similarity_boost=0.8),
                )
            ]
        )
    pcm = speech.ulaw_to_pcm16(audio) if width == 1 else audio
    heard = await asyncio.to_thread(speech.recognize, pcm, rate, grammar_words=PHRASES)
    assert heard == TEXT
    assert fake.bytes_sent == len(audio) == len(render(TEXT, output_format).audio)
    assert fake.requests[0].headers["content-type"] == "application/json"
    assert fake.requests[0].query["enable_logging"] == "false"


def test_body_model_has_exactly_the_sdk_parameters() -> None:
    assert set(TTSBody.model_fields) == sdk_body_parameters()


async def test_bad_key_unknown_voice_and_unknown_format_are_refused() -> None:
    async with (
        FakeElevenLabsTTS(api_key="k", voices={"voice1"}) as fake,
        tts_client(fake) as client,
    ):
        async with tts_client(fake, "wrong") as wrong:
            with pytest.raises(ApiError) as bad_key:
                async for _ in wrong.text_to_speech.stream("voice1", text=TEXT):
                    pass
        assert bad_key.value.status_code == 401
        assert bad_key.value.body["detail"]["status"] == "invalid_api_key"

        with pytest.raises(ApiError) as no_voice:
            async for _ in client.text_to_speech.stream("nobody", text=TEXT):
                pass
        assert no_voice.value.status_code == 404
        assert no_voice.value.body["detail"]["status"] == "voice_not_found"

        with pytest.raises(UnprocessableEntityError) as bad_format:
            async for _ in client.text_to_speech.stream(
                "voice1",
                text=TEXT,
                output_format="ulaw_16000",
            ):
                pass
        assert bad_format.value.body["detail"][0]["loc"] == ["query", "output_format"]
        (violation,) = fake.take_violations()
        assert violation.message.startswith("query.output_format")

        with pytest.raises(UnprocessableEntityError):  # known to the API, not to the fake
            async for _ in client.text_to_speech.stream(
                "voice1", text=TEXT, output_format="mp3_44100_128"
            ):
                pass
        assert not fake.violations
        assert [r.status for r in fake.requests] == [401, 404, 422, 422]


async def test_unknown_body_keys_are_violations_at_any_depth() -> None:
    async with FakeElevenLabsTTS(check_violations=False) as fake, httpx.AsyncClient() as http:
        url = f"{fake.base_url}/v1/text-to-speech/v/stream"
        headers = {"xi-api-key": "k"}
        top = await http.post(url, headers=headers, json={"text": "hi", "voice": "x"})
        nested = await http.post(
            url, headers=headers, json={"text": "hi", "voice_settings": {"stabilty": 0.5}}
        )
        empty = await http.post(url, headers=headers, json={"text": ""})
    assert top.status_code == nested.status_code == empty.status_code == 422
    assert top.json()["detail"][0]["loc"] == ["body", "voice"]
    assert nested.json()["detail"][0]["loc"] == ["body", "voice_settings", "stabilty"]
    assert [v.errors[0]["type"] for v in fake.violations] == [
        "extra_forbidden",
        "extra_forbidden",
        "string_too_short",
    ]


# --------------------------------------------------------------------------- TTS: knobs


async def test_tts_fail_status_for_a_number_of_requests() -> None:
    async with (
        FakeElevenLabsTTS(fail_status=429, fail_times=1, realtime_factor=0) as fake,
        tts_client(fake) as client,
    ):
        with pytest.raises(ApiError) as failed:
            async for _ in client.text_to_speech.stream("v", text=TEXT):
                pass
        assert failed.value.status_code == 429
        assert failed.value.body["detail"]["status"] == "too_many_concurrent_requests"
        audio = b"".join([c async for c in client.text_to_speech.stream("v", text=TEXT)])
        assert audio and fake.fail_status is None


async def test_tts_abort_after_bytes_truncates_the_body() -> None:
    async with FakeElevenLabsTTS(abort_after_bytes=1000, realtime_factor=0) as fake:
        got: list[bytes] = []
        async with httpx.AsyncClient() as http:
            with pytest.raises(httpx.RemoteProtocolError):
                await drain(raw_stream(http, fake), got)
        assert len(b"".join(got)) == fake.bytes_sent == 1000
        await until(lambda: fake.requests[0].outcome == "aborted", what="abort recorded")
        assert not fake.cancelled


async def test_tts_abort_through_the_sdk_loses_the_partial_chunk() -> None:
    # The SDK re-chunks ``stream()`` into 1024-byte pieces: a tail shorter than that is lost.
    async with FakeElevenLabsTTS(abort_after_bytes=2500, realtime_factor=0) as fake:
        got: list[bytes] = []
        async with tts_client(fake) as client:
            with pytest.raises(httpx.RemoteProtocolError):
                await drain(client.text_to_speech.stream("v", text=TEXT), got)
    assert [len(chunk) for chunk in got] == [1024, 1024] and fake.bytes_sent == 2500


async def test_tts_hang_then_client_leaves_is_seen_as_cancelled() -> None:
    async with (
        FakeElevenLabsTTS(hang_after_bytes=2, realtime_factor=0) as fake,
        tts_client(fake) as client,
    ):
        lines: list[Any] = []

        async def read() -> None:
            async for line in client.text_to_speech.stream_with_timestamps(
                "v", text=TEXT, output_format="pcm_16000"
            ):
                lines.append(line)

        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.5):
                await read()
        assert lines == []  # no whole line fits in 2 bytes: headers only
        await until(lambda: fake.cancelled, what="the fake noticing the client left")
        assert fake.cancelled[0].outcome == "cancelled"


async def test_tts_hang_mid_stream_is_dropped_when_the_fake_closes() -> None:
    fake = FakeElevenLabsTTS(realtime_factor=0)
    async with fake, tts_client(fake) as client:
        fake.hang_after_bytes = 2048
        received = 0
        with pytest.raises(httpx.RemoteProtocolError):  # noqa: PT012 - the close happens mid-read
            async for chunk in client.text_to_speech.stream("v", text=TEXT):
                received += len(chunk)
                if received == 2048:
                    await fake.aclose()
    assert fake.requests[0].outcome == "closed"


async def test_tts_pacing_and_first_byte_latency() -> None:
    async with (
        FakeElevenLabsTTS(realtime_factor=20, first_byte_latency_s=0.2) as fake,
        tts_client(fake) as client,
    ):
        render(TEXT, "ulaw_8000")  # synthesis is cached: time the streaming only
        started = time.monotonic()
        arrivals: list[float] = []
        async for _ in client.text_to_speech.stream("v", text=TEXT):
            arrivals.append(time.monotonic() - started)
    duration = len(render(TEXT, "ulaw_8000").audio) / 8000
    assert arrivals[0] >= 0.2
    assert arrivals[-1] >= 0.2 + duration / 20 - 0.1 - 0.05


# --------------------------------------------------------------------------- TTS: pure parts


def test_character_times_spread_between_word_starts() -> None:
    words = [WordStart(0, 2, 0.0), WordStart(3, 3, 0.3), WordStart(3, 2, 0.4)]
    starts, ends = character_times(len("hi you"), words, 0.9)
    assert starts == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.5, 0.7])
    assert ends == pytest.approx([0.1, 0.2, 0.3, 0.5, 0.7, 0.9])
    assert character_times(4, [], 0.4)[0] == pytest.approx([0.0, 0.1, 0.2, 0.3])


def test_timestamp_lines_put_each_character_in_the_chunk_it_starts_in() -> None:
    rendered = Rendered(b"\xff" * 250, 1000, 1, (0.0, 0.09, 0.1, 0.24), (0.09, 0.1, 0.24, 0.25))
    lines = timestamp_lines("abcd", rendered, 100)
    parsed = [json.loads(line) for _, line in lines]
    assert [len(audio) for audio, _ in lines] == [100, 100, 50]
    assert [p["alignment"] and p["alignment"]["characters"] for p in parsed] == [
        ["a", "b"],
        ["c"],
        ["d"],
    ]


# --------------------------------------------------------------------------- LLM: SDK


async def collect(stream: Any) -> tuple[str, dict[str, Any], list[ChatCompletionChunk]]:
    """Text, the (single) assembled tool call, and every chunk of a streamed completion."""
    text, chunks = "", []
    call: dict[str, Any] = {"id": None, "name": None, "arguments": ""}
    async for chunk in stream:
        chunks.append(chunk)
        for choice in chunk.choices:
            text += choice.delta.content or ""
            for part in choice.delta.tool_calls or []:
                call["id"] = call["id"] or part.id
                if part.function is not None:
                    call["name"] = call["name"] or part.function.name
                    call["arguments"] += part.function.arguments or ""
    return text, call, chunks


async def test_sdk_streams_scripted_text_then_tool_call_then_answer() -> None:
    responder = scripted(
        Reply.say_then_call("let me check that", "lookup_order", {"order_id": "42"}),
        "your order has shipped",
    )
    async with FakeChatLLM(responder, api_key="k") as fake, llm_client(fake) as client:
        stream = await client.chat.completions.create(
            model="gpt-4o-mini",
            messages=USER,
            tools=TOOLS,
            tool_choice="auto",
            temperature=0.3,
            stream=True,
            stream_options={"include_usage": True},
        )
        text, call, chunks = await collect(stream)
        assert text == "let me check that"
        assert call["name"] == "lookup_order" and call["id"].startswith("call_")
        assert json.loads(call["arguments"]) == {"order_id": "42"}
        assert len([c for c in chunks if c.choices and c.choices[0].delta.tool_calls]) > 2
        assert chunks[-2].choices[0].finish_reason == "tool_calls"
        assert chunks[-1].choices == [] and chunks[-1].usage is not None

        follow_up = [
            *USER,
            {
                "role": "assistant",
                "content": text,
                "tool_calls": [
                    {
                        "id": call["id"],
                        "type": "function",
                        "function": {"name": call["name"], "arguments": call["arguments"]},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": call["id"], "content": '{"status": "shipped"}'},
        ]
        stream = await client.chat.completions.create(
            model="gpt-4o-mini", messages=follow_up, tools=TOOLS, stream=True
        )
        text, call, chunks = await collect(stream)
        assert (text, call["name"]) == ("your order has shipped", None)
        assert chunks[-1].choices[0].finish_reason == "stop" and chunks[-1].usage is None
    assert responder.turns[1][-1]["role"] == "tool"  # type: ignore[index]
    assert fake.requests[1].body["messages"] == follow_up
    assert [r.outcome for r in fake.requests] == ["completed", "completed"]


async def test_sdk_non_streaming_completion_and_echo_default() -> None:
    responder = scripted(Reply.call("lookup_order", {"order_id": "7"}))
    async with FakeChatLLM(responder) as fake, llm_client(fake) as client:
        completion = await client.chat.completions.create(
            model="gpt-4o-mini", messages=USER, tools=TOOLS
        )
    message = completion.choices[0].message
    assert completion.choices[0].finish_reason == "tool_calls" and message.content is None
    (tool_call,) = message.tool_calls or []
    assert tool_call.function.name == "lookup_order"  # type: ignore[union-attr]
    assert json.loads(tool_call.function.arguments) == {"order_id": "7"}  # type: ignore[union-attr]

    async with FakeChatLLM() as fake, llm_client(fake) as client:
        completion = await client.chat.completions.create(model="m", messages=USER)
        stream = await client.chat.completions.create(model="m", messages=USER, stream=True)
        text, _, _ = await collect(stream)
    assert completion.choices[0].message.content == text == "you said where is my order 42"


@pytest.mark.parametrize(
    ("extra", "param"),
    [
        ({"extra_body": {"bogus": 1}}, "bogus"),
        ({"messages": [{"role": "user", "content": "hi", "nmae": "x"}]}, "messages[0].nmae"),
        (
            {"messages": [{"role": "tool", "tool_call_id": "c", "content": "x"}]},
            "messages.[0].role",
        ),
        ({"temperature": 3}, "temperature"),
        ({"tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice"),
        ({"messages": [{"role": "user"}]}, "messages[0].content"),
    ],
)
async def test_invalid_requests_are_400_and_violations(extra: dict[str, Any], param: str) -> None:
    kwargs: dict[str, Any] = {"model": "m", "messages": USER, "tools": TOOLS, **extra}
    async with FakeChatLLM() as fake, llm_client(fake) as client:
        with pytest.raises(openai.BadRequestError) as refused:
            await client.chat.completions.create(**kwargs)
        (violation,) = fake.take_violations()
    assert refused.value.status_code == 400 and violation.param == param
    assert refused.value.body["param"] == param  # type: ignore[index]


def test_unanswered_tool_calls_are_invalid() -> None:
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    body = {
        "model": "m",
        "messages": [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "tool_calls": [call]},
            {"role": "user", "content": "hello?"},
        ],
    }
    with pytest.raises(ValueError, match="did not have response messages: c1"):
        validate_chat_request(body)


async def test_wrong_key_is_401() -> None:
    async with FakeChatLLM(api_key="k") as fake, llm_client(fake, "nope") as client:
        with pytest.raises(openai.AuthenticationError) as refused:
            await client.chat.completions.create(model="m", messages=USER)
    assert refused.value.body["code"] == "invalid_api_key"  # type: ignore[index]


# --------------------------------------------------------------------------- LLM: knobs


async def test_llm_fail_status_then_sdk_retry_succeeds() -> None:
    async with FakeChatLLM(fail_status=500) as fake:
        async with llm_client(fake) as client:
            with pytest.raises(openai.InternalServerError):
                await client.chat.completions.create(model="m", messages=USER)
        fake.fail_status, fake.fail_times = 429, 1
        async with llm_client(fake, retries=1) as client:
            completion = await client.chat.completions.create(model="m", messages=USER)
    assert completion.choices[0].message.content == "you said where is my order 42"
    assert [r.status for r in fake.requests] == [500, 429, 200]


async def test_llm_malformed_line_makes_the_sdk_fail() -> None:
    async with FakeChatLLM(malformed_after=2) as fake, llm_client(fake) as client:
        stream = await client.chat.completions.create(model="m", messages=USER, stream=True)
        with pytest.raises(json.JSONDecodeError):
            await collect(stream)


async def test_llm_abort_mid_stream() -> None:
    async with FakeChatLLM(abort_after=3) as fake, llm_client(fake) as client:
        stream = await client.chat.completions.create(model="m", messages=USER, stream=True)
        got: list[ChatCompletionChunk] = []
        with pytest.raises(openai.APIConnectionError):
            await drain(stream, got)
        assert len(got) == 3
        await until(lambda: fake.requests[0].outcome == "aborted", what="abort recorded")


async def test_llm_hang_then_client_leaves_is_seen_as_cancelled() -> None:
    async with FakeChatLLM(hang_after=2) as fake, llm_client(fake) as client:
        stream = await client.chat.completions.create(model="m", messages=USER, stream=True)
        got: list[ChatCompletionChunk] = []
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(drain(stream, got), 0.3)
        await stream.close()
        await until(lambda: fake.cancelled, what="the fake noticing the client left")
    assert len(got) == 2 and fake.cancelled[0].chunks_sent == 2


@pytest.mark.parametrize(
    ("knob", "error"),
    [
        ("malformed_after", json.JSONDecodeError),
        ("abort_after", openai.APIConnectionError),
        ("hang_after", openai.APITimeoutError),
    ],
)
async def test_llm_knobs_on_a_non_streaming_request(knob: str, error: type[Exception]) -> None:
    async with FakeChatLLM(**{knob: 0}) as fake:
        async with AsyncOpenAI(
            api_key="k", base_url=fake.base_url, max_retries=0, timeout=0.3
        ) as client:
            with pytest.raises(error):
                await client.chat.completions.create(model="m", messages=USER)
        expected = {"malformed_after": "completed", "abort_after": "aborted"}
        await until(lambda: fake.requests[0].outcome == expected.get(knob, "cancelled"))


async def test_llm_pacing_and_wait_for_request() -> None:
    fake = FakeChatLLM(tokens_per_s=50, first_token_latency_s=0.1)
    async with fake, llm_client(fake) as client:
        started = time.monotonic()
        task = asyncio.create_task(
            client.chat.completions.create(model="m", messages=USER, stream=True)
        )
        request = await fake.wait_for_request(1)
        assert request.messages == USER
        _, _, chunks = await collect(await task)
        elapsed = time.monotonic() - started
    pieces = len(chunks) - 1  # the finish chunk is not paced
    assert elapsed >= 0.1 + (pieces - 1) / 50 - 0.02


# --------------------------------------------------------------------------- LLM: pure parts


@given(st.text(alphabet=st.sampled_from("ab \n.é"), max_size=40))
def test_split_text_round_trips(text: str) -> None:
    pieces = split_text(text)
    assert "".join(pieces) == text
    assert all(len(piece.strip()) <= 6 for piece in pieces)


def test_plan_reply_shapes() -> None:
    assert plan_reply(None, "c") == ([], "stop")
    deltas, finish = plan_reply(Reply.say_then_call("ok", "f", {"a": "xxxxxxxxxx"}), "c")
    assert finish == "tool_calls"
    assert deltas[0] == {"content": "ok"}
    assert deltas[1]["tool_calls"][0]["id"] == "c"
    assert "".join(d["tool_calls"][0]["function"]["arguments"] for d in deltas[1:]) == (
        '{"a": "xxxxxxxxxx"}'
    )
