"""A Telnyx media stream through the real server to the offline demo agent: Telnyx's own
message shapes both ways, chunks out of order, marks echoed as the audio plays."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect

from tests.e2e.lines import silence
from tests.e2e.test_offline_engine import demo_bridge
from tests.speech import recognize_ulaw8k, synthesize_ulaw8k, word_ratio

pytestmark = pytest.mark.speech

STREAM = "telnyx-stream-1"
GREETING = (
    "thank you for calling riverside dental you can book an appointment or ask about our "
    "opening hours"
)
ASK_DAY = "which day would you like"


def frame(event: str, **body: Any) -> str:
    return json.dumps({"event": event, "stream_id": STREAM, **body})


def media(chunk: int, payload: bytes) -> str:
    b64 = base64.b64encode(payload).decode()
    return frame("media", media={"track": "inbound", "chunk": str(chunk), "payload": b64})


async def test_telnyx_call_with_chunks_out_of_order(tmp_path: Path) -> None:
    heard = bytearray()
    async with demo_bridge(tmp_path) as bridge:
        url = bridge.ws_url.replace("/twilio/media", "/telnyx/media")
        async with connect(url) as ws:
            await ws.send(json.dumps({"event": "connected", "version": "1.0.0"}))
            state = base64.b64encode(json.dumps({"caller_name": "Ada"}).encode()).decode()
            await ws.send(
                frame(
                    "start",
                    sequence_number="1",
                    start={
                        "call_control_id": "v3:call-1",
                        "from": "+15550000001",
                        "to": "+15550000002",
                        "client_state": state,
                        "media_format": {"encoding": "PCMU", "sample_rate": 8000, "channels": 1},
                    },
                )
            )

            async def receive() -> None:
                async for raw in ws:
                    message = json.loads(raw)
                    assert "stream_id" not in message  # Telnyx needs none from us
                    if message["event"] == "media":
                        heard.extend(base64.b64decode(message["media"]["payload"]))
                    elif message["event"] == "mark":  # played at once: echo it
                        await ws.send(frame("mark", mark=message["mark"]))

            receiver = asyncio.create_task(receive())
            # the caller: 20 ms chunks in real time, silent until the greeting has arrived,
            # then speaking, every pair of chunks swapped (Telnyx may reorder)
            quiet, sent, n = 0, 0, 0
            while quiet < 25 and n < 750:  # 0.5 s with nothing new after it began (15 s max)
                await ws.send(media(n + 1, silence(20)))
                quiet = quiet + 1 if len(heard) > 8000 and len(heard) == sent else 0
                sent, n = len(heard), n + 1
                await asyncio.sleep(0.02)
            greeting_end = len(heard)
            audio = synthesize_ulaw8k("I would like to book an appointment") + silence(2500)
            chunks = [audio[i : i + 160].ljust(160, b"\xff") for i in range(0, len(audio), 160)]
            order = [k + (1 if k % 2 == 0 else -1) for k in range(len(chunks) - 1)]
            for k in order:
                await ws.send(media(n + 1 + k, chunks[k]))
                await asyncio.sleep(0.02)
            await ws.send(frame("stop", stop={"call_control_id": "v3:call-1"}))
            await asyncio.sleep(0.3)
            receiver.cancel()
        call = await bridge.call_record("v3:call-1")

    greeting = recognize_ulaw8k(
        bytes(heard[:greeting_end]), grammar_words=[GREETING, ASK_DAY, "goodbye"]
    )
    assert word_ratio(greeting, GREETING) >= 0.8, greeting
    answer = recognize_ulaw8k(
        bytes(heard[greeting_end:]), grammar_words=[GREETING, ASK_DAY, "goodbye"]
    )
    assert word_ratio(answer, ASK_DAY) >= 0.8, answer
    assert call["carrier"] == "telnyx"
    assert call["from_number"] == "+15550000001"
    users = [t["text"] for t in call["transcript"] if t["role"] == "user"]
    assert users == ["i would like to book an appointment"]  # reordered back, nothing lost
    assert call["end_reason"] == "Telnyx stopped the stream"
