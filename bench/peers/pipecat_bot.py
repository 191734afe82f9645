"""The Pipecat peer: a Twilio Media Streams ↔ OpenAI Realtime bot built from Pipecat's own parts.

Runs inside ``bench/.venv-pipecat`` (``pipecat-ai`` from PyPI, see
``bench/requirements-pipecat.txt``), never in callbridge's environment:
:mod:`bench.peers.pipecat_peer` creates that environment and starts this script. One uvicorn
worker, the same server stack as ``callbridge serve`` (uvloop, httptools, ``websockets-sansio``)::

    bench/.venv-pipecat/bin/python bench/peers/pipecat_bot.py --port P \\
        --engine-url ws://127.0.0.1:E/v1/realtime

Per call (``/twilio/media``): read Twilio's ``connected`` and ``start``, then run the pipeline
Pipecat's Twilio + OpenAI Realtime examples use, configured as close to callbridge's job as
Pipecat allows:

* ``FastAPIWebsocketTransport`` with ``TwilioFrameSerializer`` (auto hang-up over Twilio REST off:
  there is no network), audio in and out, no local VAD (the engine does server VAD), 20 ms output
  chunks (callbridge also sends 20 ms ``media`` messages; Pipecat's default is 40 ms);
* ``OpenAIRealtimeLLMService`` (the GA service) at ``--engine-url``, dummy key, server VAD, input
  transcription and near-field noise reduction as callbridge asks for, and the greeting as the
  first response (an ``LLMRunFrame`` on connect);
* ``LLMContextAggregatorPair`` around it, so server VAD turns into interruptions (Twilio
  ``clear``) the way Pipecat's examples do it;
* pipeline audio at 8 kHz in and out (as Pipecat's Twilio examples): Pipecat itself resamples
  8 ↔ 24 kHz, since its Realtime service always speaks 24 kHz PCM to the engine;
* RTVI off (a browser-client protocol, nothing on a phone line uses it), idle time-out off, logs
  at WARNING like the bridge's ``--log-level warning``.

The call index from ``customParameters.bench_call`` goes into the instructions as
``bench_call=N``, as callbridge's rendered prompt carries it: the engine needs it to tell calls
apart once the audio is resampled and carries no byte stamp.
"""

# This file is imported by nothing in callbridge's environment: its third-party imports
# (pipecat, fastapi, uvicorn from bench/.venv-pipecat) are resolved only when it runs there.

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from fastapi import FastAPI, WebSocket
from loguru import logger
from pipecat.frames.frames import LLMRunFrame
from pipecat.pipeline.pipeline import Pipeline
from pipecat.pipeline.worker import PipelineParams, PipelineWorker
from pipecat.processors.aggregators.llm_context import LLMContext
from pipecat.processors.aggregators.llm_response_universal import LLMContextAggregatorPair
from pipecat.serializers.twilio import TwilioFrameSerializer
from pipecat.services.openai.realtime import events as rt
from pipecat.services.openai.realtime.llm import OpenAIRealtimeLLMService
from pipecat.transports.websocket.fastapi import FastAPIWebsocketParams, FastAPIWebsocketTransport
from pipecat.workers.runner import WorkerRunner

GREETING = "Thanks for calling Brightwater Home Services. How can I help you today?"
INSTRUCTIONS = (
    "You are Sam, the receptionist at Brightwater Home Services. This is a phone call: keep "
    "every reply to one or two short sentences."
)
START_TIMEOUT_S = 10.0


class Calls:
    """Live call count for ``/healthz`` (the harness waits for 0 between runs)."""

    live = 0


def session_properties() -> rt.SessionProperties:
    """What the GA ``session.update`` asks for: callbridge's settings, in Pipecat's types."""
    return rt.SessionProperties(
        output_modalities=["audio"],
        audio=rt.AudioConfiguration(
            input=rt.AudioInput(
                format=rt.PCMAudioFormat(),
                transcription=rt.InputAudioTranscription(
                    model="gpt-4o-mini-transcribe", language="en"
                ),
                noise_reduction=rt.InputAudioNoiseReduction(type="near_field"),
                turn_detection=rt.TurnDetection(
                    type="server_vad", threshold=0.5, prefix_padding_ms=300, silence_duration_ms=500
                ),
            ),
            output=rt.AudioOutput(format=rt.PCMAudioFormat(), voice="marin"),
        ),
    )


async def read_start(ws: WebSocket) -> dict[str, Any] | None:
    """Twilio's ``connected`` then ``start``: the ``start`` body, or None if the stream ended."""
    while True:
        message = await ws.receive()
        if message["type"] == "websocket.disconnect":
            return None
        text = message.get("text") or (message.get("bytes") or b"").decode()
        try:
            event = json.loads(text)
        except ValueError:
            continue
        if event.get("event") == "start":
            start = event.get("start")
            return start if isinstance(start, dict) else None
        if event.get("event") == "stop":
            return None


async def run_call(ws: WebSocket, engine_url: str) -> None:
    start = await read_start(ws)
    if start is None:
        return
    params = start.get("customParameters") or {}
    serializer = TwilioFrameSerializer(
        stream_sid=start["streamSid"],
        call_sid=start.get("callSid"),
        account_sid=start.get("accountSid"),
        params=TwilioFrameSerializer.InputParams(auto_hang_up=False),
    )
    transport = FastAPIWebsocketTransport(
        websocket=ws,
        params=FastAPIWebsocketParams(
            audio_in_enabled=True,
            audio_out_enabled=True,
            add_wav_header=False,
            audio_out_10ms_chunks=2,
            serializer=serializer,
        ),
    )
    instructions = f"{INSTRUCTIONS}\nbench_call={params.get('bench_call', '')}"
    llm = OpenAIRealtimeLLMService(
        api_key="sk-bench",
        base_url=engine_url,
        settings=OpenAIRealtimeLLMService.Settings(
            model="gpt-realtime",
            system_instruction=instructions,
            session_properties=session_properties(),
        ),
    )
    context = LLMContext([{"role": "user", "content": f"Greet the caller: '{GREETING}'"}])
    user_aggregator, assistant_aggregator = LLMContextAggregatorPair(context)
    pipeline = Pipeline(
        [transport.input(), user_aggregator, llm, transport.output(), assistant_aggregator]
    )
    worker = PipelineWorker(
        pipeline,
        params=PipelineParams(audio_in_sample_rate=8000, audio_out_sample_rate=8000),
        enable_rtvi=False,
        idle_timeout_secs=None,
    )

    @transport.event_handler("on_client_connected")
    async def on_client_connected(_transport: Any, _client: Any) -> None:
        await worker.queue_frames([LLMRunFrame()])

    @transport.event_handler("on_client_disconnected")
    async def on_client_disconnected(_transport: Any, _client: Any) -> None:
        await worker.cancel()

    runner = WorkerRunner(handle_sigint=False)
    await runner.add_workers(worker)
    await runner.run()


def make_app(engine_url: str) -> FastAPI:
    app = FastAPI()

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "live_calls": Calls.live}

    @app.websocket("/twilio/media")
    async def media(ws: WebSocket) -> None:
        await ws.accept()
        Calls.live += 1
        try:
            await run_call(ws, engine_url)
        finally:
            Calls.live -= 1

    return app


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--engine-url", required=True, help="ws://127.0.0.1:E/v1/realtime")
    p.add_argument("--log-level", default="WARNING")
    args = p.parse_args(argv)
    if not args.engine_url.startswith("ws://127.0.0.1"):
        p.error("the bench stays on loopback")
    logger.remove()
    logger.add(sys.stderr, level=args.log_level.upper())
    import uvicorn

    uvicorn.run(
        make_app(args.engine_url),
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        ws="websockets-sansio",
        ws_per_message_deflate=False,
        log_level=args.log_level.lower(),
        access_log=False,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
