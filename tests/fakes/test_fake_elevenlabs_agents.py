"""Tests of the fake ElevenLabs Agents (ConvAI) server, with the official SDK and a raw client."""

from __future__ import annotations

import asyncio
import base64
import json
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from elevenlabs.client import AsyncElevenLabs, ElevenLabs
from elevenlabs.core.api_error import ApiError
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from .elevenlabs_agents import ConvaiFormat, FakeElevenLabsAgents
from .elevenlabs_schema import MessageInvalid, parse_client_message, validate_server_message
from .openai_script import Reply, scripted

with warnings.catch_warnings():
    # 2.78.0 annotates a class attribute with websockets' deprecated legacy protocol class,
    # which warns at import time (an error under this project's filterwarnings).
    warnings.simplefilter("ignore", DeprecationWarning)
    from elevenlabs.conversational_ai.conversation import (
        AsyncAudioInterface,
        AsyncConversation,
        ClientTools,
        ConversationInitiationData,
    )

try:
    from .. import speech
    from ..waiting import until
except ImportError:  # tests/ is not a package: pytest put tests/ itself on sys.path
    import speech  # type: ignore[no-redef,import-not-found]
    from waiting import until  # type: ignore[no-redef,import-not-found]

Message = dict[str, Any]

GREETING = "thanks for calling how can I help you today"
USER = "hello I would like to book an appointment tomorrow"
ANSWER = "your order has shipped and will arrive on friday"
LONG = (
    "please hold while I transfer you to a specialist "
    "the weather in paris is sunny and warm "
    "your order has shipped and will arrive on friday "
    "goodbye and have a nice day"
)
PHRASES = [
    GREETING,
    USER,
    ANSWER,
    "please hold while I transfer you to a specialist",
    "the weather in paris is sunny and warm",
    "goodbye and have a nice day",
    "I need to change my delivery address",
]
SILENCE_1S = b"\xff" * 8000
AGENT = "agent_test"


class SpeakingInterface(AsyncAudioInterface):
    """The SDK's audio port as a test caller: :meth:`say` feeds μ-law, output is collected."""

    def __init__(self) -> None:
        self.output_audio = bytearray()
        self.interrupts = 0
        self._send: Callable[[bytes], Awaitable[None]] | None = None

    async def start(self, input_callback: Callable[[bytes], Awaitable[None]]) -> None:
        self._send = input_callback

    async def stop(self) -> None:
        self._send = None

    async def output(self, audio: bytes) -> None:
        self.output_audio += audio

    async def interrupt(self) -> None:
        self.interrupts += 1

    async def say(self, ulaw: bytes) -> None:
        assert self._send is not None
        for offset in range(0, len(ulaw), 160):
            await self._send(ulaw[offset : offset + 160])


def audio_bytes(message: Message) -> bytes:
    return base64.b64decode(message["audio_event"]["audio_base_64"])


def kept_audio(sent: list[Message]) -> bytes:
    """What a correct client plays: audio newer than the last interruption (the SDK's rule)."""
    last_interrupt, kept = 0, bytearray()
    for message in sent:
        if message.get("type") == "interruption":
            last_interrupt = message["interruption_event"]["event_id"]
        elif message.get("type") == "audio" and message["audio_event"]["event_id"] > last_interrupt:
            kept += audio_bytes(message)
    return bytes(kept)


def init_message(**fields: Any) -> str:
    return json.dumps({"type": "conversation_initiation_client_data", **fields})


@asynccontextmanager
async def raw(fake: FakeElevenLabsAgents, **init: Any) -> AsyncIterator[ClientConnection]:
    """A bare client past the init: metadata already read."""
    async with connect(fake.conversation_url(AGENT)) as ws:
        await ws.send(init_message(**init))
        await next_of(ws, "conversation_initiation_metadata")
        yield ws


async def next_of(ws: ClientConnection, type_: str, seen: list[Message] | None = None) -> Message:
    """Read until a message of ``type_``; everything read is appended to ``seen``."""
    async with asyncio.timeout(10):
        while True:
            message: Message = json.loads(await ws.recv())
            if seen is not None:
                seen.append(message)
            if message.get("type") == type_:
                return message


async def send_audio(ws: ClientConnection, wire: bytes, frame: int = 160) -> None:
    for offset in range(0, len(wire), frame):
        chunk = base64.b64encode(wire[offset : offset + frame]).decode()
        await ws.send(json.dumps({"user_audio_chunk": chunk}))


# --------------------------------------------------------------------------- pure parts


def test_schema_accepts_the_spec_examples_and_is_strict() -> None:
    init: Message = {
        "type": "conversation_initiation_client_data",
        "conversation_config_override": {
            "agent": {
                "prompt": {"prompt": "You are a helpful support agent."},
                "first_message": "Hi, how can I help?",
                "language": "en",
            },
            "tts": {"voice_id": "21m00Tcm4TlvDq8ikWAM"},
        },
        "custom_llm_extra_body": {"temperature": 0.7, "max_tokens": 150},
        "dynamic_variables": {"user_name": "John", "vip": True, "visits": 3, "score": 0.5},
    }
    for message in (
        init,
        {"user_audio_chunk": "AAAA"},
        {"type": "pong", "event_id": 12345},
        {"type": "client_tool_result", "tool_call_id": "t1", "result": "ok", "is_error": False},
        {"type": "contextual_update", "text": "User is viewing the pricing page"},
        {"type": "user_message", "text": "I would like to upgrade"},
        {"type": "user_activity"},
    ):
        parse_client_message(message)
    for message in (
        {"type": "vad_score", "vad_score_event": {"vad_score": 0.95}},
        {"type": "ping", "ping_event": {"event_id": 1, "ping_ms": None}},
        {
            "type": "internal_tentative_agent_response",
            "tentative_agent_response_internal_event": {"tentative_agent_response": "I'd"},
        },
    ):
        validate_server_message(message)

    cases = [
        ({"type": "pong", "event_id": "7"}, "invalid_value", "event_id"),
        ({"type": "feedback", "score": "like"}, "unknown_type", "type"),
        ({"type": "contextual_update"}, "missing_required_parameter", "text"),
        (
            {**init, "conversation_config_override": {"text_only": True}},
            "unknown_parameter",
            "conversation_config_override.text_only",
        ),
        (
            {**init, "dynamic_variables": {"caller": None}},
            "invalid_value",
            "dynamic_variables.caller",
        ),
    ]
    for message, code, path in cases:
        with pytest.raises(MessageInvalid) as info:
            parse_client_message(message)
        assert (info.value.code, info.value.path) == (code, path)
    with pytest.raises(MessageInvalid, match=r"audio_event\.extra"):
        validate_server_message(
            {"type": "audio", "audio_event": {"audio_base_64": "", "event_id": 1, "extra": 0}}
        )


def test_formats() -> None:
    assert [ConvaiFormat(n).bytes_per_ms for n in ("ulaw_8000", "pcm_16000", "pcm_24000")] == [
        8,
        32,
        48,
    ]
    pcm8 = ConvaiFormat("pcm_8000")
    assert len(pcm8.silence(20)) == 320
    assert pcm8.duration_ms(len(pcm8.speak("hello"))) == pytest.approx(
        len(speech.synthesize_ulaw8k("hello")) / 8, abs=1
    )
    with pytest.raises(ValueError, match="pcm_44100"):
        ConvaiFormat("pcm_44100")


# --------------------------------------------------------------------------- the official SDK


async def test_sdk_conversation_with_tool_round_trip() -> None:
    script = scripted(Reply.call("lookup_order", {"order_id": "A17"}), ANSWER)
    async with FakeElevenLabsAgents(
        responder=script, agents={AGENT}, transcription_phrases=PHRASES, ping_interval_s=0.3
    ) as fake:
        tools = ClientTools(loop=asyncio.get_running_loop())
        tool_params: list[dict[str, Any]] = []

        async def lookup_order(params: dict[str, Any]) -> str:
            tool_params.append(params)
            return "shipped on monday"

        tools.register("lookup_order", lookup_order, is_async=True)
        audio = SpeakingInterface()
        responses: list[str] = []
        transcripts: list[str] = []
        latencies: list[int] = []

        async def on_response(text: str) -> None:
            responses.append(text)

        async def on_transcript(text: str) -> None:
            transcripts.append(text)

        async def on_latency(ms: int) -> None:
            latencies.append(ms)

        config = ConversationInitiationData(
            conversation_config_override={"agent": {"first_message": GREETING}},
            dynamic_variables={"caller": "+15550100", "vip": True, "visits": 3},
        )
        conversation = AsyncConversation(
            AsyncElevenLabs(api_key="x", base_url=fake.http_url),
            AGENT,
            requires_auth=False,
            audio_interface=audio,
            config=config,
            client_tools=tools,
            callback_agent_response=on_response,
            callback_user_transcript=on_transcript,
            callback_latency_measurement=on_latency,
        )
        await conversation.start_session()
        await fake.wait_for("agent_response")
        await fake.wait_quiet()  # the caller listens to the whole greeting
        greeting = bytes(audio.output_audio)
        await audio.say(speech.synthesize_ulaw8k(USER) + SILENCE_1S)
        await fake.wait_for("agent_response", count=2)
        await fake.wait_quiet(playback=False)
        await until(lambda: len(audio.output_audio) == sum(fake.audio_sent), what="all audio")
        await conversation.end_session()
        conversation_id = await conversation.wait_for_session_end()

    assert speech.recognize_ulaw8k(greeting, grammar_words=PHRASES) == GREETING.lower()
    answer = bytes(audio.output_audio[len(greeting) :])
    assert speech.recognize_ulaw8k(answer, grammar_words=PHRASES) == ANSWER
    assert transcripts == [USER.lower()]
    assert responses == [GREETING, ANSWER]
    (call,) = fake.tool_calls
    assert tool_params == [{"tool_call_id": call.call_id, "order_id": "A17"}]
    assert [(r.call_id, r.result, r.is_error) for r in fake.tool_results] == [
        (call.call_id, "shipped on monday", False)
    ]
    assert [t.kind for t in script.turns] == ["audio", "function_call_output"]
    assert script.turns[1].tool_output == "shipped on monday"
    assert conversation_id == fake.conversations[0].id
    assert fake.overrides == [{"agent": {"first_message": GREETING}}]
    assert fake.dynamic_variables == [{"caller": "+15550100", "vip": True, "visits": 3}]
    assert fake.inits[0]["source_info"] == {"source": "python_sdk", "version": "2.78.0"}
    assert fake.pongs and not any(p.late for p in fake.pongs)
    assert latencies  # the SDK reports ping_ms once the fake has measured a round trip
    handshake = fake.handshakes[0]
    assert handshake.path.startswith(f"/v1/convai/conversation?agent_id={AGENT}&source=python_sdk")
    assert "xi-api-key" not in handshake.headers
    assert fake.interruptions == []


async def test_sdk_private_agent_through_signed_url() -> None:
    async with FakeElevenLabsAgents(
        private_agents={"agent_private"}, api_key="xi-right", first_message="hello"
    ) as fake:
        # AsyncConversation fetches the signed URL with a *sync* call in a thread: with an
        # AsyncElevenLabs client it gets an un-awaited coroutine (SDK 2.78.0 bug), so the sync
        # ElevenLabs client is what works (and what its `client: BaseElevenLabs` asks for).
        wrong = AsyncConversation(
            ElevenLabs(api_key="xi-wrong", base_url=fake.http_url),
            "agent_private",
            requires_auth=True,
        )
        with pytest.raises(ApiError) as refused:
            await wrong.start_session()
        assert refused.value.status_code == 401
        assert refused.value.body["detail"]["status"] == "invalid_api_key"

        audio = SpeakingInterface()
        conversation = AsyncConversation(
            ElevenLabs(api_key="xi-right", base_url=fake.http_url),
            "agent_private",
            requires_auth=True,
            audio_interface=audio,
            client_tools=ClientTools(loop=asyncio.get_running_loop()),
        )
        await conversation.start_session()
        await fake.wait_for("agent_response")
        await fake.wait_quiet(playback=False)
        await until(lambda: len(audio.output_audio) == sum(fake.audio_sent), what="greeting")
        await conversation.end_session()
        await conversation.wait_for_session_end()
        wrong.client_tools.stop()
    assert [r.headers["xi-api-key"] for r in fake.signed_url_requests] == ["xi-wrong", "xi-right"]
    (handshake,) = fake.handshakes
    assert "&conversation_signature=" in handshake.path
    assert handshake.path.endswith("&source=python_sdk&version=2.78.0")
    assert speech.recognize_ulaw8k(bytes(audio.output_audio), grammar_words=["hello", *PHRASES])


async def test_sdk_drops_stale_audio_after_interruption() -> None:
    corrections: list[tuple[str, str]] = []

    async def on_correction(original: str, corrected: str) -> None:
        corrections.append((original, corrected))

    async with FakeElevenLabsAgents(
        responder=scripted(ANSWER),
        first_message=LONG,
        realtime_factor=4,
        transcription_phrases=PHRASES,
        ping_interval_s=None,
    ) as fake:
        audio = SpeakingInterface()
        conversation = AsyncConversation(
            AsyncElevenLabs(api_key="x", base_url=fake.http_url),
            AGENT,
            requires_auth=False,
            audio_interface=audio,
            client_tools=ClientTools(loop=asyncio.get_running_loop()),
            callback_agent_response_correction=on_correction,
        )
        await conversation.start_session()
        await fake.wait_for("audio", count=5)
        await audio.say(speech.synthesize_ulaw8k(USER) + SILENCE_1S)  # talks over the agent
        await fake.wait_for("agent_response", count=2)
        await fake.wait_quiet(playback=False)
        expected = kept_audio([m for _, m in fake.sent])
        await until(lambda: len(audio.output_audio) == len(expected), what="non-stale audio")
        await conversation.end_session()
        await conversation.wait_for_session_end()

    assert bytes(audio.output_audio) == expected
    assert audio.interrupts == 1
    (barge_in,) = fake.interruptions
    assert len(barge_in.stale_event_ids) == 2
    assert corrections == [(LONG, barge_in.corrected)]


# --------------------------------------------------------------------------- raw client


async def test_interruption_sends_stale_audio_and_a_correction() -> None:
    async with (
        FakeElevenLabsAgents(
            responder=scripted(ANSWER),
            first_message=LONG,
            realtime_factor=2,
            transcription_phrases=PHRASES,
            ping_interval_s=None,
        ) as fake,
        raw(fake) as ws,
    ):
        seen: list[Message] = []
        for _ in range(25):  # ≈1.2 s of wall clock: that much of the greeting has "played"
            await next_of(ws, "audio", seen)
        await send_audio(ws, speech.synthesize_ulaw8k(USER) + SILENCE_1S)
        await next_of(ws, "agent_response_correction", seen)
        transcript = await next_of(ws, "user_transcript", seen)
        await next_of(ws, "agent_response", seen)
        await next_of(ws, "audio", seen)

    types = [m["type"] for m in seen]
    at = types.index("interruption")
    interruption_id = seen[at]["interruption_event"]["event_id"]
    before = [m["audio_event"]["event_id"] for m in seen[:at] if m["type"] == "audio"]
    assert before == sorted(set(before))
    assert max(before) < interruption_id
    stale = seen[at + 1 : at + 3]
    assert [m["type"] for m in stale] == ["audio", "audio"]
    assert all(m["audio_event"]["event_id"] <= interruption_id for m in stale)
    assert types[at + 3] == "agent_response_correction"
    correction = seen[at + 3]["agent_response_correction_event"]
    assert correction["original_agent_response"] == LONG
    corrected = correction["corrected_agent_response"]
    assert corrected and LONG.startswith(corrected)
    assert len(corrected.split()) < len(LONG.split()) // 2

    (barge_in,) = fake.interruptions
    assert barge_in.event_id == interruption_id
    assert barge_in.corrected == corrected
    first = fake.speeches[0]
    assert 900 <= barge_in.played_ms <= min(first.sent_ms, 3000)
    words = len(LONG.split())
    assert len(corrected.split()) == int(words * barge_in.played_ms / first.total_ms)
    assert first.interrupted and first.sent_bytes < len(first.audio)
    assert transcript["user_transcription_event"]["user_transcript"] == USER.lower()
    after = [m["audio_event"]["event_id"] for m in seen[at + 3 :] if m["type"] == "audio"]
    assert after and min(after) > interruption_id  # the reply plays; ids keep increasing


async def test_bad_client_messages_and_missing_pong_are_violations() -> None:
    async with (
        FakeElevenLabsAgents(
            ping_interval_s=0.2, pong_timeout_s=0.3, check_violations=False
        ) as fake,
        connect(fake.conversation_url(AGENT)) as ws,
    ):
        await ws.send(json.dumps({"type": "user_activity"}))
        await ws.send(init_message(conversation_config_override={"agent": {"voice": "x"}}))
        await ws.send(init_message(dynamic_variables={"caller": "+15550100"}))
        await next_of(ws, "conversation_initiation_metadata")
        await ws.send(init_message())
        for bad in (
            {"type": "pong", "event_id": "7"},
            {"type": "feedback", "score": "like"},
            {"type": "client_tool_result", "tool_call_id": "t1", "result": {"ok": True}},
            {"type": "client_tool_result", "tool_call_id": "t1", "result": "ok"},
            {"user_audio_chunk": "not base64!"},
        ):
            await ws.send(json.dumps(bad))
        await ws.send("{not json")
        await ws.send(b"\x00\x01")
        ping = await next_of(ws, "ping")  # ignored: a violation after pong_timeout_s
        await fake.wait_violations(11)
        ping = await next_of(ws, "ping")
        await ws.send(json.dumps({"type": "pong", "event_id": ping["ping_event"]["event_id"]}))
        await fake.wait_for("pong", received=True)
        violations = list(fake.violations)
    assert [(v.code, v.path) for v in violations if v.code != "pong_missing"] == [
        ("before_init", None),
        ("unknown_parameter", "conversation_config_override.agent.voice"),
        ("duplicate_init", None),
        ("invalid_value", "event_id"),
        ("unknown_type", "type"),
        ("invalid_value", "result"),
        ("unknown_tool_call", None),
        ("invalid_base64", None),
        ("invalid_json", None),
        ("binary_frame", None),
    ]
    assert any(v.code == "pong_missing" for v in violations)
    assert fake.pongs[-1].event_id == ping["ping_event"]["event_id"]
    assert fake.dynamic_variables == [{"caller": "+15550100"}]

    async def one_bad_message() -> None:
        async with FakeElevenLabsAgents(ping_interval_s=None) as fake, raw(fake) as ws:
            await ws.send(json.dumps({"type": "user_message", "text": "hi", "extra": 1}))
            await fake.wait_violations(1)

    with pytest.raises(AssertionError, match="invalid client behaviour"):
        await one_bad_message()


async def test_overrides_refusals_and_closes() -> None:
    async with FakeElevenLabsAgents(
        agents={AGENT},
        private_agents={"agent_private"},
        api_key="xi-key",
        allowed_overrides={"agent.first_message"},
        ping_interval_s=None,
        init_timeout_s=0.3,
    ) as fake:
        async with connect(fake.conversation_url(AGENT)) as ws:
            override = {"agent": {"first_message": "hi", "prompt": {"prompt": "Be rude."}}}
            await ws.send(init_message(conversation_config_override=override))
            with pytest.raises(ConnectionClosed):
                await next_of(ws, "never")
        assert (ws.close_code, ws.close_reason) == (
            1008,
            "Override for field 'prompt' is not allowed by config.",
        )
        assert [(v.code, v.path) for v in fake.take_violations()] == [
            ("override_not_allowed", "agent.prompt.prompt")
        ]

        async with connect(fake.conversation_url(AGENT)) as ws:  # no init at all
            with pytest.raises(ConnectionClosed):
                await next_of(ws, "never")
        assert ws.close_code == 1008
        assert [v.code for v in fake.take_violations()] == ["init_timeout"]

        statuses = []
        for url in (
            fake.conversation_url("agent_unknown"),
            fake.conversation_url("agent_private"),
            fake.conversation_url("agent_private") + "&conversation_signature=abc.def",
            f"{fake.url}?agent=missing",
        ):
            with pytest.raises(InvalidStatus) as refused:
                async with connect(url):
                    pass
            statuses.append(refused.value.response.status_code)
        assert statuses == [403, 401, 401, 400]

        async with httpx.AsyncClient(base_url=fake.http_url) as http:
            path = "/v1/convai/conversation/get-signed-url"
            bad_key = await http.get(path, params={"agent_id": "agent_private"})
            assert bad_key.status_code == 401
            assert bad_key.json()["detail"]["status"] == "invalid_api_key"
            headers = {"xi-api-key": "xi-key"}
            unknown = await http.get(path, params={"agent_id": "nope"}, headers=headers)
            assert unknown.status_code == 404
            signed = await http.get(path, params={"agent_id": "agent_private"}, headers=headers)
            signed_url = signed.json()["signed_url"]
        assert signed_url.startswith(f"{fake.url}?agent_id=agent_private&conversation_signature=")

        async with connect(signed_url) as ws:
            await ws.send(init_message())
            await next_of(ws, "conversation_initiation_metadata")
            await fake.drop_connections(1011, "boom")
            with pytest.raises(ConnectionClosed):
                await next_of(ws, "never")
        assert (ws.close_code, ws.close_reason) == (1011, "boom")

        fake.refuse_status = 503
        with pytest.raises(InvalidStatus) as unavailable:
            async with connect(fake.conversation_url(AGENT)):
                pass
        assert unavailable.value.response.status_code == 503
        assert fake.connections == 3


async def test_pcm16k_text_turn_and_misbehaviour_knobs() -> None:
    async with (
        FakeElevenLabsAgents(
            responder=scripted(ANSWER, GREETING),
            input_format="pcm_16000",
            output_format="pcm_16000",
            wrong_output_format="pcm_44100",
            transcription_phrases=PHRASES,
            realtime_factor=0,
            ping_interval_s=None,
        ) as fake,
        connect(fake.conversation_url(AGENT)) as ws,
    ):
        await ws.send(init_message())
        metadata = await next_of(ws, "conversation_initiation_metadata")
        event = metadata["conversation_initiation_metadata_event"]
        assert (event["agent_output_audio_format"], event["user_input_audio_format"]) == (
            "pcm_44100",
            "pcm_16000",
        )
        await ws.send(json.dumps({"type": "contextual_update", "text": "caller is a VIP"}))
        await ws.send(json.dumps({"type": "user_activity"}))
        await ws.send(json.dumps({"type": "user_message", "text": "where is my order"}))
        seen: list[Message] = []
        await next_of(ws, "agent_response", seen)
        await fake.wait_quiet(playback=False)
        await fake.send_unknown_type()
        await fake.send_raw("{not json")
        unknown = await next_of(ws, "fake_unknown_event", seen)
        assert unknown == {
            "type": "fake_unknown_event",
            "fake_unknown_event_event": {"note": "clients must ignore this"},
        }
        assert (await ws.recv()) == "{not json"

        pcm = speech.synthesize_pcm(USER, 16000) + ConvaiFormat("pcm_16000").silence(1000)
        await send_audio(ws, pcm, frame=640)
        transcript = await next_of(ws, "user_transcript")
        await next_of(ws, "agent_response")

    answer = b"".join(audio_bytes(m) for m in seen if m["type"] == "audio")
    assert speech.recognize(answer, 16000, grammar_words=PHRASES) == ANSWER
    assert transcript["user_transcription_event"]["user_transcript"] == USER.lower()
    assert fake.user_messages == ["where is my order"]
    assert fake.contextual_updates == ["caller is a VIP"]
    assert fake.user_activity == 1
    assert [t.kind for t in fake.turns] == ["text", "audio"]
