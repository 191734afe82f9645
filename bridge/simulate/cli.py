"""``callbridge simulate``: place a test call against a running bridge, as a carrier would.

``--carrier`` picks the protocol (Twilio by default; Telnyx, Plivo, Exotel, Vonage, jambonz,
Asterisk chan_websocket, AudioSocket over ``tcp://host:port``), each with its own playback clock.

Listens to the greeting (speaks once the agent has been quiet for ``--wait-greeting`` seconds),
plays a WAV file as the caller — or speaks each ``--say`` sentence in turn (espeak-ng), waiting
for the agent's answer after each — keeps the line open with silence while the agent answers, and
hangs up once the agent has been quiet for ``--quiet`` seconds (or ``--silence-after`` seconds pass
with no answer, the bridge ends the call, or ``--timeout`` is reached). Then it prints what the
caller measured (greeting and per-turn response latency) and the call's journal (transcript and
events) fetched from the bridge's REST API.

Exit codes: 0 the agent answered and the bridge kept to the carrier's protocol; 1 the call failed
(no connection, no agent audio, protocol violations); 2 usage error (bad arguments, unreadable
WAV file).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import struct
import sys
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from bridge.audio.g711 import pcm16_to_ulaw, ulaw_to_pcm16
from bridge.audio.resample import resample
from bridge.audio.wav import read_wav, write_wav
from bridge.errors import CallbridgeError
from bridge.simulate.caller import SimulatedCaller, SimulatedCallError
from bridge.simulate.carriers import WIRES

__all__ = ["add_parser", "default_api_url", "load_caller_audio", "run_simulate"]

_PROG = "callbridge simulate"


class UsageError(Exception):
    """Bad input from the person running the command (exit code 2)."""


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the ``simulate`` subcommand on ``callbridge``'s subparsers."""
    p = subparsers.add_parser(
        "simulate",
        help="place a test call: play a WAV as a phone caller, print transcript and latency",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--url",
        required=True,
        help="the bridge's media websocket (ws://…/twilio/media), or tcp://host:port (AudioSocket)",
    )
    p.add_argument(
        "--carrier",
        choices=sorted(WIRES),
        default="twilio",
        help="the carrier protocol to speak (default twilio; it must match the --url route)",
    )
    said = p.add_mutually_exclusive_group(required=True)
    said.add_argument("--wav", type=Path, help="caller audio: 16-bit WAV, any rate")
    said.add_argument(
        "--say",
        action="append",
        metavar="TEXT",
        help="a caller sentence, spoken with espeak-ng; repeat for a conversation",
    )
    p.add_argument("--agent", help="agent name (sent as the custom parameter 'agent')")
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra custom parameter, as <Parameter> would send it (repeatable)",
    )
    p.add_argument(
        "--wait-greeting",
        type=float,
        default=1.0,
        metavar="S",
        help="speak once the agent has been quiet for S seconds, as a caller would (default 1)",
    )
    p.add_argument(
        "--silence-after",
        type=float,
        default=8.0,
        metavar="S",
        help="give up when the agent has not answered S seconds after the WAV (default 8)",
    )
    p.add_argument(
        "--quiet",
        type=float,
        default=2.0,
        metavar="S",
        help="hang up once the agent has been quiet for S seconds (default 2)",
    )
    p.add_argument("--timeout", type=float, default=60.0, metavar="S", help="whole call (60)")
    p.add_argument("--api", help="bridge REST base URL (default: from --url, ws→http, path /)")
    p.add_argument(
        "--api-key",
        default=os.environ.get("CALLBRIDGE_API_KEY"),
        help="API key (read scope) for the journal (default: $CALLBRIDGE_API_KEY)",
    )
    p.add_argument("--no-journal", action="store_true", help="do not fetch the call's journal")
    p.add_argument("--out-wav", type=Path, metavar="PATH", help="write what the caller heard")
    p.add_argument("--fast", action="store_true", help="send the WAV faster than real time")


def default_api_url(ws_url: str) -> str:
    """``ws://host:port/twilio/media`` → ``http://host:port`` (``wss`` → ``https``).

    A ``tcp://`` carrier address (AudioSocket) names no HTTP server: assume the default port.
    """
    parts = urlsplit(ws_url)
    if parts.scheme == "tcp":
        return f"http://{parts.hostname}:8080"
    scheme = {"ws": "http", "wss": "https"}.get(parts.scheme, parts.scheme)
    return urlunsplit((scheme, parts.netloc, "", "", ""))


def _custom_parameters(agent: str | None, pairs: list[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--param expects KEY=VALUE, got {pair!r}")
        params[key] = value
    if agent is not None:
        params["agent"] = agent
    return params


def load_caller_audio(path: Path) -> tuple[bytes, int]:
    """Read a 16-bit WAV (any rate, mono or stereo) → (8 kHz μ-law, the file's rate)."""
    if not path.is_file():
        raise UsageError(f"WAV file not found: {path}")
    try:
        pcm, rate = read_wav(path)
    except (OSError, ValueError, struct.error, CallbridgeError) as exc:
        raise UsageError(f"cannot read WAV file {path}: {exc}") from exc
    if rate != 8000:
        pcm = resample(pcm, rate, 8000)
    return pcm16_to_ulaw(pcm), rate


async def run_simulate(
    args: argparse.Namespace, *, transport: httpx.AsyncBaseTransport | None = None
) -> int:
    """Run one test call as configured by ``args``; return the exit code (see module doc)."""
    try:
        params = _custom_parameters(args.agent, args.param)
        if args.say:
            turns = [speak(text) for text in args.say]
            source = f"{len(turns)} spoken sentence(s)"
        else:
            ulaw, rate = load_caller_audio(args.wav)
            turns, source = [ulaw], f"{args.wav.name} ({rate} Hz → 8 kHz μ-law)"
    except UsageError as exc:
        print(f"{_PROG}: {exc}", file=sys.stderr)
        return 2
    wire = WIRES[args.carrier]()
    if wire.transport == "tcp" and params:
        print(f"{_PROG}: {args.carrier} carries no call parameters", file=sys.stderr)
        return 2
    caller = SimulatedCaller(args.url, wire, custom_parameters=params, realtime=not args.fast)
    print(f"calling {args.url} as {args.carrier} call {wire.call_sid}", flush=True)
    print(f"caller  {sum(len(t) for t in turns) / 8000:.2f} s from {source}")
    try:
        async with caller.connect():
            ended = await _converse(caller, turns, args)
    except SimulatedCallError as exc:
        print(f"{_PROG}: {exc}", file=sys.stderr)
        return 1
    status = _print_call(caller, ended)
    if args.out_wav is not None:
        status = max(status, _write_heard(caller, args.out_wav))
    if not args.no_journal:
        api = (args.api or default_api_url(args.url)).rstrip("/")
        await _print_journal(api, wire.call_sid, transport, args.api_key)
    return status


def speak(text: str) -> bytes:
    """``text`` spoken by espeak-ng as μ-law 8 kHz, then a pause that ends the caller's turn."""
    from bridge.audio.espeak import EXECUTOR, synthesize_ulaw

    if not text.strip():
        raise UsageError("--say needs some text")
    audio, _ = EXECUTOR.submit(synthesize_ulaw, text).result()
    return audio + b"\xff" * 8 * 900


async def _converse(caller: SimulatedCaller, turns: list[bytes], args: argparse.Namespace) -> str:
    """Play the caller's turns, each followed by the agent's answer; return how it ended."""
    try:
        async with asyncio.timeout(args.timeout):
            if args.wait_greeting > 0:
                await caller.wait_until_quiet(args.wait_greeting, timeout=args.timeout)
            for ulaw in turns:
                if caller.closed_by_bridge.is_set():
                    break
                before = caller.arrived_bytes  # a fast agent answers before the pause is sent
                await caller.play(ulaw, wait=True)
                try:
                    await caller.wait_for_agent_audio(before + 1, args.silence_after)
                except TimeoutError:
                    return f"no agent audio within {args.silence_after:g} s after the caller spoke"
                await caller.wait_until_quiet(args.quiet, timeout=args.timeout)
    except TimeoutError:
        return f"call timeout ({args.timeout:g} s)"
    except SimulatedCallError:
        pass  # the bridge closed the stream: handled below, like Twilio continuing the TwiML
    if caller.closed_by_bridge.is_set():
        return f"the bridge closed the stream (code {caller.close_code})"
    return f"caller hung up after {args.quiet:g} s of agent quiet"


def _ms(value: float) -> str:
    return f"{value:.0f} ms"


def _print_call(caller: SimulatedCaller, ended: str) -> int:
    heard, arrived = len(caller.received_audio), caller.arrived_bytes
    print(f"agent   {arrived / 8000:.2f} s received, {heard / 8000:.2f} s heard, ", end="")
    print(f"{len(caller.clears)} clear(s), {len(caller.marks_echoed)} mark(s) echoed")
    print(f"ended   {ended}")
    greeting = caller.greeting_latency_ms
    print(f"greeting latency: {_ms(greeting) if greeting is not None else 'n/a (no agent audio)'}")
    turns = caller.turn_latencies_ms
    for i, latency in enumerate(turns, 1):
        print(f"turn {i} response latency: {_ms(latency)}")
    if turns:
        print(f"p50 response latency: {_ms(statistics.median(turns))} over {len(turns)} turn(s)")
    status = 0
    if caller.violations:
        carrier, count = caller.wire.carrier, len(caller.violations)
        print(f"{_PROG}: the bridge broke the {carrier} protocol {count} time(s):")
        for violation in caller.violations[:10]:
            print(f"  - {violation}")
        status = 1
    if arrived == 0:
        print(f"{_PROG}: the agent never sent audio")
        status = 1
    return status


def _write_heard(caller: SimulatedCaller, path: Path) -> int:
    try:
        write_wav(path, ulaw_to_pcm16(caller.played_ulaw()), 8000)
    except OSError as exc:
        print(f"{_PROG}: cannot write {path}: {exc}", file=sys.stderr)
        return 1
    print(f"wrote what the caller heard to {path}")
    return 0


async def _print_journal(
    api: str, call_sid: str, transport: httpx.AsyncBaseTransport | None, key: str | None = None
) -> None:
    """Fetch and print the call's journal; the journal is written off the hot path, so poll."""
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        async with httpx.AsyncClient(
            base_url=api, timeout=5.0, transport=transport, headers=headers
        ) as http:
            detail = await _fetch_call(http, call_sid)
    except httpx.HTTPStatusError as exc:
        if exc.response.status_code in (401, 403):
            print(f"journal: {api} refused the API key: pass --api-key (or CALLBRIDGE_API_KEY)")
        else:
            print(f"journal: not available from {api} ({exc})")
        return
    except (httpx.HTTPError, ValueError) as exc:
        print(f"journal: not available from {api} ({str(exc) or type(exc).__name__})")
        return
    if detail is None:
        print(f"journal: no call with callSid {call_sid} at {api}")
        return
    _print_detail(detail)


async def _fetch_call(http: httpx.AsyncClient, call_sid: str) -> dict[str, Any] | None:
    detail: dict[str, Any] | None = None
    for _ in range(10):
        listed = await http.get("/v1/calls", params={"call_sid": call_sid})
        listed.raise_for_status()
        ids = [call["id"] for call in _items(listed.json()) if isinstance(call.get("id"), str)]
        if ids:
            got = await http.get(f"/v1/calls/{ids[0]}")
            got.raise_for_status()
            detail = got.json()
            if _call_of(detail).get("ended_at"):
                return detail
        await asyncio.sleep(0.5)
    return detail


def _items(body: Any) -> list[dict[str, Any]]:
    if isinstance(body, dict):
        body = next((body[k] for k in ("calls", "items", "data") if k in body), [])
    return _dicts(body)


def _call_of(detail: dict[str, Any]) -> dict[str, Any]:
    call = detail.get("call", detail)
    return call if isinstance(call, dict) else {}


def _dicts(value: Any) -> list[dict[str, Any]]:
    return [item for item in value if isinstance(item, dict)] if isinstance(value, list) else []


def _print_detail(detail: dict[str, Any]) -> None:
    call = _call_of(detail)
    print(f"journal: call {call.get('id')} {call.get('status')} ({call.get('end_reason')})")
    for turn in _dicts(detail.get("transcript")):
        note = " (interrupted)" if turn.get("interrupted") else ""
        t = turn.get("time_in_call_secs")
        at = f"[{t:5.1f}s]" if isinstance(t, int | float) else "[   ?  ]"
        print(f"{at} {turn.get('role')}: {turn.get('text')}{note}")
    kinds = Counter(str(e.get("kind", e.get("type"))) for e in _dicts(detail.get("events")))
    summary = ", ".join(f"{kind} {n}" for kind, n in sorted(kinds.items()))
    print(f"events: {sum(kinds.values())}" + (f" ({summary})" if summary else ""))
    tools = _dicts(detail.get("tool_calls"))
    if tools:
        print(f"tool calls: {len(tools)} ({', '.join(str(t.get('name')) for t in tools)})")
