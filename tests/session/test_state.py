"""Every state × every event: the core never raises and only makes allowed transitions."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.session import events as ev
from bridge.session.config import EngineCapabilities, SessionConfig
from bridge.session.core import CallSession
from bridge.session.state import ALLOWED, HANDLED, CallState

EVENTS: list[ev.Event] = [
    ev.CallStarted("CA1", "MZ1"),
    ev.CallerAudio(b"\xff" * 160),
    ev.CallerDtmf("5"),
    ev.CallerDtmf("#"),
    ev.PlaybackMark("m1"),
    ev.PlaybackMark("m2"),
    ev.CallerHangup(),
    ev.EngineReady(),
    ev.SpeechStarted("u1"),
    ev.SpeechStopped("u1"),
    ev.ResponseStarted("r1"),
    ev.AgentAudio("r1", "i1", b"\x00" * 200),
    ev.AgentAudioDone("r1", "i1"),
    ev.AgentTranscript("r1", "i1", "hello"),
    ev.AgentHeardText("i1", "hel"),
    ev.UserTranscript("u1", "hi"),
    ev.ResponseDone("r1"),
    ev.ToolCallRequested("c1", "lookup", "{}"),
    ev.ToolCallRequested("c2", "end_call", "{}"),
    ev.ToolResult("c1", "lookup", "{}", True),
    ev.EngineError("oops"),
    ev.EngineClosed("gone"),
    ev.StartFailed("no agent"),
    ev.EngineReplaced(EngineCapabilities(), "engine closed", "openai_realtime", "pipeline"),
    ev.EngineReplaced(
        EngineCapabilities(auto_response=True, heard_text=True, speaks_initial_message=True),
        "engine closed",
        "pipeline",
        "elevenlabs",
    ),
    ev.HangUpRequested("hung up by API"),
    ev.SayRequested("Please hold."),
    ev.SayRequested("Sorry we missed you.", interrupt=True, then_hang_up=True),
    ev.MessageInjected("user", "I want a refund"),
    ev.MessageInjected("system", "The caller is a VIP.", respond=False),
    ev.MuteChanged(caller=True),
    ev.MuteChanged(caller=False, agent=True),
    ev.Transferred("+15550001111"),
]


def test_every_event_type_is_known_to_the_table() -> None:
    handled = set().union(*HANDLED.values())
    assert {type(e) for e in EVENTS} == handled


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(EVENTS), max_size=40), st.data())
def test_any_event_sequence_is_safe(sequence: list[ev.Event], data: st.DataObject) -> None:
    session = CallSession(SessionConfig(tool_names=frozenset({"lookup"})))
    now = 0.0
    for event in sequence:
        before = session.state
        now += data.draw(st.floats(0, 2))
        session.handle(event, now)
        if data.draw(st.booleans()):
            session.handle_timer(now)
        after = session.state
        assert after == before or (before, after) in ALLOWED
        if before is CallState.ENDED:
            assert after is CallState.ENDED


def test_ended_ignores_everything() -> None:
    session = CallSession(SessionConfig())
    session.handle(ev.CallerHangup(), 0.0)
    assert session.state is CallState.ENDED
    for event in EVENTS:
        assert session.handle(event, 1.0) == []
