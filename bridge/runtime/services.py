"""What every call of a server shares: settings, agents, journal, tools, engine factories."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from twilio.http import AsyncHttpClient

from bridge.agents.loader import AgentRegistry
from bridge.agents.model import Agent
from bridge.agents.template import RenderedAgent
from bridge.config import Settings
from bridge.engines.base import EngineClient
from bridge.errors import CallbridgeError, ConfigError
from bridge.journal.control import ControlStore, open_credential
from bridge.journal.store import JournalError
from bridge.journal.writer import JournalWriter
from bridge.runtime.engines import ENGINE_FACTORIES, EngineFactory
from bridge.secrets import SecretBox
from bridge.tools.webhook import ToolDispatcher

log = logging.getLogger(__name__)

ORG_KEYS = {
    "openai": "openai_api_key",
    "elevenlabs": "elevenlabs_api_key",
    "deepgram": "deepgram_api_key",
}
"""Stored credential (provider) → the setting it replaces for the organization's calls."""


class ControlRefused(CallbridgeError):
    """A live-call action that cannot be done now (the call is ending, the engine or the carrier
    cannot do it)."""


class LiveCall(Protocol):
    """What the control plane can do to a call this worker carries (a ``CallRuntime``'s
    ``CallControl``)."""

    @property
    def call_id(self) -> str: ...

    @property
    def org(self) -> str: ...

    async def hang_up(self, reason: str) -> None: ...

    async def say(
        self, text: str, *, interrupt: bool = False, then_hang_up: bool = False
    ) -> None: ...

    async def inject(self, role: str, text: str, *, respond: bool = True) -> None: ...

    async def mute(self, *, caller: bool | None = None, agent: bool | None = None) -> None: ...

    async def hold(self, on: bool) -> None: ...

    async def send_dtmf(self, digits: str) -> None: ...

    async def transfer(self, target: str) -> None: ...


@dataclass(slots=True)
class Services:
    """Shared, long-lived parts of a running server (one set per worker process)."""

    settings: Settings
    agents: AgentRegistry
    journal: JournalWriter
    tools: ToolDispatcher
    engine_factories: Mapping[str, EngineFactory] = field(
        default_factory=lambda: dict(ENGINE_FACTORIES)
    )
    control: ControlStore | None = None
    """Organizations, keys, numbers, routing, credentials (None: a bare runtime in tests)."""
    secrets: SecretBox | None = None
    """Credential encryption and signed tokens (None: stream tokens are not accepted)."""
    twilio_http: AsyncHttpClient | None = None
    """The ``twilio`` package's HTTP client (over the shared httpx client; tests fake it)."""
    live_calls: set[str] = field(default_factory=set)
    """Ids of the calls this worker is carrying now (the admission cap counts them)."""
    running: dict[str, LiveCall] = field(default_factory=dict)
    """The calls this worker carries, by journal id: live call control reaches them here."""
    on_call_end: list[Callable[[str], None]] = field(default_factory=list)

    async def org_settings(self, org: str) -> Settings:
        """The settings an organization's calls run with: its stored provider keys (OpenAI,
        ElevenLabs, Deepgram) in place of the server's; the server's where it stored none, or
        when the journal cannot be read (the call goes on)."""
        control, box = self.control, self.secrets
        if control is None or box is None:
            return self.settings
        keys: dict[str, Any] = {}
        try:
            for row in await control.list_credentials(org):
                field_name = ORG_KEYS.get(row.provider)
                key = open_credential(row, box).get("api_key") if field_name else None
                if field_name and key:
                    keys[field_name] = key
        except JournalError as exc:
            log.warning("organization %s: stored credentials unavailable: %s", org, exc)
            return self.settings
        return replace(self.settings, **keys) if keys else self.settings

    def make_engine(
        self,
        agent: Agent,
        rendered: RenderedAgent,
        *,
        carrier_format: str,
        call_id: str,
        settings: Settings | None = None,
    ) -> tuple[EngineClient, str]:
        """The engine client for this agent and the audio format it will speak (``settings``:
        the call's organization's, see :meth:`org_settings`)."""
        factory = self.engine_factories.get(agent.engine)
        if factory is None:
            known = ", ".join(sorted(self.engine_factories))
            raise ConfigError(
                f"agent {agent.name!r} names unknown engine {agent.engine!r} ({known})"
            )
        return factory(agent, rendered, settings or self.settings, carrier_format, call_id)
