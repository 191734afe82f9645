"""End-to-end harness: the real bridge app on loopback, a fake OpenAI Realtime server, a real
tool-webhook service and a Twilio caller with a playback clock."""

from __future__ import annotations

import contextlib
import textwrap
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from bridge.api.app import create_app
from bridge.config import Settings
from bridge.simulate.caller import SimulatedCaller, TwilioCaller
from tests.auth import SECRET_KEY, authorize
from tests.servers import ToolService, serve
from tests.waiting import until

TOOL_SECRET = "e2e-tool-secret"

LOOKUP_ORDER = """
        [[tools]]
        name = "lookup_order"
        description = "Look up an order by its number."
        webhook = "{tools}/tools/lookup_order"
        timeout_s = 2
        parameters = {{ type = "object", properties = {{ order_id = {{ type = "string" }} }} }}
"""
"""The tool several test agents offer, pointed at the test's tool service ({tools})."""

AGENTS: dict[str, str] = {
    "greeter": """
        instructions = "You are the phone receptionist of Acme. Keep answers short."
        initial_message = "Thanks for calling Acme. How can I help you today?"
    """,
    "listener": """
        instructions = "You are a helpful phone agent."
        tool_secret_env = "E2E_TOOL_SECRET"

        [[tools]]
        name = "lookup_order"
        description = "Look up an order by its number."
        webhook = "{tools}/tools/lookup_order"
        timeout_s = 2
        parameters = {{ type = "object", properties = {{ order_id = {{ type = "string" }} }}, required = ["order_id"] }}
    """,
    "slow_tool": """
        instructions = "You are a helpful phone agent."
        tool_secret_env = "E2E_TOOL_SECRET"

        [[tools]]
        name = "lookup_order"
        description = "Look up an order by its number."
        webhook = "{tools}/tools/lookup_order"
        timeout_s = 0.5
        parameters = {{ type = "object", properties = {{ order_id = {{ type = "string" }} }} }}
    """,
    "hifi": """
        instructions = "You are a helpful phone agent."
        audio_format = "pcm16/24000"
    """,
    "needs_name": """
        prompt = "personal"
    """,
    "eleven": """
        engine = "elevenlabs"
        instructions = "You are the receptionist of Acme. Keep answers short."
        initial_message = "Thanks for calling Acme. How can I help you today?"
        tool_secret_env = "E2E_TOOL_SECRET"

        [elevenlabs]
        agent_id = "agent_acme"

    """
    + LOOKUP_ORDER,
    "eleven_private": """
        engine = "elevenlabs"
        instructions = "You are a helpful phone agent."
        fallback = "offline"

        [elevenlabs]
        agent_id = "agent_private"
        private = true
        overrides = ["prompt"]
    """,
    "cascade": """
        engine = "pipeline"
        instructions = "You are the receptionist of Acme. Keep answers short."
        initial_message = "Thanks for calling Acme. How can I help you today?"
        keywords = ["Acme"]
        tool_secret_env = "E2E_TOOL_SECRET"
        fallback = "offline"
        temperature = 0.4

        [stt]
        provider = "deepgram"

        [llm]
        provider = "openai"
        model = "gpt-4o-mini"

        [tts]
        provider = "elevenlabs"
        voice = "voice_acme"

    """
    + LOOKUP_ORDER,
    "offline": """
        engine = "pipeline"
        instructions = "A scripted stand-in."
        initial_message = "Hello, this is the backup line. How can I help?"

        [dialog]
        fallback = "Sorry, I did not catch that."

        [[dialog.intents]]
        name = "status"
        examples = ["what is the status of order a one two three four"]
        reply = "Your order has shipped and will arrive on friday."

        [[dialog.intents]]
        name = "bye"
        examples = ["goodbye"]
        reply = "Goodbye."
        end_call = true
    """,
}
PROMPTS = {"personal": "You are calling {{customer_name}} about their order."}


@dataclass
class Bridge:
    """A running bridge: where to call it and how to read its journal."""

    ws_url: str
    http: httpx.AsyncClient
    app: Any

    def caller(self, **params: str) -> TwilioCaller:
        return TwilioCaller(self.ws_url, custom_parameters=params)

    def url(self, path: str, scheme: str = "ws") -> str:
        """``path`` on this bridge (``/telnyx/media``…) with ``scheme``."""
        host = self.ws_url.split("://", 1)[1].split("/", 1)[0]
        return f"{scheme}://{host}{path}"

    async def flush_journal(self) -> None:
        await self.app.state.services.journal.flush()

    async def call_record(self, call_sid: str) -> dict[str, Any]:
        """The journal entry of a finished call, fetched through the public API."""
        for _ in range(100):
            await self.flush_journal()
            listing = (await self.http.get("/v1/calls", params={"call_sid": call_sid})).json()
            if listing["calls"] and listing["calls"][0]["ended_at"]:
                detail = await self.http.get(f"/v1/calls/{listing['calls'][0]['id']}")
                return dict(detail.json())
            await __import__("asyncio").sleep(0.05)
        raise AssertionError(f"call {call_sid} never finished in the journal")


async def greeting(caller: SimulatedCaller, *, within_s: float = 15) -> bytes:
    """Wait for the agent's first words and for their end; return what the caller heard."""
    await caller.wait_for_agent_audio(min_bytes=8000, timeout=within_s)
    await caller.wait_until_quiet(quiet_s=0.6, timeout=20)
    return caller.played_ulaw()


async def say(
    caller: SimulatedCaller, ulaw: bytes, *, min_bytes: int = 16000, quiet_s: float = 0.6
) -> bytes:
    """Play caller audio; return the agent audio that came back, once the agent went quiet."""
    mark = len(caller.received_audio)
    await caller.play(ulaw)
    await until(lambda: len(caller.received_audio) > mark + min_bytes, 20, "the agent's answer")
    await caller.wait_until_quiet(quiet_s=quiet_s, timeout=20)
    return bytes(caller.received_audio[mark:])


@pytest.fixture
async def tools() -> AsyncIterator[tuple[ToolService, str]]:
    service = ToolService(secret=TOOL_SECRET)
    async with serve(service.app()) as hostport:
        yield service, f"http://{hostport}"


@contextlib.asynccontextmanager
async def run_bridge(
    tmp_path: Path,
    realtime_url: str,
    tools_url: str = "http://127.0.0.1:9",
    **overrides: Any,
) -> AsyncIterator[Bridge]:
    agents_dir, prompts_dir = tmp_path / "agents", tmp_path / "prompts"
    agents_dir.mkdir(exist_ok=True)
    prompts_dir.mkdir(exist_ok=True)
    for name, text in AGENTS.items():
        body = textwrap.dedent(text).format(tools=tools_url) if "{tools}" in text else text
        (agents_dir / f"{name}.toml").write_text(textwrap.dedent(body))
    for name, text in PROMPTS.items():
        (prompts_dir / f"{name}.md").write_text(text)
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'journal.db'}",
        agents_dir=agents_dir,
        prompts_dir=prompts_dir,
        default_agent="greeter",
        openai_api_key="sk-test",
        openai_realtime_url=realtime_url,
        secret_keys=(SECRET_KEY,),
        **overrides,
    )
    env: Mapping[str, str] = {"E2E_TOOL_SECRET": TOOL_SECRET}
    app = create_app(settings, env=env)
    async with (
        serve(app) as hostport,
        httpx.AsyncClient(base_url=f"http://{hostport}", timeout=10) as http,
    ):
        await authorize(app, http)
        yield Bridge(f"ws://{hostport}/twilio/media", http, app)
