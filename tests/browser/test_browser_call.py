"""A real browser calls the offline demo agent through the console page.

Headless chromium's fake microphone plays a synthesized WAV (silence through the greeting, then
one sentence); the page offers WebRTC to the bridge, plays the agent back and shows the live
transcript. The bridge's recogniser must hear the sentence (the journal says so), and the
browser must have received and played the agent's voice (its own level meter measured it)."""

from __future__ import annotations

import wave
from pathlib import Path
from typing import Any

import httpx

from bridge.api.app import create_app
from bridge.config import Settings
from tests.auth import SECRET_KEY, api_key, bearer
from tests.browser.conftest import REPO, LaunchBrowser, OpenPage
from tests.e2e.webrtc_caller import loopback_ice
from tests.servers import serve
from tests.speech import synthesize_pcm
from tests.waiting import until

__all__ = ["loopback_ice"]

RATE = 16000
SENTENCE = "I would like to book an appointment"


def caller_wav(path: Path, lead_s: float) -> Path:
    """Silence for ``lead_s`` (the greeting plays meanwhile), the sentence, two seconds more."""
    pcm = bytes(int(RATE * lead_s) * 2) + synthesize_pcm(SENTENCE, RATE) + bytes(RATE * 4)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(RATE)
        out.writeframes(pcm)
    return path


async def state(page: Any) -> dict[str, Any]:
    result: dict[str, Any] = await page.evaluate("() => ({...window.callbridgeConsole})")
    return result


async def test_browser_calls_the_demo_agent(
    tmp_path: Path,
    loopback_ice: None,
    launch_browser: LaunchBrowser,
    open_page: OpenPage,
    artifacts: Path,
) -> None:
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'journal.db'}",
        agents_dir=REPO / "agents",
        prompts_dir=REPO / "prompts",
        secret_keys=(SECRET_KEY,),
    )
    app = create_app(settings, env={})
    async with serve(app) as hostport:
        base = f"http://{hostport}"
        key = await api_key(app, scope="write")
        browser = await launch_browser(fake_audio=caller_wav(tmp_path / "caller.wav", 9.0))
        page, log = await open_page(
            browser, f"{base}/console/?agent=demo&processing=off", api_key=key
        )
        await page.wait_for_function("document.querySelector('#agent option[value=demo]')")
        await page.get_by_role("button", name="Call", exact=True).click()
        await page.wait_for_function("window.callbridgeConsole.state === 'live'", timeout=15000)
        # the caller's sentence comes back as a user turn in the live transcript
        user_turn = page.locator(".turn-user .turn-text").first
        await user_turn.wait_for(timeout=30000)
        agent_reply = page.locator(".turn-agent .turn-text").nth(1)
        await agent_reply.wait_for(timeout=20000)
        await page.wait_for_function(
            "window.callbridgeConsole.latencies.length >= 1", timeout=10000
        )
        played = await page.evaluate(
            "() => { const a = document.getElementById('agent-audio');"
            " return {paused: a.paused, time: a.currentTime}; }"
        )
        seen = await state(page)
        await page.screenshot(path=str(artifacts / "console-call.png"), full_page=True)
        await page.get_by_role("button", name="Hang up").click()
        await page.wait_for_function("window.callbridgeConsole.state === 'ended'")
        call_id = seen["callId"]

        await until(lambda: call_id not in app.state.services.live_calls, 10, "the call's end")
        await app.state.services.journal.flush()
        async with httpx.AsyncClient(base_url=base, timeout=10, headers=bearer(key)) as http:
            call = (await http.get(f"/v1/calls/{call_id}")).json()
        user_text = await user_turn.text_content()
        reply_text = await agent_reply.text_content()

    assert call["carrier"] == "webrtc" and call["agent"] == "demo"
    assert call["status"] == "completed", (
        call["status"],
        call["ended_at"],
        call["end_reason"],
        call["events"],
    )
    users = [t["text"] for t in call["transcript"] if t["role"] == "user"]
    assert users and users[0].startswith("i would like to book an appointment"), users
    assert user_text == users[0]
    assert reply_text is not None and reply_text.startswith("Which day"), reply_text
    # the browser received the agent's voice and played it
    assert seen["agentVoicedMs"] > 4000, seen
    assert played["paused"] is False and played["time"] > 5, played
    assert 0 < seen["latencies"][0]["ms"] < 5000, seen["latencies"]
    log.check()
