"""Read ``agents/<name>.toml`` (and the prompt it names) into :class:`~bridge.agents.model.Agent`.

Every problem is a :class:`~bridge.errors.ConfigError` whose message starts with the file and
the field, e.g. ``agents/support.toml: tools[0].webhook: must be an http or https URL``.
Unknown keys are errors too, so a misspelt setting never silently falls back to a default.

The loader reads files and the environment mapping it is given; it never reads ``os.environ``
itself, opens no sockets and reads no clock.
"""

from __future__ import annotations

import logging
import re
import tomllib
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bridge.agents.builtins import SEND_DTMF, TOOL_NAME, TRANSFER_CALL
from bridge.agents.call_keys import read_behaviour, read_transfer, read_voicemail, tool_names
from bridge.agents.collect import read_postcall
from bridge.agents.fields import Fields, choice, strings, type_name
from bridge.agents.model import (
    Agent,
    DialogIntent,
    DialogScript,
    DialogSlot,
    ElevenLabsSpec,
    PartSpec,
    ToolSpec,
)
from bridge.agents.template import is_variable_name
from bridge.errors import ConfigError

logger = logging.getLogger(__name__)

DEFAULT_SECRET_ENV = "CALLBRIDGE_TOOL_SECRET"
"""Environment variable holding the tool-webhook HMAC secret when an agent names none."""

RESERVED_TOOL_NAMES = frozenset({"end_call", TRANSFER_CALL, SEND_DTMF})
"""Built-in tools an agent may not redefine."""
AUDIO_FORMATS = ("pcmu", "pcma", "pcm16/8000", "pcm16/16000", "pcm16/24000")
"""Engine audio formats an agent may ask for (the engine must speak it too)."""

DEFAULT_ORGANIZATION = "default"
"""The organization of agents (and API keys) that name none."""
ORGANIZATION_ID = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
_AGENT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
_PROMPT_NAME = _AGENT_NAME  # a file name in prompts/, so no separators and no leading dot


_AGENT_KEYS = frozenset(
    {
        "name",
        "organization",
        "engine",
        "model",
        "voice",
        "language",
        "prompt",
        "instructions",
        "initial_message",
        "initial_message_delay_s",
        "idle_time_seconds",
        "max_idle_check_count",
        "idle_message",
        "summary",
        "collect_fields",
        "transcription_model",
        "temperature",
        "end_call",
        "max_duration_s",
        "dtmf_flush_s",
        "record",
        "audio_format",
        "tool_secret_env",
        "variables",
        "tools",
        "fallback",
        "keywords",
        "endpointing_sensitivity",
        "interrupt_sensitivity",
        "stt",
        "llm",
        "tts",
        "elevenlabs",
        "dialog",
        "voicemail",
        "transfer",
        "send_dtmf",
    }
)
ENGINES = ("openai_realtime", "elevenlabs", "pipeline")
PART_PROVIDERS = {
    "stt": ("local", "deepgram"),
    "llm": ("scripted", "openai"),
    "tts": ("local", "elevenlabs"),
}
"""Cascaded-engine parts: ``local`` = pocketsphinx / espeak-ng, ``scripted`` = the agent's
``[dialog]``, ``openai`` = any OpenAI-compatible chat-completions endpoint."""
_PART_KEYS = frozenset({"provider", "model", "voice", "base_url", "api_key_env"})
_ELEVENLABS_KEYS = frozenset({"agent_id", "private", "overrides", "voice_id"})
_DIALOG_KEYS = frozenset({"fallback", "phrases", "intents", "slots"})
_INTENT_KEYS = frozenset(
    {"name", "examples", "reply", "slots", "tool", "tool_error_reply", "end_call"}
)
_SLOT_KEYS = frozenset({"ask", "values"})
_TOOL_KEYS = frozenset({"name", "description", "webhook", "timeout_s", "parameters"})


def load_agent(path: Path, prompts_dir: Path, env: Mapping[str, str]) -> Agent:
    """Load one agent definition; ``env`` supplies the tool secret (pass ``os.environ``)."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not valid UTF-8 ({exc.reason})") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc

    fields = Fields(path, raw)
    fields.reject_unknown(_AGENT_KEYS)
    name = fields.string("name") or path.stem
    if not _AGENT_NAME.fullmatch(name):
        raise fields.error("name", f"must be letters, digits, '_' or '-', got {name!r}")
    organization = fields.string("organization") or DEFAULT_ORGANIZATION
    if not ORGANIZATION_ID.fullmatch(organization):
        raise fields.error(
            "organization", f"must be lowercase letters, digits and '-', got {organization!r}"
        )
    prompt_template = _read_prompt(fields, prompts_dir)
    initial_message = fields.string("initial_message")
    if initial_message is not None:
        fields.template("initial_message", initial_message)
    tools = _read_tools(fields)
    tool_secret = _read_secret(fields, env)
    if tool_secret is None and any(tool.webhook for tool in tools):
        logger.warning("agent %r has tool webhooks but no secret: requests are unsigned", name)

    base = Agent(name=name)
    engine = fields.string("engine") or base.engine
    if engine not in ENGINES:
        raise fields.error("engine", f"must be one of {', '.join(ENGINES)}, got {engine!r}")
    elevenlabs = _read_elevenlabs(fields)
    if engine == "elevenlabs" and elevenlabs is None:
        raise fields.error("elevenlabs", 'is required for engine = "elevenlabs" (agent_id)')
    parts = {kind: _read_part(fields, kind, env) for kind in PART_PROVIDERS}
    dialog = _read_dialog(fields, tool_names(tools, raw))
    llm = parts["llm"]
    if engine == "pipeline" and (llm is None or llm.provider == "scripted") and dialog is None:
        raise fields.error("dialog", "is required when the language model is scripted")
    endpointing = choice(fields, "endpointing_sensitivity", ("sensitive", "auto", "relaxed"))
    interrupt = choice(fields, "interrupt_sensitivity", ("high", "low"))
    fallback = fields.string("fallback")
    if fallback is not None and (fallback == name or not _AGENT_NAME.fullmatch(fallback)):
        raise fields.error("fallback", f"must name another agent, got {fallback!r}")
    transcription = fields.string("transcription_model", empty_ok=True)
    end_call = fields.boolean("end_call")
    max_duration_s = fields.number("max_duration_s")
    dtmf_flush_s = fields.number("dtmf_flush_s")
    audio_format = fields.string("audio_format")
    if audio_format is not None and audio_format not in AUDIO_FORMATS:
        raise fields.error("audio_format", f"must be one of {', '.join(AUDIO_FORMATS)}")
    return Agent(
        name=name,
        organization=organization,
        engine=engine,
        model=fields.string("model") or base.model,
        voice=fields.string("voice") or base.voice,
        language=fields.string("language") or base.language,
        prompt_template=prompt_template,
        variables=_read_variables(fields),
        initial_message=initial_message,
        **read_behaviour(fields, engine),  # greeting delay, silence checks
        tools=tools,
        tool_secret=tool_secret,
        **read_postcall(fields),  # summary, collect_fields
        # an empty string turns transcription of the caller off
        transcription_model=(
            base.transcription_model if transcription is None else transcription or None
        ),
        temperature=fields.number("temperature", allow_zero=True, high=2.0),
        end_call_enabled=base.end_call_enabled if end_call is None else end_call,
        max_duration_s=base.max_duration_s if max_duration_s is None else max_duration_s,
        dtmf_flush_s=base.dtmf_flush_s if dtmf_flush_s is None else dtmf_flush_s,
        record=bool(fields.boolean("record")),
        audio_format=audio_format,
        fallback=fallback,
        keywords=tuple(strings(fields, "keywords")),
        endpointing_sensitivity=endpointing or base.endpointing_sensitivity,
        interrupt_sensitivity=interrupt or base.interrupt_sensitivity,
        stt=parts["stt"],
        llm=llm,
        tts=parts["tts"],
        elevenlabs=elevenlabs,
        dialog=dialog,
        voicemail=read_voicemail(fields),
        transfer_targets=read_transfer(fields),
        dtmf_tool=bool(fields.boolean("send_dtmf")),
    )


def load_agents(agents_dir: Path, prompts_dir: Path, env: Mapping[str, str]) -> dict[str, Agent]:
    """Load every ``*.toml`` in ``agents_dir``, keyed by agent name (names must be unique)."""
    if not agents_dir.is_dir():
        raise ConfigError(f"{agents_dir}: agents directory not found")
    agents: dict[str, Agent] = {}
    origin: dict[str, Path] = {}
    for path in sorted(agents_dir.glob("*.toml")):
        agent = load_agent(path, prompts_dir, env)
        if agent.name in agents:
            raise ConfigError(
                f"{path}: name: agent '{agent.name}' is already defined in {origin[agent.name]}"
            )
        agents[agent.name] = agent
        origin[agent.name] = path
    for agent in agents.values():
        fallback = agents.get(agent.fallback) if agent.fallback is not None else None
        if agent.fallback is not None and (
            fallback is None or fallback.organization != agent.organization
        ):
            raise ConfigError(
                f"{origin[agent.name]}: fallback: no agent named '{agent.fallback}' in "
                f"organization '{agent.organization}'"
            )
    return agents


class AgentRegistry:
    """The loaded agents and which one answers when a call names none."""

    def __init__(self, agents: Mapping[str, Agent], default_name: str = "default") -> None:
        if default_name not in agents:
            have = ", ".join(sorted(agents)) or "none"
            raise ConfigError(f"default agent '{default_name}' is not defined (agents: {have})")
        self._agents = dict(agents)
        self._default_name = default_name

    @classmethod
    def from_dir(
        cls,
        agents_dir: Path,
        prompts_dir: Path,
        env: Mapping[str, str],
        default_name: str = "default",
    ) -> AgentRegistry:
        """Load ``agents_dir`` and check that ``default_name`` is among its agents."""
        return cls(load_agents(agents_dir, prompts_dir, env), default_name)

    @property
    def default_name(self) -> str:
        return self._default_name

    def get(self, name: str | None, organization: str | None = None) -> Agent:
        """The agent called ``name``; ``None`` means the default agent.

        With ``organization``, an agent of another organization is unknown (tenants never see
        each other's agents), and so is the default agent when it is not the organization's.
        """
        agent = self._agents.get(self._default_name if name is None else name)
        if agent is None or (organization is not None and agent.organization != organization):
            if name is None:
                raise ConfigError(f"organization '{organization}' has no default agent")
            raise ConfigError(f"unknown agent '{name}'")
        return agent

    def names(self, organization: str | None = None) -> list[str]:
        """Every agent name (of ``organization``, when given), sorted."""
        return sorted(
            name
            for name, agent in self._agents.items()
            if organization is None or agent.organization == organization
        )

    def __contains__(self, name: object) -> bool:
        return name in self._agents

    def __len__(self) -> int:
        return len(self._agents)


# --- the parts of an agent file -------------------------------------------------------------


def _read_part(fields: Fields, kind: str, env: Mapping[str, str]) -> PartSpec | None:
    table = fields.table_of(kind)
    if table is None:
        return None
    part = Fields(fields.path, table, f"{kind}.")
    part.reject_unknown(_PART_KEYS)
    provider = part.required_string("provider")
    if provider not in PART_PROVIDERS[kind]:
        raise part.error("provider", f"must be one of {', '.join(PART_PROVIDERS[kind])}")
    base_url = part.string("base_url")
    if base_url is not None and not _is_http_url(base_url.replace("ws", "http", 1)):
        raise part.error("base_url", f"must be a URL, got {base_url!r}")
    key_env = part.string("api_key_env")
    api_key = None
    if key_env is not None:
        api_key = env.get(key_env)
        if not api_key:
            raise part.error("api_key_env", f"environment variable {key_env} is not set or empty")
    return PartSpec(provider, part.string("model"), part.string("voice"), base_url, api_key)


def _read_elevenlabs(fields: Fields) -> ElevenLabsSpec | None:
    table = fields.table_of("elevenlabs")
    if table is None:
        return None
    el = Fields(fields.path, table, "elevenlabs.")
    el.reject_unknown(_ELEVENLABS_KEYS)
    overrides = tuple(strings(el, "overrides")) if "overrides" in table else None
    for item in overrides or ():
        if item not in ("prompt", "first_message", "language", "voice"):
            raise el.error("overrides", f"unknown override {item!r}")
    spec = ElevenLabsSpec(el.required_string("agent_id"), bool(el.boolean("private")))
    if overrides is not None:
        spec = replace(spec, overrides=overrides)
    return replace(spec, voice_id=el.string("voice_id"))


def _read_dialog(fields: Fields, tools: set[str]) -> DialogScript | None:
    table = fields.table_of("dialog")
    if table is None:
        return None
    dialog = Fields(fields.path, table, "dialog.")
    dialog.reject_unknown(_DIALOG_KEYS)
    slots: dict[str, DialogSlot] = {}
    for slot_name, raw in (dialog.table_of("slots") or {}).items():
        if not isinstance(raw, dict):
            raise dialog.error(f"slots.{slot_name}", "must be a table")
        slot = Fields(fields.path, raw, f"dialog.slots.{slot_name}.")
        slot.reject_unknown(_SLOT_KEYS)
        values = tuple(strings(slot, "values"))
        if not values:
            raise slot.error("values", "needs at least one value")
        slots[slot_name] = DialogSlot(slot_name, slot.required_string("ask"), values)
    entries = table.get("intents")
    if not isinstance(entries, list) or not entries:
        raise dialog.error("intents", "needs at least one [[dialog.intents]]")
    intents: list[DialogIntent] = []
    for index, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise dialog.error(f"intents[{index}]", "must be a table")
        intent = Fields(fields.path, entry, f"dialog.intents[{index}].")
        intent.reject_unknown(_INTENT_KEYS)
        examples = tuple(strings(intent, "examples"))
        if not examples:
            raise intent.error("examples", "needs at least one example phrase")
        wanted = tuple(strings(intent, "slots"))
        for slot_name in wanted:
            if slot_name not in slots:
                raise intent.error("slots", f"no [dialog.slots.{slot_name}]")
        tool = intent.string("tool")
        if tool is not None and tool not in tools:
            raise intent.error("tool", f"no [[tools]] entry named {tool!r}")
        intents.append(
            DialogIntent(
                name=intent.required_string("name"),
                examples=examples,
                reply=intent.required_string("reply"),
                slots=wanted,
                tool=tool,
                tool_error_reply=intent.string("tool_error_reply"),
                end_call=bool(intent.boolean("end_call")),
            )
        )
    return DialogScript(
        intents=tuple(intents),
        slots=slots,
        fallback=dialog.string("fallback") or DialogScript(()).fallback,
        phrases=tuple(strings(dialog, "phrases")),
    )


def _read_prompt(fields: Fields, prompts_dir: Path) -> str:
    prompt = fields.string("prompt")
    instructions = fields.string("instructions")
    if prompt is not None and instructions is not None:
        raise fields.error("instructions", "give either 'prompt' or 'instructions', not both")
    if instructions is not None:
        fields.template("instructions", instructions)
        return instructions
    if prompt is None:
        raise fields.error("prompt", "is required (or give inline 'instructions')")
    if not _PROMPT_NAME.fullmatch(prompt):
        raise fields.error("prompt", f"must be a template name in prompts/, got {prompt!r}")
    prompt_path = prompts_dir / f"{prompt}.md"
    try:
        text = prompt_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise fields.error("prompt", f"prompt file {prompt_path} not found") from None
    except OSError as exc:
        raise fields.error("prompt", f"cannot read {prompt_path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise fields.error("prompt", f"{prompt_path} is not valid UTF-8") from exc
    if not text.strip():
        raise fields.error("prompt", f"prompt file {prompt_path} is empty")
    fields.template("prompt", text, where=f": {prompt_path}")
    return text


def _read_variables(fields: Fields) -> dict[str, str]:
    table = fields.table_of("variables") or {}
    variables: dict[str, str] = {}
    for key, value in table.items():
        if not is_variable_name(key):
            raise fields.error(f"variables.{key}", "is not a valid variable name")
        if not isinstance(value, str):
            raise fields.error(f"variables.{key}", f"must be a string, got {type_name(value)}")
        variables[key] = value
    return variables


def _read_secret(fields: Fields, env: Mapping[str, str]) -> str | None:
    """The tool secret's *value* from ``env``; never put it into an error message."""
    var = fields.string("tool_secret_env")
    if var is None:
        return env.get(DEFAULT_SECRET_ENV) or None
    secret = env.get(var)
    if not secret:
        raise fields.error("tool_secret_env", f"environment variable {var} is not set or empty")
    return secret


def _read_tools(fields: Fields) -> tuple[ToolSpec, ...]:
    tools: list[ToolSpec] = []
    names: set[str] = set()
    for index, entry in enumerate(fields.tables("tools", " ([[tools]])")):
        tool = _read_tool(entry)
        if tool.name in names:
            raise fields.error(f"tools[{index}].name", f"duplicate tool name '{tool.name}'")
        names.add(tool.name)
        tools.append(tool)
    return tuple(tools)


def _read_tool(fields: Fields) -> ToolSpec:
    fields.reject_unknown(_TOOL_KEYS)
    name = fields.required_string("name")
    if name in RESERVED_TOOL_NAMES:
        raise fields.error("name", f"'{name}' is a built-in tool and cannot be redefined")
    if not TOOL_NAME.fullmatch(name):
        raise fields.error("name", f"must be 1-64 letters, digits, '_' or '-', got {name!r}")
    description = fields.required_string("description")
    webhook = fields.string("webhook")
    local = webhook is not None and webhook.startswith("/") and " " not in webhook
    if webhook is not None and not local and not _is_http_url(webhook):
        raise fields.error(
            "webhook", f"must be an http or https URL (or a path on this server), got {webhook!r}"
        )
    timeout_s = fields.number("timeout_s")
    spec = ToolSpec(name, description, _read_parameters(fields), webhook)
    return spec if timeout_s is None else replace(spec, timeout_s=timeout_s)


def _read_parameters(fields: Fields) -> dict[str, Any]:
    schema = fields.table_of("parameters")
    if schema is None:
        return {"type": "object", "properties": {}}
    if schema.get("type") != "object":
        raise fields.error("parameters", 'must be a JSON schema with type = "object"')
    properties = schema.get("properties", {})
    if not isinstance(properties, dict):
        raise fields.error("parameters.properties", "must be a table")
    required = schema.get("required", [])
    if not isinstance(required, list) or not all(isinstance(item, str) for item in required):
        raise fields.error("parameters.required", "must be an array of strings")
    for item in required:
        if item not in properties:
            raise fields.error("parameters.required", f"'{item}' is not in parameters.properties")
    bad = _non_json_value(schema)
    if bad is not None:
        raise fields.error("parameters", f"holds a {bad}, which JSON schema cannot express")
    return dict(schema)


def _non_json_value(value: Any) -> str | None:
    """The type name of the first value JSON cannot carry (TOML dates and times), if any."""
    if isinstance(value, dict):
        children: list[Any] = list(value.values())
    elif isinstance(value, list):
        children = value
    elif isinstance(value, str | int | float | bool):
        return None
    else:
        return type_name(value)
    for child in children:
        bad = _non_json_value(child)
        if bad is not None:
            return bad
    return None


def _is_http_url(url: str) -> bool:
    if any(char.isspace() for char in url):
        return False
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises ValueError on a malformed port
    except ValueError:
        return False
    return parts.scheme in {"http", "https"} and bool(parts.hostname)
