"""Twilio Media Streams from Twilio's side: :mod:`bridge.simulate.wire` as a :class:`CallerWire`."""

from __future__ import annotations

from collections.abc import Mapping

from bridge.simulate.carriers.base import BridgeMessage, CallerWire, Frame
from bridge.simulate.wire import StreamEncoder, new_sid, parse_bridge_message, twilio_signature

__all__ = ["TwilioWire"]


class TwilioWire(CallerWire):
    carrier = "twilio"

    def __init__(
        self,
        *,
        call_sid: str | None = None,
        stream_sid: str | None = None,
        account_sid: str | None = None,
        auth_token: str | None = None,
    ) -> None:
        super().__init__()
        self.call_sid = call_sid or new_sid("CA")
        self.stream_sid = stream_sid or new_sid("MZ")
        self.account_sid = account_sid or new_sid("AC")
        self.auth_token = auth_token
        self.encoder = StreamEncoder(
            stream_sid=self.stream_sid, account_sid=self.account_sid, call_sid=self.call_sid
        )

    def headers(self, url: str) -> Mapping[str, str]:
        if self.auth_token is None:
            return {}
        return {"X-Twilio-Signature": twilio_signature(url, self.auth_token)}

    def opening(self, parameters: Mapping[str, str]) -> list[Frame]:
        return [self.encoder.connected(), self.encoder.start(parameters)]

    def media(self, ulaw: bytes) -> Frame:
        return self.encoder.media(ulaw)

    def dtmf(self, digit: str) -> Frame:
        return self.encoder.dtmf(digit)

    def hangup(self) -> Frame | None:
        return self.encoder.stop()

    def mark_played(self, name: str) -> Frame | None:
        return self.encoder.mark(name)

    def parse(self, raw: str | bytes) -> list[BridgeMessage]:
        return [parse_bridge_message(raw, self.stream_sid)]
