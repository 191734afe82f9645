"""Control-plane events in the call core: hang up, say, inject, mute, transfer."""

from __future__ import annotations

from bridge.session import actions as act
from bridge.session import events as ev
from bridge.session.state import CallState
from tests.session.test_core import CHUNK, ack_all, of, speak, started


def test_hang_up_request_ends_the_call_with_its_reason() -> None:
    s = started()
    out = s.handle(ev.HangUpRequested("done here"), 2.0)
    assert of(out, act.HangUp) == [act.HangUp("done here", "completed")]
    assert s.state is CallState.ENDED


def test_say_waits_for_the_response_in_flight() -> None:
    s = started()
    s.handle(ev.ResponseStarted("r1"), 1.0)
    out = s.handle(ev.SayRequested("Please hold."), 1.0)
    assert not of(out, act.CreateResponse)
    out = s.handle(ev.ResponseDone("r1"), 2.0)
    assert of(out, act.CreateResponse) == [act.CreateResponse(None, "Please hold.")]


def test_say_with_interrupt_cuts_the_agent_and_speaks_at_once() -> None:
    s = started()
    s.handle(ev.ResponseStarted("r1"), 1.0)
    speak(s, 200, 1.0)
    out = s.handle(ev.SayRequested("Sorry to interrupt.", interrupt=True), 1.1)
    assert of(out, act.ClearPlayback) and of(out, act.CancelResponse)
    assert of(out, act.CreateResponse) == [act.CreateResponse(None, "Sorry to interrupt.")]
    assert [e.kind for e in of(out, act.JournalEvent)][-1] == "interrupted"
    # the cut response's late audio is dropped
    assert not of(speak(s, 20, 1.2), act.PlayAudio)


def test_say_then_hang_up_ends_once_the_words_have_played() -> None:
    s = started()
    out = s.handle(ev.SayRequested("Call us back.", then_hang_up=True), 1.0)
    assert s.state is CallState.ENDING and of(out, act.CreateResponse)
    assert not of(s.handle(ev.ResponseStarted("r2"), 1.1), act.HangUp)
    audio = speak(s, 100, 1.1, rid="r2", iid="i2")
    s.handle(ev.AgentAudioDone("r2", "i2"), 1.2)
    assert not of(s.handle(ev.ResponseDone("r2"), 1.2), act.HangUp)
    end = ack_all(s, audio, 1.3)
    (hangup,) = of(end, act.HangUp)
    assert hangup.reason == "the agent said its last words (control)"


def test_say_before_the_engine_is_ready_is_said_when_it_is() -> None:
    s = started(ready=False)
    assert not of(s.handle(ev.SayRequested("Hi."), 0.5), act.CreateResponse)
    out = s.handle(ev.EngineReady(), 0.6)
    assert act.CreateResponse(None, "Hi.") in out


def test_injected_messages() -> None:
    s = started()
    out = s.handle(ev.MessageInjected("system", "The caller is a VIP.", respond=False), 1.0)
    assert of(out, act.AddSystemText) and not of(out, act.CreateResponse)
    assert not of(out, act.JournalTurn)
    out = s.handle(ev.MessageInjected("user", "Cancel my order."), 2.0)
    assert of(out, act.AddUserText) == [act.AddUserText("Cancel my order.")]
    assert of(out, act.JournalTurn)[0].text == "Cancel my order."
    assert of(out, act.CreateResponse)


def test_muted_sides_are_silence() -> None:
    s = started()
    s.handle(ev.MuteChanged(caller=True), 1.0)
    sent = s.caller_audio(b"\x10" * CHUNK)
    assert sent is not None and sent.payload == b"\x00" * CHUNK  # the config's pad byte
    s.handle(ev.MuteChanged(caller=False, agent=True), 1.0)
    assert s.caller_audio(b"\x10" * CHUNK) == act.SendAudio(b"\x10" * CHUNK)
    s.handle(ev.ResponseStarted("r1"), 1.0)
    played = of(speak(s, 40, 1.0), act.PlayAudio)
    assert played and all(set(p.payload) == {0} for p in played)


def test_transferred_ends_the_call_as_transferred() -> None:
    s = started()
    out = s.handle(ev.Transferred("+15550002222"), 3.0)
    assert of(out, act.HangUp) == [act.HangUp("transferred to +15550002222", "transferred")]
