"""The call core, driven event by event with an explicit clock."""

from __future__ import annotations

import json

import pytest

from bridge.session import actions as act
from bridge.session import events as ev
from bridge.session.config import EngineCapabilities, SessionConfig
from bridge.session.core import CallSession
from bridge.session.state import CallState

CHUNK = 160  # 20 ms of μ-law


def started(config: SessionConfig | None = None, *, ready: bool = True) -> CallSession:
    session = CallSession(config or SessionConfig(tool_names=frozenset({"lookup_order"})))
    session.handle(ev.CallStarted("CA1", "MZ1", {"agent": "x"}), 0.0)
    if ready:
        session.handle(ev.EngineReady(), 0.1)
    return session


def of(actions: list[act.Action], kind: type) -> list:
    return [a for a in actions if isinstance(a, kind)]


def speak(session: CallSession, ms: int, now: float, *, rid: str = "r1", iid: str = "i1"):
    """The engine streams ``ms`` of agent audio in one delta."""
    return session.handle(ev.AgentAudio(rid, iid, b"\x01" * (ms * 8)), now)


def ack_all(session: CallSession, actions: list[act.Action], now: float, upto: int | None = None):
    marks = [a.name for a in of(actions, act.SendMark)]
    out: list[act.Action] = []
    for name in marks[:upto]:
        out += session.handle(ev.PlaybackMark(name), now)
    return out


def test_agent_audio_goes_out_in_20ms_chunks_each_followed_by_a_mark() -> None:
    s = started()
    s.handle(ev.ResponseStarted("r1"), 1.0)
    out = s.handle(ev.AgentAudio("r1", "i1", b"\x01" * 500), 1.0)
    kinds = [type(a) for a in out]
    assert kinds == [act.PlayAudio, act.SendMark] * 3
    assert all(len(a.payload) == CHUNK for a in of(out, act.PlayAudio))
    rest = s.handle(ev.AgentAudioDone("r1", "i1"), 1.1)
    assert [len(a.payload) for a in of(rest, act.PlayAudio)] == [20]
    assert s.ledger.sent_ms("i1") == 62  # 500 bytes / 8


def test_barge_in_clears_and_truncates_at_the_acknowledged_audio() -> None:
    s = started()
    s.handle(ev.ResponseStarted("r1"), 1.0)
    out = speak(s, 1000, 1.0)  # one second queued at the carrier
    ack_all(s, out, 1.5, upto=23)  # the carrier played 23 chunks = 460 ms
    barge = s.handle(ev.SpeechStarted("u2", 2000), 1.5)
    assert isinstance(barge[0], act.ClearPlayback)  # first, before anything else
    assert of(barge, act.TruncateAgent) == [act.TruncateAgent("i1", 460)]
    assert not of(barge, act.CancelResponse)  # OpenAI cancels itself (auto_interrupt)
    (event,) = [e for e in of(barge, act.JournalEvent) if e.kind == "barge_in"]
    assert event.data == {"item_id": "i1", "heard_ms": 460, "sent_ms": 1000}
    # later deltas of the cancelled response never reach the caller
    assert speak(s, 200, 1.6) == []
    assert s.stats.stale_audio_dropped == 1
    # the flushed marks that the carrier echoes after clear do not count as played
    late = ack_all(s, out, 1.7)
    assert late == [] and s.ledger.heard_ms("i1") == 460
    # a new response plays normally
    s.handle(ev.ResponseDone("r1", "cancelled"), 1.7)
    s.handle(ev.ResponseStarted("r2"), 2.0)
    assert of(speak(s, 40, 2.0, rid="r2", iid="i2"), act.PlayAudio)


def test_speech_while_agent_silent_is_not_a_barge_in() -> None:
    s = started()
    s.handle(ev.ResponseStarted("r1"), 1.0)
    out = speak(s, 100, 1.0)
    s.handle(ev.AgentAudioDone("r1", "i1"), 1.0)
    s.handle(ev.ResponseDone("r1"), 1.0)
    ack_all(s, out, 1.2)
    barge = s.handle(ev.SpeechStarted("u2"), 3.0)
    assert barge == []


def test_engine_without_auto_interrupt_gets_a_cancel() -> None:
    caps = EngineCapabilities(auto_interrupt=False)
    s = started(SessionConfig(capabilities=caps))
    s.handle(ev.ResponseStarted("r1"), 1.0)
    speak(s, 200, 1.0)
    barge = s.handle(ev.SpeechStarted("u2"), 1.1)
    assert of(barge, act.CancelResponse) == [act.CancelResponse("r1")]


def test_engine_that_cannot_truncate_gets_no_truncate() -> None:
    caps = EngineCapabilities(truncates=False)
    s = started(SessionConfig(capabilities=caps))
    s.handle(ev.ResponseStarted("r1"), 1.0)
    speak(s, 200, 1.0)
    barge = s.handle(ev.SpeechStarted("u2"), 1.1)
    assert of(barge, act.ClearPlayback) and not of(barge, act.TruncateAgent)


def test_interrupted_turn_is_journaled_with_the_words_heard() -> None:
    s = started()
    s.handle(ev.ResponseStarted("r1"), 1.0)
    out = speak(s, 1000, 1.0)
    s.handle(ev.AgentAudioDone("r1", "i1"), 1.0)
    text = "one two three four five six seven eight nine ten"
    assert s.handle(ev.AgentTranscript("r1", "i1", text), 1.0) == []  # still playing
    ack_all(s, out, 1.5, upto=25)  # half heard
    barge = s.handle(ev.SpeechStarted("u2"), 1.5)
    (turn,) = of(barge, act.JournalTurn)
    assert turn == act.JournalTurn("agent", "one two three four five", 1.0, interrupted=True)


def test_fully_played_turn_is_journaled_when_the_last_mark_comes_back() -> None:
    s = started()
    s.handle(ev.ResponseStarted("r1"), 1.0)
    out = speak(s, 100, 1.25)
    s.handle(ev.AgentAudioDone("r1", "i1"), 1.3)
    s.handle(ev.AgentTranscript("r1", "i1", "Hello there."), 1.3)
    turns = of(ack_all(s, out, 1.4), act.JournalTurn)
    assert turns == [act.JournalTurn("agent", "Hello there.", 1.25)]


def test_user_turn_is_timed_from_speech_start() -> None:
    s = started()
    s.handle(ev.SpeechStarted("u1"), 4.5)
    out = s.handle(ev.UserTranscript("u1", " I need help "), 6.0)
    assert out == [act.JournalTurn("user", "I need help", 4.5)]


def test_caller_audio_is_buffered_until_the_engine_is_ready() -> None:
    s = started(SessionConfig(preconnect_frames=3), ready=False)
    for i in range(5):
        assert s.caller_audio(bytes([i]) * CHUNK) is None
    assert s.stats.frames_buffered_dropped == 2
    out = s.handle(ev.EngineReady(), 0.5)
    (send,) = of(out, act.SendAudio)
    assert send.payload == bytes([2]) * CHUNK + bytes([3]) * CHUNK + bytes([4]) * CHUNK
    assert s.caller_audio(b"\xff" * CHUNK) == act.SendAudio(b"\xff" * CHUNK)


def test_initial_message_makes_the_agent_speak_first() -> None:
    s = started(SessionConfig(initial_message="Thanks for calling Acme."), ready=False)
    out = s.handle(ev.EngineReady(), 0.3)
    assert of(out, act.CreateResponse) == [act.CreateResponse(say="Thanks for calling Acme.")]
    # an engine that cannot be given a text is instructed to say it
    caps = EngineCapabilities(says_text=False)
    s = started(SessionConfig(capabilities=caps, initial_message="Hi."), ready=False)
    (create,) = of(s.handle(ev.EngineReady(), 0.3), act.CreateResponse)
    assert create.say is None and create.instructions is not None
    assert '"Hi."' in create.instructions


def test_tool_call_runs_the_webhook_then_answers_and_asks_for_a_response() -> None:
    s = started()
    s.handle(ev.ResponseStarted("r1"), 1.0)
    out = s.handle(ev.ToolCallRequested("c1", "lookup_order", '{"order_id": "42"}'), 1.0)
    assert of(out, act.RunTool) == [act.RunTool("c1", "lookup_order", {"order_id": "42"})]
    # the webhook answers before the response that asked for it is done
    result = s.handle(ev.ToolResult("c1", "lookup_order", '{"status":"shipped"}', True, 12.0), 1.2)
    assert of(result, act.AddToolOutput) == [act.AddToolOutput("c1", '{"status":"shipped"}')]
    assert not of(result, act.CreateResponse)  # one response at a time
    (call,) = of(result, act.JournalToolCall)
    assert call.arguments == {"order_id": "42"} and call.ok and call.time_in_call_secs == 1.0
    done = s.handle(ev.ResponseDone("r1"), 1.3)
    assert of(done, act.CreateResponse) == [act.CreateResponse(None)]


def test_unknown_tool_and_bad_arguments_go_back_to_the_model_as_errors() -> None:
    s = started()
    out = s.handle(ev.ToolCallRequested("c1", "launch_rockets", "{}"), 1.0)
    (output,) = of(out, act.AddToolOutput)
    assert "unknown tool" in json.loads(output.output)["error"]
    assert of(out, act.CreateResponse)
    s.handle(ev.ResponseStarted("r9"), 1.05)
    s.handle(ev.ResponseDone("r9"), 1.06)
    out = s.handle(ev.ToolCallRequested("c2", "lookup_order", "{not json"), 1.1)
    (output,) = of(out, act.AddToolOutput)
    assert "invalid arguments" in json.loads(output.output)["error"]


def test_end_call_waits_for_the_last_words_to_play() -> None:
    s = started()
    s.handle(ev.ResponseStarted("r1"), 1.0)
    audio = speak(s, 100, 1.0)
    out = s.handle(ev.ToolCallRequested("c1", "end_call", '{"reason": "done"}'), 1.0)
    assert s.state is CallState.ENDING and not of(out, act.HangUp)
    assert of(out, act.AddToolOutput) and not of(out, act.CreateResponse)
    s.handle(ev.AgentAudioDone("r1", "i1"), 1.0)
    assert not of(s.handle(ev.ResponseDone("r1"), 1.0), act.HangUp)
    end = ack_all(s, audio, 1.2)
    assert of(end, act.HangUp) == [act.HangUp("agent ended the call", "completed")]
    assert s.state is CallState.ENDED


def test_end_call_has_a_grace_deadline() -> None:
    s = started()
    s.handle(ev.ResponseStarted("r1"), 1.0)
    speak(s, 100, 1.0)
    s.handle(ev.ToolCallRequested("c1", "end_call", "{}"), 1.0)
    assert s.next_deadline() == pytest.approx(16.0)
    assert of(s.handle_timer(16.0), act.HangUp)


def test_dtmf_is_journaled_at_once_and_sent_to_the_model_after_a_pause() -> None:
    s = started()
    out = s.handle(ev.CallerDtmf("4"), 2.0)
    assert of(out, act.JournalEvent)[0].kind == "dtmf" and not of(out, act.AddUserText)
    s.handle(ev.CallerDtmf("2"), 2.5)
    assert s.next_deadline() == pytest.approx(4.0)
    assert s.handle_timer(3.9) == []
    fired = s.handle_timer(4.0)
    (text,) = of(fired, act.AddUserText)
    assert text.text.endswith(": 42") and of(fired, act.CreateResponse)


def test_hash_sends_the_digits_at_once() -> None:
    s = started()
    s.handle(ev.CallerDtmf("7"), 2.0)
    out = s.handle(ev.CallerDtmf("#"), 2.1)
    assert of(out, act.AddUserText)[0].text.endswith(": 7#")


def test_engine_closing_mid_call_ends_the_call_as_failed() -> None:
    s = started()
    out = s.handle(ev.EngineClosed("code 1011: boom"), 5.0)
    assert of(out, act.HangUp) == [act.HangUp("engine closed: code 1011: boom", "failed")]
    assert s.handle(ev.CallerAudio(b"\xff" * CHUNK), 5.1) == []


def test_caller_hangup_journals_what_the_caller_heard() -> None:
    s = started()
    s.handle(ev.ResponseStarted("r1"), 1.0)
    out = speak(s, 1000, 1.0)
    s.handle(ev.AgentTranscript("r1", "i1", "a b c d e f g h i j"), 1.0)
    ack_all(s, out, 1.3, upto=10)  # 200 ms of 1000
    end = s.handle(ev.CallerHangup(), 1.3)
    assert of(end, act.JournalTurn) == [act.JournalTurn("agent", "a b", 1.0, interrupted=True)]
    assert of(end, act.HangUp) == [act.HangUp("caller hung up", "completed")]


def test_max_duration() -> None:
    s = started(SessionConfig(max_duration_s=60))
    assert s.next_deadline() == 60.0
    assert of(s.handle_timer(60.0), act.HangUp)[0].reason == "maximum call duration reached"


def test_start_failure_ends_the_call_with_the_reason() -> None:
    s = CallSession(SessionConfig())
    s.handle(ev.CallStarted("CA1", "MZ1"), 0.0)
    out = s.handle(ev.StartFailed("prompt 'support' needs variables not provided: x"), 0.0)
    assert of(out, act.HangUp)[0].status == "failed"
    assert of(out, act.JournalEvent)[0].data["message"].startswith("prompt")


def test_heard_audio_is_refined_between_marks_but_never_past_the_next_one() -> None:
    s = started()
    s.handle(ev.ResponseStarted("r1"), 1.0)
    out = speak(s, 1000, 1.0)
    ack_all(s, out, 1.5, upto=23)  # mark at 460 ms acknowledged at t=1.5
    assert s.ledger.heard_ms("i1", 1.512) == 472  # 12 ms into the next chunk
    assert s.ledger.heard_ms("i1", 1.9) == 480  # capped: the 480 ms mark is not acknowledged
    barge = s.handle(ev.SpeechStarted("u2"), 1.507)
    assert of(barge, act.TruncateAgent) == [act.TruncateAgent("i1", 467)]


def test_flushed_mark_echoes_do_not_move_the_clock() -> None:
    s = started()
    s.handle(ev.ResponseStarted("r1"), 1.0)
    out = speak(s, 200, 1.0)
    ack_all(s, out, 1.1, upto=2)
    s.handle(ev.SpeechStarted("u2"), 1.105)
    ack_all(s, out, 5.0)  # the carrier echoes the flushed marks much later
    assert s.ledger.heard_ms("i1", 5.0) == 40
