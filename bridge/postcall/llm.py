"""The language model that summarises a call, and what it is asked.

Which model (:func:`summary_model`): the agent's own ``[llm]`` when its provider is ``openai``
(its ``base_url``, ``model`` and key, as the cascaded engine uses them), else the server's
``OPENAI_API_KEY`` with ``CALLBRIDGE_OPENAI_BASE_URL`` and ``CALLBRIDGE_SUMMARY_MODEL``; with
neither, ``None`` (the offline fallback runs). The request goes through the cascaded engine's
client (:class:`~bridge.engines.pipeline.openai_llm.OpenAIChatModel`): one non-streamed chat
completion with a strict JSON schema (:func:`~bridge.postcall.fields.answer_schema`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bridge.agents.model import Agent, CollectField
from bridge.config import Settings
from bridge.engines.pipeline.openai_llm import OpenAIChatModel
from bridge.journal.models import CallDetail
from bridge.postcall.fields import answer_schema, parse_answer
from bridge.postcall.offline import CallInfo

__all__ = ["ModelFactory", "SummaryModel", "ask", "call_info", "messages", "summary_model"]

SCHEMA_NAME = "call_summary"
TIMEOUT_S = 30.0
MAX_TRANSCRIPT_CHARS = 60_000
MAX_TOOL_OUTPUT_CHARS = 300


@dataclass(frozen=True, slots=True)
class SummaryModel:
    """An OpenAI-compatible chat-completions endpoint and model (``api_key`` may be ``None``
    for local servers)."""

    base_url: str
    model: str
    api_key: str | None = None


ModelFactory = Callable[[SummaryModel], OpenAIChatModel]


def open_model(config: SummaryModel) -> OpenAIChatModel:
    return OpenAIChatModel(
        base_url=config.base_url,
        model=config.model,
        api_key=config.api_key,
        temperature=0.0,
        timeout_s=TIMEOUT_S,
    )


def summary_model(agent: Agent, settings: Settings) -> SummaryModel | None:
    """The model that summarises ``agent``'s calls (module docstring), or ``None``."""
    spec = agent.llm
    if spec is not None and spec.provider == "openai":
        return SummaryModel(
            spec.base_url or settings.openai_base_url,
            spec.model or settings.summary_model,
            spec.api_key or settings.openai_api_key,
        )
    if settings.openai_api_key:
        return SummaryModel(
            settings.openai_base_url, settings.summary_model, settings.openai_api_key
        )
    return None


def call_info(detail: CallDetail) -> CallInfo:
    call = detail.call
    return CallInfo(
        direction=call.direction,
        carrier=call.carrier,
        agent=call.agent,
        from_number=call.from_number,
        to_number=call.to_number,
        status=call.status,
        end_reason=call.end_reason,
        duration_secs=call.duration_secs,
    )


def _clock(seconds: float) -> str:
    whole = max(0, int(seconds))
    return f"{whole // 60:02d}:{whole % 60:02d}"


def _field_line(field: CollectField) -> str:
    kind = "one of: " + ", ".join(field.values) if field.type == "enum" else field.type
    about = f": {field.description}" if field.description else ""
    return f"- {field.name} ({kind}){about}"


def messages(detail: CallDetail, fields: Sequence[CollectField]) -> list[dict[str, Any]]:
    """The chat messages: the task and the fields, then the call's facts and transcript."""
    task = (
        "You summarise phone calls a voice agent handled. Answer with JSON only, as the "
        "schema says: `summary`, two to four plain sentences (who called, what they wanted, "
        "what was agreed or done, anything left open); `collected`, the fields below, each "
        "null when the call did not establish it. Use only what the transcript says."
    )
    if fields:
        task += "\n\nFields:\n" + "\n".join(_field_line(field) for field in fields)
    info = call_info(detail)
    facts = (
        f"{info.direction} {info.carrier} call, agent {info.agent or 'unknown'}, "
        f"from {info.from_number or 'unknown'} to {info.to_number or 'unknown'}, "
        f"{round(info.duration_secs or 0)} s, ended {info.status}"
        + (f" ({info.end_reason})" if info.end_reason else "")
    )
    rows: list[tuple[float, str]] = [
        (
            turn.time_in_call_secs,
            f"[{_clock(turn.time_in_call_secs)}] "
            f"{'Caller' if turn.role == 'user' else 'Agent'}: {turn.text}",
        )
        for turn in detail.transcript
    ]
    for tool in detail.tool_calls:
        output = tool.output[:MAX_TOOL_OUTPUT_CHARS]
        arguments = json.dumps(dict(tool.arguments), ensure_ascii=False)
        rows.append(
            (
                tool.time_in_call_secs,
                f"[{_clock(tool.time_in_call_secs)}] Tool {tool.name}({arguments}) -> {output}",
            )
        )
    rows.sort(key=lambda row: row[0])
    transcript = "\n".join(line for _, line in rows)[:MAX_TRANSCRIPT_CHARS]
    return [
        {"role": "system", "content": task},
        {"role": "user", "content": f"Call: {facts}.\n\nTranscript:\n{transcript}"},
    ]


async def ask(
    model: OpenAIChatModel, detail: CallDetail, fields: Sequence[CollectField]
) -> tuple[str, dict[str, Any]]:
    """The model's summary and collected fields. Raises
    :class:`~bridge.errors.EngineUnavailable` (the model failed) or
    :class:`~bridge.postcall.fields.AnswerInvalid` (its answer is not what was asked)."""
    text = await model.complete_json(
        messages(detail, fields), name=SCHEMA_NAME, schema=answer_schema(fields)
    )
    return parse_answer(text, fields)
