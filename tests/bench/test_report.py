"""Summaries, ratios and tables over hand-made run results; the modes' agent files."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from bench import report
from bench.ga_check import check_client_events
from bench.targets import MODES, force_format


def lat(p50: float, p99: float) -> dict[str, Any]:
    return {"count": 100, "p50": p50, "p99": p99, "p999": p99, "max": p99, "mean": p50}


def run(target: str, up: float, down: float, cpu: float, lost: int = 0) -> dict[str, Any]:
    return {
        "n": 50,
        "target": target,
        "method": "stamps",
        "up": {"latency_ms": lat(up, 2 * up), "sent": 1000, "lost": lost},
        "down": {
            "latency_ms": lat(down, 2 * down),
            "answer_onset_ms": lat(down, down),
            "sent": 500,
            "lost": 0,
            "dropped_on_barge_in": 7,
        },
        "bridge": {"cpu_s_per_call_s": cpu, "rss_per_call_kib": 200.0},
        "cpu": {k: {"core_pct": 10.0} for k in ("bridge", "loadgen", "engine", "others")},
        "first_audio_ms": lat(3.0, 5.0),
        "clear_ms": lat(0.5, 1.0),
        "clear_missed": 0,
        "loadgen": {
            "send_late_ms": lat(0.1, 1.0),
            "failures": 0,
            "early_closes": 0,
            "frames_sent": 5000,
            "messages_received": {"media": 5000, "mark": 5000, "clear": 10},
        },
        "engine": {"client_events": {"input_audio_buffer.append": 5000}},
    }


def test_point_summary_subtracts_the_baseline() -> None:
    base = run("baseline", 0.2, 0.3, 0.0)
    row = report.point_summary(run("callbridge", 0.5, 1.3, 0.008), base, quiet_limit=15.0)
    assert row["up"]["added_ms"]["p50"] == pytest.approx(0.3)
    assert row["down"]["added_ms"]["p99"] == pytest.approx(2.0)
    assert row["down"]["answer_onset_added_ms"]["p50"] == pytest.approx(1.0)
    assert row["down"]["dropped_on_barge_in"] == 7
    assert row["twilio_msgs_per_call_s"] == {"clear": 0.1, "mark": 50.0, "media": 50.0}
    assert row["engine_events_per_call_s"] == {"input_audio_buffer.append": 50.0}
    assert not row["noisy"]


def test_ratios_pipecat_over_callbridge(capsys: pytest.CaptureFixture[str]) -> None:
    base = run("baseline", 0.2, 0.3, 0.0)
    ours = report.point_summary(run("callbridge", 0.5, 1.3, 0.008), base, 15.0)
    peer = report.point_summary(run("pipecat", 80.2, 500.3, 0.026, lost=3), base, 15.0)
    rows = report.ratios([ours], [peer])
    assert len(rows) == 1
    r = rows[0]
    assert r["up added p50 ms"] == {"callbridge": 0.3, "pipecat": 80.0, "ratio": 266.67}
    assert r["CPU ms per call-s"]["ratio"] == pytest.approx(3.25)
    assert r["RSS KiB per call"]["ratio"] == 1.0
    assert r["frames lost (up+down)"] == {"callbridge": 0, "pipecat": 3, "ratio": None}
    report.print_table([ours], "callbridge")
    report.print_table([peer], "pipecat")
    report.print_ratios(rows)
    out = capsys.readouterr().out
    assert "×266.7" in out
    assert "pipecat" in out


def test_ratio_needs_a_denominator() -> None:
    assert report.ratios([], []) == []
    small = copy.deepcopy(report.point_summary(run("callbridge", 0.2, 0.3, 0.008), None, 15.0))
    assert report.stop_reason(small) is None
    small["up"]["lost"] = 2
    assert report.stop_reason(small) == "2 up frames lost"


def test_force_format_sets_a_top_level_key(tmp_path: Path) -> None:
    toml = 'engine = "openai_realtime"\naudio_format = "pcmu"\n\n[variables]\nx = "1"\n'
    out = force_format(toml, "pcm16/24000")
    assert out.count("audio_format") == 1
    assert out.index('audio_format = "pcm16/24000"') < out.index("[variables]")
    env = MODES["transcode"].bridge_env(tmp_path)
    agent = (Path(env["CALLBRIDGE_AGENTS_DIR"]) / "default.toml").read_text()
    assert 'audio_format = "pcm16/24000"' in agent
    prompt = (Path(env["CALLBRIDGE_PROMPTS_DIR"]) / "default.md").read_text()
    assert prompt.endswith("bench_call={{bench_call}}\n")
    assert MODES["passthrough"].bridge_env(tmp_path) == {}
    assert MODES["passthrough"].stamps
    assert not MODES["transcode"].stamps


def test_the_transcode_agent_loads_in_the_bridge(tmp_path: Path) -> None:
    loader = pytest.importorskip("bridge.agents.loader")
    env = MODES["transcode"].bridge_env(tmp_path)
    agent = loader.load_agent(
        Path(env["CALLBRIDGE_AGENTS_DIR"]) / "default.toml",
        Path(env["CALLBRIDGE_PROMPTS_DIR"]),
        {},
    )
    assert getattr(agent, "audio_format", "pcm16/24000") == "pcm16/24000"


def test_ga_check_flags_what_is_not_ga() -> None:
    pytest.importorskip("openai.types.realtime")
    samples = {
        # what Pipecat 1.14 sent the fake engine (ids shortened)
        "session.update": {
            "event_id": "e1",
            "type": "session.update",
            "session": {
                "type": "realtime",
                "model": "gpt-realtime",
                "output_modalities": ["audio"],
                "instructions": "bench_call=0",
                "audio": {
                    "input": {
                        "format": {"type": "audio/pcm", "rate": 24000},
                        "transcription": {"model": "gpt-4o-mini-transcribe", "language": "en"},
                        "noise_reduction": {"type": "near_field"},
                        "turn_detection": {"type": "server_vad", "threshold": 0.5},
                    },
                    "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "marin"},
                },
            },
        },
        "input_audio_buffer.append": {"type": "input_audio_buffer.append", "audio": "<8800>"},
        "response.create": {
            "type": "response.create",
            "response": {"output_modalities": ["audio"]},
        },
        "conversation.item.truncate": {
            "type": "conversation.item.truncate",
            "item_id": "item_1",
            "content_index": 0,
            "audio_end_ms": 999,
        },
    }
    assert set(check_client_events(samples).values()) == {"ok"}
    samples["session.update"]["session"]["input_audio_format"] = "pcm16"  # a beta field
    samples["response.audio.delta"] = {}
    checked = check_client_events(samples)
    assert checked["session.update"] == {"fields not in GA": ["session.input_audio_format"]}
    assert checked["response.audio.delta"] == "not a GA client event"
