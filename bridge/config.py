"""Server settings, read once from the environment (``CALLBRIDGE_*``, ``OPENAI_API_KEY``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import orjson

from bridge.errors import ConfigError

ICE_FIELDS = frozenset({"urls", "username", "credential"})

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./var/callbridge.db"
DEFAULT_OPENAI_REALTIME_URL = "wss://api.openai.com/v1/realtime"


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the server needs to know that is not an agent definition."""

    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    database_url: str = DEFAULT_DATABASE_URL
    agents_dir: Path = Path("agents")
    prompts_dir: Path = Path("prompts")
    recordings_dir: Path = Path("var/recordings")
    """Where call recordings go (agents with ``record = true``): one WAV file per call, named
    after the call id."""
    default_agent: str = "demo"
    openai_api_key: str | None = None
    openai_realtime_url: str = DEFAULT_OPENAI_REALTIME_URL
    openai_base_url: str = "https://api.openai.com/v1"
    """Chat-completions endpoint of the cascaded engine's ``openai`` LLM (any compatible server)."""
    summary_model: str = "gpt-4o-mini"
    """Model of post-call summaries made with ``OPENAI_API_KEY`` (an agent's ``[llm]`` wins)."""
    webhook_timeout_s: float = 10.0
    """Event webhooks: one delivery attempt's time limit."""
    webhook_max_attempts: int = 12
    """Event webhooks: attempts before a delivery is given up (``dead``)."""
    webhook_backoff_s: float = 2.0
    """Event webhooks: the wait before the first retry; doubled each time, with jitter."""
    webhook_backoff_max_s: float = 3600.0
    """Event webhooks: the longest wait between two attempts."""
    webhook_poll_s: float = 2.0
    """How often the webhook and post-call workers look for work other workers queued."""
    elevenlabs_api_key: str | None = None
    elevenlabs_url: str = "https://api.elevenlabs.io"
    """ElevenLabs host: the Agents websocket (ws/wss) and TTS (http/https) derive from it."""
    deepgram_api_key: str | None = None
    deepgram_url: str = "wss://api.deepgram.com"
    telnyx_api_key: str | None = None
    """Telnyx API v2 key: with it, a call the agent ends is hung up over Call Control."""
    telnyx_api_url: str = "https://api.telnyx.com"
    plivo_auth_id: str | None = None
    plivo_auth_token: str | None = None
    """Plivo credentials: with them, a call the agent ends is hung up over Plivo's REST API."""
    plivo_api_url: str = "https://api.plivo.com"
    audiosocket_host: str = "127.0.0.1"
    audiosocket_port: int | None = None
    """TCP port of the Asterisk AudioSocket listener (``None``: no listener; 0: any free port)."""
    audiosocket_rate: int = 8000
    """Sample rate the AudioSocket listener speaks (the dialplan application: always 8000)."""
    audiosocket_agent: str | None = None
    """Agent for AudioSocket calls (AudioSocket carries only a UUID); the default agent if unset."""
    ice_servers: tuple[dict[str, Any], ...] = ()
    """STUN/TURN servers for browser calls, as the browser's ``RTCIceServer`` dicts
    (``CALLBRIDGE_ICE_SERVERS``, a JSON list). Empty: host candidates only (same machine/LAN)."""
    public_url: str | None = None
    """The bridge's public base URL as carriers reach it (``https://bridge.example.com``): the
    URL Twilio signs its webhooks against, and the base of the stream URL in TwiML. Behind a
    proxy that rewrites host or scheme, this is the outside one. Unset: taken from each request
    (``X-Forwarded-Proto``/``-Host`` when present)."""
    secret_keys: tuple[str, ...] = ()
    """Fernet keys (``CALLBRIDGE_SECRET_KEY``, comma-separated, newest first): encrypt stored
    provider credentials and sign expiring URLs. Unset: read from (or created in)
    ``secret_key_file``."""
    secret_key_file: Path = Path("var/secret.key")
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    """The default organization's Twilio account when it stored no credential of its own."""
    twilio_api_url: str = "https://api.twilio.com"
    rate_limit_per_minute: int = 600
    """Requests per minute one API key may make (per worker); beyond it: 429."""
    campaign_tick_s: float = 1.0
    """How often the campaign dialer looks for numbers to dial and calls that ended."""
    start_timeout_s: float = 10.0
    """A media stream must send ``start`` within this time."""
    max_calls: int = 200
    """Admission cap per worker: calls beyond it are refused cleanly."""
    log_level: str = "info"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Settings:
        def number(name: str, default: float) -> float:
            raw = env.get(name)
            if raw is None or raw == "":
                return default
            try:
                return float(raw)
            except ValueError:
                raise ConfigError(f"{name} must be a number, not {raw!r}") from None

        d = cls()
        return cls(
            host=env.get("CALLBRIDGE_HOST", d.host),
            port=int(number("CALLBRIDGE_PORT", d.port)),
            workers=int(number("CALLBRIDGE_WORKERS", d.workers)),
            database_url=env.get("CALLBRIDGE_DATABASE_URL") or d.database_url,
            agents_dir=Path(env.get("CALLBRIDGE_AGENTS_DIR", str(d.agents_dir))),
            prompts_dir=Path(env.get("CALLBRIDGE_PROMPTS_DIR", str(d.prompts_dir))),
            recordings_dir=Path(env.get("CALLBRIDGE_RECORDINGS_DIR") or d.recordings_dir),
            default_agent=env.get("CALLBRIDGE_DEFAULT_AGENT", d.default_agent),
            openai_api_key=env.get("OPENAI_API_KEY") or None,
            openai_realtime_url=env.get("CALLBRIDGE_OPENAI_REALTIME_URL") or d.openai_realtime_url,
            openai_base_url=env.get("CALLBRIDGE_OPENAI_BASE_URL") or d.openai_base_url,
            summary_model=env.get("CALLBRIDGE_SUMMARY_MODEL") or d.summary_model,
            webhook_timeout_s=number("CALLBRIDGE_WEBHOOK_TIMEOUT_S", d.webhook_timeout_s),
            webhook_max_attempts=int(
                number("CALLBRIDGE_WEBHOOK_MAX_ATTEMPTS", d.webhook_max_attempts)
            ),
            webhook_backoff_s=number("CALLBRIDGE_WEBHOOK_BACKOFF_S", d.webhook_backoff_s),
            webhook_backoff_max_s=number(
                "CALLBRIDGE_WEBHOOK_BACKOFF_MAX_S", d.webhook_backoff_max_s
            ),
            webhook_poll_s=number("CALLBRIDGE_WEBHOOK_POLL_S", d.webhook_poll_s),
            elevenlabs_api_key=env.get("ELEVENLABS_API_KEY") or None,
            elevenlabs_url=env.get("CALLBRIDGE_ELEVENLABS_URL") or d.elevenlabs_url,
            deepgram_api_key=env.get("DEEPGRAM_API_KEY") or None,
            deepgram_url=env.get("CALLBRIDGE_DEEPGRAM_URL") or d.deepgram_url,
            telnyx_api_key=env.get("TELNYX_API_KEY") or None,
            telnyx_api_url=env.get("CALLBRIDGE_TELNYX_API_URL") or d.telnyx_api_url,
            plivo_auth_id=env.get("PLIVO_AUTH_ID") or None,
            plivo_auth_token=env.get("PLIVO_AUTH_TOKEN") or None,
            plivo_api_url=env.get("CALLBRIDGE_PLIVO_API_URL") or d.plivo_api_url,
            audiosocket_host=env.get("CALLBRIDGE_AUDIOSOCKET_HOST", d.audiosocket_host),
            audiosocket_port=(
                int(number("CALLBRIDGE_AUDIOSOCKET_PORT", 0))
                if env.get("CALLBRIDGE_AUDIOSOCKET_PORT")
                else None
            ),
            audiosocket_rate=int(number("CALLBRIDGE_AUDIOSOCKET_RATE", d.audiosocket_rate)),
            audiosocket_agent=env.get("CALLBRIDGE_AUDIOSOCKET_AGENT") or None,
            ice_servers=ice_servers(env.get("CALLBRIDGE_ICE_SERVERS")),
            public_url=(env.get("CALLBRIDGE_PUBLIC_URL") or "").rstrip("/") or None,
            secret_keys=tuple(
                k.strip() for k in env.get("CALLBRIDGE_SECRET_KEY", "").split(",") if k.strip()
            ),
            secret_key_file=Path(env.get("CALLBRIDGE_SECRET_KEY_FILE", str(d.secret_key_file))),
            twilio_account_sid=env.get("TWILIO_ACCOUNT_SID") or None,
            twilio_auth_token=env.get("TWILIO_AUTH_TOKEN") or None,
            twilio_api_url=env.get("CALLBRIDGE_TWILIO_API_URL") or d.twilio_api_url,
            rate_limit_per_minute=int(
                number("CALLBRIDGE_RATE_LIMIT_PER_MINUTE", d.rate_limit_per_minute)
            ),
            campaign_tick_s=number("CALLBRIDGE_CAMPAIGN_TICK_S", d.campaign_tick_s),
            start_timeout_s=number("CALLBRIDGE_START_TIMEOUT_S", d.start_timeout_s),
            max_calls=int(number("CALLBRIDGE_MAX_CALLS", d.max_calls)),
            log_level=env.get("CALLBRIDGE_LOG_LEVEL", d.log_level),
        )

    def __post_init__(self) -> None:
        if self.public_url is not None and not self.public_url.startswith(("http://", "https://")):
            raise ConfigError(
                f"CALLBRIDGE_PUBLIC_URL must be an http(s) URL, not {self.public_url!r}"
            )

    def with_(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]


def ice_servers(raw: str | None) -> tuple[dict[str, Any], ...]:
    """``CALLBRIDGE_ICE_SERVERS``: a JSON list of ``{"urls": str | [str], "username"?,
    "credential"?}`` (the browser's ``RTCIceServer``), e.g.
    ``[{"urls": "stun:stun.example.org:3478"}]``."""
    if not raw:
        return ()
    problem = "CALLBRIDGE_ICE_SERVERS must be a JSON list of {urls, username?, credential?}"
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ConfigError(f"{problem}: it is not JSON") from None
    if not isinstance(value, list):
        raise ConfigError(problem)
    servers = []
    for item in value:
        if not isinstance(item, dict) or set(item) - ICE_FIELDS or "urls" not in item:
            raise ConfigError(f"{problem}: {str(item)[:80]}")
        urls = item["urls"]
        urls = [urls] if isinstance(urls, str) else urls
        if not urls or not all(
            isinstance(u, str) and u.split(":", 1)[0] in ("stun", "stuns", "turn", "turns")
            for u in urls
        ):
            raise ConfigError(f"{problem}: urls must be stun:/turn: URLs, not {urls!r}"[:200])
        servers.append({**item, "urls": list(urls)})
    return tuple(servers)
