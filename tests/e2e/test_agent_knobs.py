"""The agent's behaviour knobs through the served app: the offline engine greets after its delay,
asks a silent caller whether they are still there, then hangs up.

The caller is the simulator's Twilio caller, which says nothing at all (real-time line silence)
and plays what it gets on its own playback clock, echoing the marks as Twilio does.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import httpx

from bridge.api.app import create_app
from bridge.config import Settings
from bridge.session.core import IDLE_END_REASON
from bridge.simulate.caller import TwilioCaller
from tests.auth import SECRET_KEY, authorize
from tests.servers import serve
from tests.waiting import until

DELAY_S = 0.8
IDLE_S = 0.6
AGENT = f"""
    engine = "pipeline"
    instructions = "A scripted receptionist."
    initial_message = "Hello, you have reached Acme."
    initial_message_delay_s = {DELAY_S}
    idle_time_seconds = {IDLE_S}
    max_idle_check_count = 2
    idle_message = "Are you still there, {{{{name}}}}?"

    [variables]
    name = "caller"

    [dialog]
    fallback = "Sorry, I did not catch that."

    [[dialog.intents]]
    name = "bye"
    examples = ["goodbye"]
    reply = "Goodbye."
    end_call = true
"""


async def test_delayed_greeting_idle_checks_then_the_call_ends(tmp_path: Path) -> None:
    agents, prompts = tmp_path / "agents", tmp_path / "prompts"
    agents.mkdir()
    prompts.mkdir()
    (agents / "patient.toml").write_text(textwrap.dedent(AGENT))
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'journal.db'}",
        agents_dir=agents,
        prompts_dir=prompts,
        default_agent="patient",
        secret_keys=(SECRET_KEY,),
    )
    app = create_app(settings, env={})
    async with (
        serve(app) as hostport,
        httpx.AsyncClient(base_url=f"http://{hostport}", timeout=10) as http,
    ):
        await authorize(app, http)
        caller = TwilioCaller(f"ws://{hostport}/twilio/media", custom_parameters={"name": "Ada"})
        async with caller.connect():
            await until(caller.closed_by_bridge.is_set, 30, "the bridge to hang up")
        call = await finished(app, http, caller.call_sid)

    # the caller heard nothing until the delay after the engine was ready had passed
    events = {e["kind"]: e for e in call["events"]}  # the last of each kind
    ready = events["engine_ready"]["time_in_call_secs"]
    assert caller.greeting_latency_ms is not None
    assert caller.greeting_latency_ms >= (ready + DELAY_S) * 1000
    assert caller.violations == []

    said = [(t["role"], t["text"]) for t in call["transcript"]]
    assert said == [
        ("agent", "Hello, you have reached Acme."),
        ("agent", "Are you still there, Ada?"),
        ("agent", "Are you still there, Ada?"),
    ]
    assert call["status"] == "completed"
    assert call["end_reason"] == IDLE_END_REASON

    checks = [e for e in call["events"] if e["kind"] == "idle_check"]
    assert [c["data"]["count"] for c in checks] == [1, 2]
    # each check (and the hang-up) came a silent period after the words before it had played
    turns = [t["time_in_call_secs"] for t in call["transcript"]]
    asked = [c["time_in_call_secs"] for c in checks]
    ended = events["ended"]["time_in_call_secs"]
    for spoke, next_at in zip(turns, [*asked, ended], strict=True):
        assert next_at - spoke >= IDLE_S + 0.5  # the words took a while to play, then silence
    assert events["ended"]["data"] == {"reason": IDLE_END_REASON, "status": "completed"}


async def finished(app: Any, http: httpx.AsyncClient, call_sid: str) -> dict[str, Any]:
    """The journal entry of the call once the bridge is done with it (through the public API)."""
    services = app.state.services
    await until(lambda: not services.running, 10, "the call to be finished")
    await services.journal.flush()
    (listed,) = (await http.get("/v1/calls", params={"call_sid": call_sid})).json()["calls"]
    return dict((await http.get(f"/v1/calls/{listed['id']}")).json())
