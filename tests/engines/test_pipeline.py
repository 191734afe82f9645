"""The cascaded engine and its pure parts: sentences, VAD turns, the scripted dialog, Deepgram
messages, ElevenLabs alignments. Parts are in-memory here; end-to-end tests use the fakes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.agents.model import DialogIntent, DialogScript, DialogSlot
from bridge.engines.pipeline.deepgram import Segment, listen_url, parse
from bridge.engines.pipeline.dialog import DialogState, ScriptedModel
from bridge.engines.pipeline.elevenlabs_tts import AlignmentWords
from bridge.engines.pipeline.engine import PipelineConfig, PipelineEngine
from bridge.engines.pipeline.parts import (
    LanguageModel,
    Message,
    SpeechChunk,
    SpeechToText,
    TextDelta,
    TextToSpeech,
    ToolCall,
    ToolSchema,
    Word,
)
from bridge.engines.pipeline.sentences import SentenceBuffer
from bridge.engines.pipeline.vad import TurnDetector
from bridge.errors import EngineProtocolError, EngineUnavailable
from bridge.session import actions as act
from bridge.session import events as ev
from tests.speech import synthesize_ulaw8k

# --- sentences ------------------------------------------------------------------------------


def test_sentences_come_out_as_soon_as_they_are_complete() -> None:
    buffer = SentenceBuffer()
    assert buffer.push("Hello there. How") == ["Hello there."]
    assert buffer.push(" are you? I am") == ["How are you?"]
    assert buffer.flush() == "I am"
    assert buffer.flush() == ""


def test_a_long_clause_is_cut_at_a_comma() -> None:
    buffer = SentenceBuffer(soft_limit=30)
    out = buffer.push("We offer plumbing, heating, electrical work, roofing and painting")
    assert out and out[0].endswith(",")


@given(st.lists(st.text(max_size=12), max_size=20))
def test_no_text_is_lost_however_it_is_split(deltas: list[str]) -> None:
    buffer = SentenceBuffer(soft_limit=20)
    out: list[str] = []
    for delta in deltas:
        out += buffer.push(delta)
    out.append(buffer.flush())
    assert "".join("".join(deltas).split()) == "".join("".join(out).split())


# --- VAD ------------------------------------------------------------------------------------


def test_vad_opens_and_closes_a_caller_turn() -> None:
    vad = TurnDetector(endpointing="sensitive")
    speech = synthesize_ulaw8k("hello I would like to book an appointment")
    events = vad.feed(b"\xff" * 4000) + vad.feed(speech) + vad.feed(b"\xff" * 8000)
    assert events == ["start", "end"]
    assert vad.speaking is False


def test_vad_knows_where_the_speech_that_opened_the_turn_began() -> None:
    vad = TurnDetector(interrupt="low")
    speech = synthesize_ulaw8k("goodbye")
    events = vad.feed(b"\xff" * 8 * 500) + vad.feed(speech, agent_speaking=True)
    assert events[0] == "start"
    assert 480 <= vad.onset_ms <= 560  # the first voiced frame, not where the VAD fired
    assert vad.position_ms - vad.onset_ms >= 360


def test_barge_in_needs_more_speech_with_low_interrupt_sensitivity() -> None:
    burst = synthesize_ulaw8k("hey")[:2400]  # a short noise-like burst
    high, low = TurnDetector(interrupt="high"), TurnDetector(interrupt="low")
    assert "start" in high.feed(burst, agent_speaking=True)
    assert "start" not in low.feed(burst, agent_speaking=True)


def test_vad_rejects_unknown_sensitivities() -> None:
    with pytest.raises(ValueError, match="endpointing_sensitivity"):
        TurnDetector(endpointing="eager")


# --- the scripted dialog ----------------------------------------------------------------------

SCRIPT = DialogScript(
    intents=(
        DialogIntent("hours", ("what are your opening hours",), "Nine to five."),
        DialogIntent(
            "book",
            ("book an appointment",),
            "Booked for {{day}} at {{time}}, code {{confirmation}}.",
            slots=("day", "time"),
            tool="book_appointment",
            tool_error_reply="Sorry, the booking system is down.",
        ),
        DialogIntent("bye", ("goodbye",), "Goodbye.", end_call=True),
    ),
    slots={
        "day": DialogSlot("day", "Which day?", ("monday", "tomorrow")),
        "time": DialogSlot("time", "What time?", ("ten o'clock", "two o'clock")),
    },
    fallback="Sorry?",
)


def test_dialog_fills_slots_then_calls_the_tool_and_reads_its_result() -> None:
    state = DialogState(SCRIPT)
    assert state.hear("i would like to book an appointment") == ("Which day?", None)
    assert state.hear("tomorrow") == ("What time?", None)
    assert state.hear("er") == ("Sorry? What time?", None)
    assert state.hear("ten o'clock") == ("", "book_appointment")
    assert state.tool_arguments() == {"day": "tomorrow", "time": "ten o'clock"}
    reply = state.tool_done('{"confirmation": "one two three"}')
    assert reply == ("Booked for tomorrow at ten o'clock, code one two three.", None)
    assert state.hear("goodbye") == ("Goodbye.", "end_call")


def test_dialog_takes_slots_given_up_front_and_handles_tool_errors() -> None:
    state = DialogState(SCRIPT)
    assert state.hear("book an appointment monday at two o'clock") == ("", "book_appointment")
    assert state.tool_done('{"error": "timeout"}') == ("Sorry, the booking system is down.", None)
    assert state.hear("what are your opening hours") == ("Nine to five.", None)
    assert state.hear("the weather") == ("Sorry?", None)


async def test_scripted_model_speaks_the_language_model_interface() -> None:
    model = ScriptedModel(SCRIPT)
    history: list[Message] = [{"role": "user", "content": "book an appointment tomorrow"}]
    out = [o async for o in model.respond(history, ())]
    assert "".join(o.text for o in out if isinstance(o, TextDelta)).strip() == "What time?"
    history.append({"role": "user", "content": "ten o'clock"})
    (call,) = [o async for o in model.respond(history, ())]
    assert isinstance(call, ToolCall) and call.name == "book_appointment"
    assert json.loads(call.arguments) == {"day": "tomorrow", "time": "ten o'clock"}


# --- vendor message parsing -------------------------------------------------------------------


def test_deepgram_results_errors_and_the_rest() -> None:
    results = {
        "type": "Results",
        "is_final": True,
        "speech_final": True,
        "from_finalize": True,
        "channel": {"alternatives": [{"transcript": "hello there", "confidence": 0.9}]},
    }
    assert parse(json.dumps(results)) == Segment("hello there", True, True, True)
    assert parse('{"type":"Error","description":"bad audio"}') == "bad audio"
    assert parse('{"type":"UtteranceEnd","channel":[0,1],"last_word_end":1.2}') is None
    with pytest.raises(EngineProtocolError):
        parse("{nope")
    with pytest.raises(EngineProtocolError):
        parse('{"type":"Results","channel":{}}')


def test_deepgram_url_asks_for_telephone_audio_and_boosts_keywords() -> None:
    url = listen_url("wss://api.deepgram.com", keywords=["Riverside"], language="en")
    assert url.startswith("wss://api.deepgram.com/v1/listen?model=nova-3&encoding=mulaw")
    assert "sample_rate=8000" in url and "keyterm=Riverside" in url and "language=en" in url
    old = listen_url("ws://127.0.0.1:1/", model="nova-2", keywords=["Riverside"])
    assert "keywords=Riverside%3A2" in old


def test_elevenlabs_alignment_becomes_words_in_ms_across_chunks() -> None:
    def chunk(chars: str, start: float) -> dict[str, object]:
        return {
            "characters": list(chars),
            "character_start_times_seconds": [start + i / 8 for i in range(len(chars))],
            "character_end_times_seconds": [start + (i + 1) / 8 for i in range(len(chars))],
        }

    words = AlignmentWords()
    assert words.feed(chunk("Hi y", 0.0)) == (Word("Hi", 0, 250),)
    assert words.feed(chunk("ou there", 0.5)) == (Word("you", 375, 750),)
    assert words.flush() == (Word("there", 875, 1500),)
    assert words.flush() == ()
    assert words.feed(None) == ()


# --- the engine, with parts in memory ---------------------------------------------------------


class ScriptSTT(SpeechToText):
    def __init__(self, texts: list[str]) -> None:
        self.texts = texts
        self.fed = 0

    async def feed(self, audio: bytes) -> None:
        self.fed += len(audio)

    async def finalize(self) -> str:
        return self.texts.pop(0) if self.texts else ""


class ListLLM(LanguageModel):
    def __init__(self, *replies: list[TextDelta | ToolCall] | Exception) -> None:
        self.replies = list(replies)
        self.seen: list[list[Message]] = []

    async def respond(
        self, messages: Sequence[Message], tools: Sequence[ToolSchema]
    ) -> AsyncIterator[TextDelta | ToolCall]:
        self.seen.append([dict(m) for m in messages])
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        for out in reply:
            await asyncio.sleep(0)
            yield out


class SilentTTS(TextToSpeech):
    """Speaks every word as 100 ms of silence, with exact word timings, in one chunk."""

    async def speak(self, text: str) -> AsyncIterator[SpeechChunk]:
        words = text.split()
        await asyncio.sleep(0)
        timings = tuple(Word(w, i * 100.0, (i + 1) * 100.0) for i, w in enumerate(words))
        yield SpeechChunk(b"\xff" * 800 * len(words), timings)


async def drain(engine: PipelineEngine, until: type) -> list[ev.EngineEvent]:
    out: list[ev.EngineEvent] = []
    async with asyncio.timeout(5):
        async for event in engine.events():
            out.append(event)
            if type(event) is until:
                return out
    return out


SPEECH = synthesize_ulaw8k("hello I would like to book an appointment")


async def caller_says(engine: PipelineEngine, audio: bytes = SPEECH) -> None:
    for i in range(0, len(audio), 160):
        await engine.send_audio(audio[i : i + 160])
    for _ in range(60):
        await engine.send_audio(b"\xff" * 160)


async def test_engine_greets_hears_and_answers_sentence_by_sentence() -> None:
    llm = ListLLM([TextDelta("Sure. "), TextDelta("Which day?")])
    engine = PipelineEngine(
        PipelineConfig(instructions="Be kind."),
        stt=ScriptSTT(["book an appointment"]),
        llm=llm,
        tts=SilentTTS(),
    )
    await engine.connect()
    await engine.send(act.CreateResponse(say="Hello."))  # the session's greeting, when due
    greeting = await drain(engine, ev.ResponseDone)
    assert greeting[0] == ev.EngineReady()
    assert ev.AgentTranscript("resp_1", "item_1", "Hello.") in greeting
    await caller_says(engine)
    turn = await drain(engine, ev.ResponseDone)
    kinds = [type(e).__name__ for e in turn]
    assert kinds[:3] == ["SpeechStarted", "SpeechStopped", "UserTranscript"]
    assert [e.text for e in turn if isinstance(e, ev.AgentTranscript)] == ["Sure. Which day?"]
    assert sum(len(e.audio) for e in turn if isinstance(e, ev.AgentAudio)) == 3 * 800
    assert llm.seen[0] == [
        {"role": "system", "content": "Be kind."},
        {"role": "assistant", "content": "Hello."},
        {"role": "user", "content": "book an appointment"},
    ]
    await engine.close()


async def test_barge_in_cancels_the_answer_and_keeps_only_the_heard_words() -> None:
    long = [TextDelta(f"word{i} ") for i in range(40)] + [TextDelta(".")]
    llm = ListLLM(long, [TextDelta("Okay.")])
    engine = PipelineEngine(
        PipelineConfig(), stt=ScriptSTT(["tell me", "stop"]), llm=llm, tts=SilentTTS()
    )
    await engine.connect()
    await caller_says(engine)
    started = await drain(engine, ev.AgentAudio)
    response = next(e for e in started if isinstance(e, ev.ResponseStarted)).response_id
    # the caller talks over the answer (all generated, still playing): SpeechStarted
    await caller_says(engine, SPEECH[:4000])
    events = await drain(engine, ev.SpeechStarted)
    await engine.send(act.TruncateAgent("item_" + response.split("_")[1], 240))
    answer = await drain(engine, ev.ResponseDone)  # the answer to what the caller said
    heard = next(e for e in answer if isinstance(e, ev.AgentHeardText))
    assert heard.text == "word0 word1"  # the words whose middle was heard by 240 ms
    assert any(isinstance(e, ev.UserTranscript) and e.text == "stop" for e in answer)
    assistant = [m for m in llm.seen[-1] if m["role"] == "assistant"]
    assert assistant[-1]["content"] == "word0 word1"  # the model remembers what was heard
    assert any(isinstance(e, ev.AgentTranscript) for e in events)
    await engine.close()


async def test_barge_in_while_the_model_still_writes_cancels_it() -> None:
    class SlowLLM(ListLLM):
        async def respond(
            self, messages: Sequence[Message], tools: Sequence[ToolSchema]
        ) -> AsyncIterator[TextDelta | ToolCall]:
            self.seen.append([dict(m) for m in messages])
            for i in range(1000):
                await asyncio.sleep(0.01)
                yield TextDelta(f"Sentence {i}. ")

    engine = PipelineEngine(
        PipelineConfig(), stt=ScriptSTT(["tell me"]), llm=SlowLLM(), tts=SilentTTS()
    )
    await engine.connect()
    await caller_says(engine)
    await drain(engine, ev.AgentAudio)
    await caller_says(engine, SPEECH[:4000])
    events = await drain(engine, ev.ResponseDone)
    assert any(isinstance(e, ev.SpeechStarted) for e in events)
    assert events[-1].status == "cancelled"  # type: ignore[union-attr]
    await engine.close()


async def test_tool_calls_go_out_after_the_text_and_results_come_back_as_history() -> None:
    call = ToolCall("call_1", "lookup", '{"id": "A1"}')
    llm = ListLLM([TextDelta("One moment."), call], [TextDelta("It shipped.")])
    engine = PipelineEngine(PipelineConfig(), stt=ScriptSTT(["status"]), llm=llm, tts=SilentTTS())
    await engine.connect()
    await caller_says(engine)
    events = await drain(engine, ev.ResponseDone)
    assert ev.ToolCallRequested("call_1", "lookup", '{"id": "A1"}') in events
    await engine.send(act.AddToolOutput("call_1", '{"status": "shipped"}'))
    await engine.send(act.CreateResponse())
    after = await drain(engine, ev.ResponseDone)
    assert any(isinstance(e, ev.AgentTranscript) and e.text == "It shipped." for e in after)
    history = llm.seen[-1]
    assert history[-2]["tool_calls"][0]["function"] == {"name": "lookup", "arguments": '{"id": "A1"}'}  # fmt: skip
    assert history[-1] == {"role": "tool", "tool_call_id": "call_1", "content": '{"status": "shipped"}'}  # fmt: skip
    await engine.close()


async def test_a_model_that_keeps_failing_kills_the_engine_for_the_fallback() -> None:
    down = EngineUnavailable("language model: HTTP 500")
    engine = PipelineEngine(
        PipelineConfig(),
        stt=ScriptSTT(["one", "two"]),
        llm=ListLLM(down, down),
        tts=SilentTTS(),
    )
    await engine.connect()
    await caller_says(engine)
    first = await drain(engine, ev.ResponseDone)
    assert any(isinstance(e, ev.EngineError) for e in first)
    assert first[-1].status == "failed"  # type: ignore[union-attr]
    assert first[-1].error == "language model: HTTP 500"  # type: ignore[union-attr]
    await caller_says(engine)
    closed = await drain(engine, ev.EngineClosed)
    assert "2 responses failed in a row" in closed[-1].reason  # type: ignore[union-attr]
