"""The agent's behaviour knobs in the call core: the greeting's delay, "are you still there?"
after a silence, and the call's maximum duration — all with the time passed in."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.session import actions as act
from bridge.session import events as ev
from bridge.session.config import EngineCapabilities, SessionConfig
from bridge.session.core import IDLE_END_REASON, CallSession
from bridge.session.state import ALLOWED, CallState
from tests.session.test_core import ack_all, of, speak, started
from tests.session.test_state import EVENTS

GREETING = "Thanks for calling Acme."
IDLE = "Are you still there?"


def knobs(**kw: object) -> SessionConfig:
    values: dict[str, object] = {
        "initial_message": GREETING,
        "idle_time_s": 5.0,
        "max_idle_checks": 2,
        "idle_message": IDLE,
        "tool_names": frozenset({"lookup_order"}),
    }
    values.update(kw)
    return SessionConfig(**values)  # type: ignore[arg-type]


def turn(s: CallSession, n: int, sent: float, played: float) -> list[act.Action]:
    """Agent response ``n``: 100 ms of audio sent at ``sent``, its marks played at ``played``."""
    rid, iid = f"r{n}", f"i{n}"
    s.handle(ev.ResponseStarted(rid), sent)
    audio = speak(s, 100, sent, rid=rid, iid=iid)
    s.handle(ev.AgentAudioDone(rid, iid), sent)
    s.handle(ev.ResponseDone(rid), sent)
    return ack_all(s, audio, played)


def kinds(actions: list[act.Action]) -> list[str]:
    return [a.kind for a in of(actions, act.JournalEvent)]


# -- the greeting's delay ---------------------------------------------------------------------


def test_greeting_is_asked_for_after_the_delay() -> None:
    s = started(knobs(initial_message_delay_s=2.0), ready=False)
    assert not of(s.handle(ev.EngineReady(), 0.5), act.CreateResponse)
    assert s.next_deadline() == pytest.approx(2.5)
    assert s.handle_timer(2.49) == []
    assert of(s.handle_timer(2.5), act.CreateResponse) == [act.CreateResponse(say=GREETING)]
    assert s.handle_timer(3.0) == []  # asked once


def test_without_a_delay_the_greeting_is_asked_for_at_once() -> None:
    s = started(knobs(), ready=False)
    assert of(s.handle(ev.EngineReady(), 0.5), act.CreateResponse) == [
        act.CreateResponse(say=GREETING)
    ]


@pytest.mark.parametrize(
    "first",
    [ev.SpeechStarted("u1"), ev.CallerDtmf("1"), ev.UserTranscript("u1", "hello?")],
    ids=["speech", "dtmf", "transcript"],
)
def test_the_caller_speaking_first_skips_the_greeting(first: ev.Event) -> None:
    s = started(knobs(initial_message_delay_s=2.0), ready=False)
    s.handle(ev.EngineReady(), 0.5)
    out = s.handle(first, 1.0)
    assert "greeting_skipped" in kinds(out)
    later = s.handle_timer(2.5)  # the engine answers them instead (DTMF: once flushed)
    assert act.CreateResponse(say=GREETING) not in later


def test_an_engine_that_greets_itself_gets_no_greeting_request() -> None:
    caps = EngineCapabilities(speaks_initial_message=True, auto_response=True)
    s = started(knobs(capabilities=caps, initial_message_delay_s=2.0), ready=False)
    assert not of(s.handle(ev.EngineReady(), 0.5), act.CreateResponse)
    assert not of(s.handle_timer(2.5), act.CreateResponse)


def test_a_greeting_not_yet_said_is_said_by_the_fallback_engine() -> None:
    s = started(knobs(initial_message_delay_s=2.0), ready=False)
    s.handle(ev.EngineReady(), 0.5)
    s.handle(ev.EngineReplaced(EngineCapabilities(), "engine closed", "a", "b"), 1.0)
    assert not of(s.handle_timer(2.5), act.CreateResponse)  # not to an engine still connecting
    s.handle(ev.EngineReady(), 3.0)
    assert s.next_deadline() == pytest.approx(5.0)
    assert of(s.handle_timer(5.0), act.CreateResponse) == [act.CreateResponse(say=GREETING)]


def test_no_greeting_once_the_call_is_ending() -> None:
    s = started(knobs(initial_message_delay_s=2.0), ready=False)
    s.handle(ev.EngineReady(), 0.5)
    s.handle(ev.SayRequested("We are closed.", then_hang_up=True), 1.0)
    assert s.state is CallState.ENDING
    assert act.CreateResponse(say=GREETING) not in s.handle_timer(2.5)


def test_no_idle_check_before_the_greeting() -> None:
    s = started(knobs(initial_message_delay_s=8.0), ready=False)
    s.handle(ev.EngineReady(), 0.0)
    assert s.next_deadline() == pytest.approx(8.0)  # the greeting, not a silence at 5 s


# -- silence ----------------------------------------------------------------------------------


def test_silence_after_the_agent_finished_playing_asks_then_hangs_up() -> None:
    s = started(knobs())  # greeting asked for at 0.1
    turn(s, 1, sent=0.2, played=1.0)  # its audio went out at once, played until 1.0
    assert s.next_deadline() == pytest.approx(6.0)  # silence counted from the end of playback
    assert s.handle_timer(5.9) == []
    first = s.handle_timer(6.0)
    assert of(first, act.CreateResponse) == [act.CreateResponse(say=IDLE)]
    (check,) = [e for e in of(first, act.JournalEvent) if e.kind == "idle_check"]
    assert check.data == {"count": 1, "text": IDLE}
    assert s.next_deadline() == pytest.approx(3600.0)  # nothing while the question is asked
    turn(s, 2, sent=6.1, played=7.0)
    second = s.handle_timer(12.0)
    assert of(second, act.CreateResponse) == [act.CreateResponse(say=IDLE)]
    turn(s, 3, sent=12.1, played=13.0)
    end = s.handle_timer(18.0)
    assert of(end, act.HangUp) == [act.HangUp(IDLE_END_REASON, "completed")]
    (ended,) = [e for e in of(end, act.JournalEvent) if e.kind == "ended"]
    assert ended.data == {"reason": IDLE_END_REASON, "status": "completed"}
    assert s.state is CallState.ENDED


def test_the_caller_speaking_starts_the_count_again() -> None:
    s = started(knobs(max_idle_checks=1))
    turn(s, 1, sent=0.2, played=1.0)
    assert of(s.handle_timer(6.0), act.CreateResponse)
    turn(s, 2, sent=6.1, played=7.0)
    s.handle(ev.SpeechStarted("u1"), 8.0)
    assert s.next_deadline() == pytest.approx(3600.0)  # no check while the caller speaks
    s.handle(ev.SpeechStopped("u1"), 9.0)
    s.handle(ev.UserTranscript("u1", "yes I am"), 9.5)
    turn(s, 3, sent=10.0, played=11.0)  # the agent answers
    out = s.handle_timer(16.0)
    assert not of(out, act.HangUp) and of(out, act.CreateResponse)  # one more question
    turn(s, 4, sent=16.1, played=17.0)
    assert of(s.handle_timer(22.0), act.HangUp)


def test_a_key_press_starts_the_count_again() -> None:
    s = started(knobs(max_idle_checks=0))
    turn(s, 1, sent=0.2, played=1.0)
    s.handle(ev.CallerDtmf("5"), 4.0)
    assert s.next_deadline() == pytest.approx(5.5)  # the digits go to the model first
    out = s.handle_timer(5.5)
    assert of(out, act.AddUserText) and of(out, act.CreateResponse)
    turn(s, 2, sent=5.6, played=6.0)
    assert s.next_deadline() == pytest.approx(11.0)
    assert of(s.handle_timer(11.0), act.HangUp)  # no checks at all: the silence ends the call


def test_audio_still_playing_is_not_silence() -> None:
    s = started(knobs())
    s.handle(ev.ResponseStarted("r1"), 0.2)
    audio = speak(s, 100, 0.2)
    s.handle(ev.AgentAudioDone("r1", "i1"), 0.2)
    s.handle(ev.ResponseDone("r1"), 0.2)
    assert s.next_deadline() == pytest.approx(3600.0)  # sent, not yet heard
    ack_all(s, audio, 30.0)  # a carrier far behind
    assert s.next_deadline() == pytest.approx(35.0)


def pause_with(s: CallSession, what: str) -> None:
    if what == "response":
        s.handle(ev.ResponseStarted("r9"), 2.0)
    elif what == "tool":
        s.handle(ev.ToolCallRequested("c1", "lookup_order", "{}"), 2.0)
    elif what == "hold":
        s.handle(ev.MuteChanged(caller=True, agent=True, interrupt=True), 2.0)
    elif what == "muted caller":
        s.handle(ev.MuteChanged(caller=True), 2.0)
    elif what == "caller speaking":
        s.handle(ev.SpeechStarted("u1"), 2.0)
    elif what == "ending":
        s.handle(ev.ToolCallRequested("c2", "end_call", "{}"), 2.0)


@pytest.mark.parametrize(
    "what", ["response", "tool", "hold", "muted caller", "caller speaking", "ending"]
)
def test_no_check_while_the_call_is_busy_or_paused(what: str) -> None:
    s = started(knobs())
    turn(s, 1, sent=0.2, played=1.0)
    pause_with(s, what)
    out = s.handle_timer(60.0)
    assert not of(out, act.CreateResponse)
    assert "idle_check" not in kinds(out)


def test_silence_counts_again_once_a_hold_ends() -> None:
    s = started(knobs())
    turn(s, 1, sent=0.2, played=1.0)
    pause_with(s, "hold")
    s.handle(ev.MuteChanged(caller=False, agent=False), 40.0)
    assert s.next_deadline() == pytest.approx(45.0)


def test_an_engine_that_cannot_be_given_words_is_never_asked() -> None:
    caps = EngineCapabilities(says_text=False, speaks_initial_message=True, auto_response=True)
    s = started(knobs(capabilities=caps))
    turn(s, 1, sent=0.2, played=1.0)
    assert s.next_deadline() == pytest.approx(3600.0)


def test_off_by_default() -> None:
    s = started(SessionConfig())
    turn(s, 1, sent=0.2, played=1.0)
    assert s.next_deadline() == pytest.approx(3600.0)


# -- maximum duration -------------------------------------------------------------------------


def test_max_duration_ends_mid_sentence_and_journals_why() -> None:
    s = started(knobs(max_duration_s=60.0))
    s.handle(ev.ResponseStarted("r1"), 59.0)
    audio = speak(s, 1000, 59.0)
    s.handle(ev.AgentTranscript("r1", "i1", "one two three four"), 59.0)
    ack_all(s, audio, 59.5, upto=25)  # half of it heard
    out = s.handle_timer(60.0)
    assert of(out, act.JournalTurn) == [act.JournalTurn("agent", "one two", 59.0, interrupted=True)]
    (ended,) = [e for e in of(out, act.JournalEvent) if e.kind == "ended"]
    assert ended.data == {"reason": "maximum call duration reached", "status": "completed"}
    assert of(out, act.HangUp) == [act.HangUp("maximum call duration reached", "completed")]
    assert s.next_deadline() is None


# -- every event, any order -------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(EVENTS), max_size=40), st.data())
def test_any_event_sequence_with_the_knobs_on_is_safe(
    sequence: list[ev.Event], data: st.DataObject
) -> None:
    config = knobs(initial_message_delay_s=1.0, idle_time_s=0.5, max_idle_checks=1)
    session = CallSession(config)
    now = 0.0
    for event in sequence:
        before = session.state
        now += data.draw(st.floats(0, 2))
        session.handle(event, now)
        if data.draw(st.booleans()):
            session.handle_timer(now)
            deadline = session.next_deadline()
            assert deadline is None or deadline > now  # nothing left overdue: no busy timer
        assert session.state == before or (before, session.state) in ALLOWED
