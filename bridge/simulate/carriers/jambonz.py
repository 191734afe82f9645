"""jambonz ``listen`` (streaming bidirectional audio) from jambonz's side, for the simulated
caller (digest §5.5, jambonz's ``listen`` docs, and its ``mod_audio_fork`` source).

jambonz → bridge: the websocket offers subprotocol ``audio.jambonz.org``; one text frame of call
attributes first (``sampleRate``, ``mixType``, the call info, the verb's ``metadata`` merged in
at the top level — ``nested_metadata=True`` sends it as one object instead), then binary L16
frames, DTMF as ``{"event":"dtmf","dtmf":"5","duration":"1600"}`` (duration in RTP timestamp
units, as a string), and mark answers ``{"type":"mark","data":{"name","event":"playout"}}`` —
``"cleared"`` for the marks a ``killAudio`` flushed. A caller hang-up just closes the socket.

Bridge → jambonz, checked as jambonz does: binary L16 of any size (an odd byte is carried over
to the next frame, as ``mod_audio_fork`` does); ``killAudio``, ``mark`` with a string name,
``clearMarks`` (forget pending marks: never answered), ``disconnect`` (= the bridge hung up;
jambonz closes the socket, so any frame after it is a violation). Like ``mod_audio_fork`` the
wire tracks at most :data:`MAX_MARKS` pending marks and silently drops the rest
(``marks_dropped``). A sample of -1 (0xFFFF) arriving while marks are pending is a violation:
that value is jambonz's in-band mark placeholder, and it would be taken for a mark.
``playAudio`` is a violation too: jambonz ignores it when streaming.
"""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Mapping

import numpy as np

from bridge.simulate.carriers.base import (
    BridgeClear,
    BridgeHangup,
    BridgeMark,
    BridgeMedia,
    BridgeMessage,
    CallerWire,
    Frame,
    bad,
    json_object,
)

__all__ = ["MAX_MARKS", "JambonzWire"]

MAX_MARKS = 30
"""``MAX_MARKS`` in ``mod_audio_fork/lws_glue.cpp``: pending marks jambonz keeps track of."""


class JambonzWire(CallerWire):
    carrier = "jambonz"
    subprotocols = ("audio.jambonz.org",)

    def __init__(
        self,
        *,
        sample_rate: int = 8000,
        call_sid: str | None = None,
        caller: str = "+15550100001",
        called: str = "+15550100002",
        nested_metadata: bool = False,
    ) -> None:
        if sample_rate not in (8000, 16000, 24000):
            raise ValueError(
                f"the simulated listen verb streams 8, 16 or 24 kHz, not {sample_rate}"
            )
        self.audio_format = f"pcm16/{sample_rate}"
        super().__init__()
        self.sample_rate = sample_rate
        self.call_sid = call_sid or str(uuid.uuid4())
        self.caller, self.called = caller, called
        self.nested_metadata = nested_metadata
        self.disconnected = False
        self.marks_dropped = 0
        self.most_marks = 0  # most marks pending at once
        self._pending: list[str] = []  # marks tracked, in order
        self._forgotten: set[str] = set()  # clearMarks: never answered
        self._odd = b""  # a byte carried over to the next binary frame

    def opening(self, parameters: Mapping[str, str]) -> list[Frame]:
        info = {
            "callSid": self.call_sid,
            "direction": "inbound",
            "from": self.caller,
            "to": self.called,
            "callId": f"{secrets.token_hex(8)}@10.0.0.5",
            "sbcCallid": secrets.token_hex(12),
            "sipStatus": 200,
            "sipReason": "OK",
            "callStatus": "in-progress",
            "callerId": self.caller,
            "accountSid": str(uuid.uuid4()),
            "traceId": secrets.token_hex(16),
            "applicationSid": str(uuid.uuid4()),
            "fsSipAddress": "10.0.0.7:5070",
        }
        head = {"sampleRate": self.sample_rate, "mixType": "mono"}
        if self.nested_metadata:
            return [json.dumps({**head, **info, "metadata": dict(parameters)})]
        return [json.dumps({**head, **info, **parameters})]  # Object.assign, as jambonz does

    def media(self, ulaw: bytes) -> Frame:
        return self.to_wire(ulaw)

    def dtmf(self, digit: str) -> Frame:
        return json.dumps({"event": "dtmf", "dtmf": digit, "duration": "1600"})

    def hangup(self) -> Frame | None:
        return None  # jambonz closes the socket

    def mark_played(self, name: str) -> Frame | None:
        if name in self._forgotten:
            self._forgotten.discard(name)
            return None
        if name in self._pending:
            self._pending.remove(name)
        return self._mark_event(name, "playout")

    def cleared(self, flushed: list[str]) -> list[Frame]:
        answers: list[Frame] = [
            self._mark_event(name, "cleared") for name in flushed if name in self._pending
        ]
        self._pending.clear()
        self._forgotten.difference_update(flushed)
        return answers

    @staticmethod
    def _mark_event(name: str, event: str) -> str:
        return json.dumps({"type": "mark", "data": {"name": name, "event": event}})

    def parse(self, raw: str | bytes) -> list[BridgeMessage]:
        if self.disconnected:
            raise bad("frame after disconnect (jambonz has closed the socket)", raw)
        if isinstance(raw, bytes):
            return self._audio(raw)
        message = json_object(raw, "jambonz")
        kind = message.get("type")
        if kind == "killAudio":
            return [BridgeClear()]
        if kind == "mark":
            data = message.get("data")
            name = data.get("name") if isinstance(data, dict) else None
            if not isinstance(name, str):
                raise bad("mark without a string data.name", raw)
            if len(self._pending) >= MAX_MARKS:
                self.marks_dropped += 1  # jambonz logs "mark count exceeded" and drops it
                return []
            self._pending.append(name)
            self.most_marks = max(self.most_marks, len(self._pending))
            return [BridgeMark(name)]
        if kind == "clearMarks":
            self._forgotten.update(self._pending)
            self._pending.clear()
            return []
        if kind == "disconnect":
            self.disconnected = True
            return [BridgeHangup("disconnect")]
        if kind == "playAudio":
            raise bad("playAudio is ignored when bidirectionalAudio.streaming is on", raw)
        raise bad(f"unknown command type {kind!r}", raw)

    def _audio(self, raw: bytes) -> list[BridgeMessage]:
        data = self._odd + raw
        cut = len(data) - len(data) % 2
        data, self._odd = data[:cut], data[cut:]
        if self._pending and bool((np.frombuffer(data, dtype="<i2") == -1).any()):
            raise bad(
                "sample -1 (0xFFFF) while marks are pending: jambonz takes it for a mark", raw
            )
        return [BridgeMedia(self.from_wire(data))] if data else []
