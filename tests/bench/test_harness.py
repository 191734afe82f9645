"""The pure parts of the fake engine and the load generator: events, script, schedule."""

from __future__ import annotations

import binascii
import typing

import orjson
import pytest

from bench import marker
from bench.engine_events import SESSION_DEFAULTS, Events, bench_call, merge_session, wire_format
from bench.fake_engine import PCM_DELTAS, SYNC_ULAW, Script
from bench.loadgen import CONNECTED, FRAME_S, DirectCall, Plan, Records, TwilioCall, up_payload
from bench.stamp import DOWN, UP, Stamper, read_stamp, read_stamps


@pytest.fixture(scope="module")
def validate() -> typing.Callable[[str], object]:
    realtime = pytest.importorskip("openai.types.realtime")

    def by_type(union: object) -> dict[str, typing.Any]:
        members = typing.get_args(typing.get_args(union)[0])
        return {typing.get_args(m.model_fields["type"].annotation)[0]: m for m in members}

    server = by_type(realtime.RealtimeServerEvent)

    def check(text: str) -> object:
        event = orjson.loads(text)
        model = server[event["type"]].model_validate(event)
        assert not model.model_extra, f"unexpected fields {sorted(model.model_extra)}"
        return model

    return check


def test_every_event_is_valid_ga(validate: typing.Callable[[str], object]) -> None:
    ev = Events(7)
    audio = Stamper(DOWN, 7, 5).fill(0, 123)
    texts = [
        ev.session("session.created", {"type": "realtime", "model": "gpt-realtime"}),
        ev.session("session.updated", {"type": "realtime", "instructions": "hi"}),
        ev.error("unknown_event", "nope", "evt_1"),
        ev.response("response.created", "resp_1", "in_progress"),
        ev.response("response.done", "resp_1", "cancelled", "turn_detected"),
        ev.output_item("response.output_item.added", "resp_1", "item_1", "in_progress"),
        ev.output_item("response.output_item.done", "resp_1", "item_1", "completed"),
        ev.content_part("response.content_part.added", "resp_1", "item_1", ""),
        ev.content_part("response.content_part.done", "resp_1", "item_1", "hello"),
        ev.audio_delta(ev.audio_delta_prefix("resp_1", "item_1"), audio),
        ev.item_event("response.output_audio.done", "resp_1", "item_1"),
        ev.item_event("response.output_audio_transcript.delta", "resp_1", "item_1", delta="hi"),
        ev.item_event("response.output_audio_transcript.done", "resp_1", "item_1", transcript="x"),
        ev.speech_started(1000, "item_2"),
        ev.speech_stopped(1800, "item_2"),
        ev.committed("item_2"),
        ev.user_item("item_2"),
        ev.user_transcript("item_2", "I have a question."),
        ev.truncated("item_1", 640),
        *ev.item_created(
            {
                "id": "abc",
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "Greet the caller."}],
            }
        ),
        *ev.item_created({"type": "message", "role": "system", "content": []}),
        ev.cleared(),
    ]
    for text in texts:
        validate(text)
    ids = [orjson.loads(t)["event_id"] for t in texts]
    assert len(set(ids)) == len(ids)


def test_audio_delta_carries_the_stamps() -> None:
    ev = Events(3)
    audio = Stamper(DOWN, 3, 5).fill(10, 555)
    event = orjson.loads(ev.audio_delta(ev.audio_delta_prefix("r", "i"), audio))
    stamps = read_stamps(binascii.a2b_base64(event["delta"]))
    assert [s.seq for s in stamps if s] == [10, 11, 12, 13, 14]


def test_merge_session_updates_only_given_fields() -> None:
    current = {"audio": {"input": {"format": "a"}, "output": {"voice": "marin"}}, "tools": [1]}
    merged = merge_session(current, {"audio": {"output": {"voice": "cedar"}}, "tools": []})
    assert merged == {
        "audio": {"input": {"format": "a"}, "output": {"voice": "cedar"}},
        "tools": [],
    }


def test_script_checks() -> None:
    Script().check()
    assert Script().deltas == 24
    assert Script().frames_per_delta == 5
    assert [Script().is_barge_turn(t) for t in range(5)] == [False, True, False, True, False]
    assert not any(Script(barge_every=0).is_barge_turn(t) for t in range(5))
    with pytest.raises(ValueError, match="multiple of 20"):
        Script(delta_ms=30).check()
    with pytest.raises(ValueError, match="turn_every_ms"):
        Script(turn_every_ms=3000).check()


def test_plan_schedule() -> None:
    plan = Plan(calls=4, t0=100.0, duration_s=10.0, ramp_rate=2.0, settle_s=1.0, tail_s=2.0)
    assert plan.ramp_end == 102.0
    assert (plan.window_start, plan.window_end, plan.audio_end) == (103.0, 113.0, 115.0)
    assert [plan.open_at(i) for i in range(4)] == [100.0, 100.5, 101.0, 101.5]
    assert [plan.phase(i) for i in range(4)] == pytest.approx([0, 0.005, 0.010, 0.015])
    first = plan.first_frame_at(1, 100.531)
    assert first >= 100.531
    assert first - 100.531 < FRAME_S
    assert ((first - 100.005) / FRAME_S) == pytest.approx(round((first - 100.005) / FRAME_S))


def test_twilio_messages_parse_with_the_bridge_codec() -> None:
    codec_mod = pytest.importorskip("bridge.carriers.twilio.codec")
    events = pytest.importorskip("bridge.session.events")
    plan = Plan(calls=1, t0=0.0, duration_s=1.0)
    call = TwilioCall(0, plan, Records(), agent="default", salt=0xABC)
    codec = codec_mod.TwilioCodec()
    assert codec.parse(CONNECTED) is None
    start = codec.parse(call.start_message())
    assert isinstance(start, events.CallStarted)
    assert start.custom_parameters["agent"] == "default"
    assert start.stream_sid.startswith("MZ") and len(start.stream_sid) == 34
    frame = Stamper(UP, 0).fill(0, 123)
    media = call.media_message(0, binascii.b2a_base64(frame, newline=False).decode(), 20)
    parsed = codec.parse(media)
    assert isinstance(parsed, events.CallerAudio)
    assert parsed.payload == frame
    mark_text = call.mark_message("m1")
    mark = codec.parse(mark_text)
    assert isinstance(mark, events.PlaybackMark)
    assert mark.name == "m1"
    stop_text = call.stop_message()
    assert isinstance(codec.parse(stop_text), events.CallerHangup)
    # start is "1"; every later message counts, as a string
    numbers = [orjson.loads(m)["sequenceNumber"] for m in (media, mark_text, stop_text)]
    assert numbers == ["2", "3", "4"]
    fields = orjson.loads(media)["media"]
    assert (fields["chunk"], fields["timestamp"], fields["track"]) == ("1", "20", "inbound")


def test_session_defaults_are_the_real_servers_24k_pcm() -> None:
    assert (
        wire_format(SESSION_DEFAULTS, "input") == wire_format(SESSION_DEFAULTS, "output") == "pcm"
    )
    ulaw = merge_session(SESSION_DEFAULTS, {"audio": {"input": {"format": {"type": "audio/pcmu"}}}})
    assert (wire_format(ulaw, "input"), wire_format(ulaw, "output")) == ("pcmu", "pcm")
    assert wire_format({"audio": {"output": {"format": {"type": "audio/x"}}}}, "output") == "pcm"
    assert wire_format({}, "input") == "pcm"


def test_bench_call_from_the_instructions() -> None:
    assert bench_call({"instructions": "You are Sam.\n\nbench_call=17\n"}) == 17
    assert bench_call({"instructions": "bench_call="}) is None
    assert bench_call({}) is None


def test_pcm_deltas_start_answers_with_a_sync_frame() -> None:
    first = binascii.a2b_base64(PCM_DELTAS[(5, True)])
    rest = binascii.a2b_base64(PCM_DELTAS[(5, False)])
    assert len(first) == len(rest) == 5 * 960
    assert first[:960] == marker.pcm_frame()
    assert first[960:] == rest[960:] == bytes(4 * 960)
    assert marker.ulaw_frame() == SYNC_ULAW


def test_up_payloads_carry_a_sync_every_second() -> None:
    stamper = Stamper(UP, 3)
    for n in (0, 1, 49, 50, 100):
        payload = binascii.a2b_base64(up_payload(stamper, n, 1234))
        stamp = read_stamp(payload)
        assert stamp is not None
        assert (stamp.call, stamp.seq) == (3, n)
        sync = n in (50, 100)
        assert (payload[16:] == SYNC_ULAW[16:]) is sync
        assert (payload[16:] == b"\xff" * 144) is not sync
    assert binascii.a2b_base64(up_payload(None, 7, 0)) == b"\xff" * 160
    assert binascii.a2b_base64(up_payload(None, 50, 0)) == SYNC_ULAW


def test_the_baseline_session_update_is_valid_ga() -> None:
    realtime = pytest.importorskip("openai.types.realtime")
    from pydantic import TypeAdapter

    call = DirectCall(9, Plan(calls=10, t0=0.0, duration_s=1.0), Records())
    event = TypeAdapter(realtime.RealtimeClientEvent).validate_json(call.session_update())
    assert event.type == "session.update"
    assert bench_call(orjson.loads(call.session_update())["session"]) == 9
