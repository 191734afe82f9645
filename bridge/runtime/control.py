"""Live control of one call: what the control plane's API, carrier callbacks (a machine
answered) and the agent's built-in tools do to a call while it runs.

:class:`CallControl` is the :class:`~bridge.runtime.services.LiveCall` of a
:class:`~bridge.runtime.call.CallRuntime` (registered in ``Services.running``). Actions that
change the conversation are session events, checked against the state table first (a call
that is ending refuses them with :class:`ControlRefused`); hold music, keypad tones and the
carrier's transfer are I/O of their own, here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import TYPE_CHECKING

from twilio.twiml.voice_response import Dial, VoiceResponse

from bridge.agents.builtins import DTMF_DIGITS, TRANSFER_CALL
from bridge.audio.tones import dtmf, hold_music
from bridge.carriers.base import bytes_per_ms
from bridge.errors import CarrierApiError
from bridge.runtime.accounts import twilio_account
from bridge.runtime.link import CarrierLink
from bridge.runtime.services import ControlRefused
from bridge.session import actions as act
from bridge.session import events as ev
from bridge.session.state import HANDLED

if TYPE_CHECKING:
    from bridge.runtime.call import CallRuntime

__all__ = ["HOLD_CHUNK_S", "CallControl"]

HOLD_CHUNK_S = 1.0
"""Hold music goes to the carrier a second at a time, on an absolute schedule."""


class CallControl:
    def __init__(self, call: CallRuntime) -> None:
        self._call = call
        self._hold: asyncio.Task[None] | None = None

    @property
    def call_id(self) -> str:
        return self._call.call_id

    @property
    def org(self) -> str:
        return self._call.org

    def stop(self) -> None:
        """The call is over: stop the music."""
        if self._hold is not None:
            self._hold.cancel()

    async def _event(self, event: ev.Event, action: str) -> None:
        call = self._call
        if type(event) not in HANDLED[call.session.state] or call.over:
            raise ControlRefused(f"cannot {action} now: the call is {call.session.state.value}")
        await call.handle(event)

    async def hang_up(self, reason: str) -> None:
        await self._event(ev.HangUpRequested(reason), "hang up")

    async def say(self, text: str, *, interrupt: bool = False, then_hang_up: bool = False) -> None:
        if not self._call.session.config.capabilities.says_text:
            raise ControlRefused("this agent's engine cannot say a given text")
        await self._event(ev.SayRequested(text, interrupt, then_hang_up), "say a text")

    async def inject(self, role: str, text: str, *, respond: bool = True) -> None:
        await self._event(ev.MessageInjected(role, text, respond), "add a message")

    async def mute(self, *, caller: bool | None = None, agent: bool | None = None) -> None:
        await self._event(ev.MuteChanged(caller, agent), "mute")

    async def hold(self, on: bool) -> None:
        """Hold: both sides muted, the agent cut short, music to the caller; unhold: back."""
        if on == (self._hold is not None):
            return
        link = self._call.link
        if link is None:
            raise ControlRefused("cannot hold now: the call has no media yet")
        if on:
            await self._event(ev.MuteChanged(caller=True, agent=True, interrupt=True), "hold")
            await link.clear()
            self._hold = asyncio.create_task(self._play_hold_music(link))
        else:
            task, self._hold = self._hold, None
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await link.clear()
            await self._event(ev.MuteChanged(caller=False, agent=False), "unhold")
        self._call.journal("control", action="hold" if on else "unhold")

    async def _play_hold_music(self, link: CarrierLink) -> None:
        fmt = self._call.carrier_format
        music = hold_music(fmt)
        looped = music * 2
        chunk = int(bytes_per_ms(fmt) * 1000 * HOLD_CHUNK_S)
        loop = asyncio.get_running_loop()
        start, sent, position = loop.time(), 0, 0
        while not self._call.over:
            await link.play(looped[position : position + chunk])
            position = (position + chunk) % len(music)
            sent += 1
            # absolute schedule: a second ahead at most, never drifting
            await asyncio.sleep(max(0.0, start + (sent - 1) * HOLD_CHUNK_S - loop.time()))

    async def send_dtmf(self, digits: str) -> None:
        """Keypad tones into the call, after what the agent is saying."""
        if not DTMF_DIGITS.fullmatch(digits):
            raise ControlRefused(f"not DTMF digits: {digits!r}")
        link = self._call.link
        if link is None or self._call.over:
            raise ControlRefused("cannot send DTMF now: the call has no media")
        await link.play(dtmf(digits, self._call.carrier_format))
        self._call.journal("dtmf_sent", digits=digits)

    async def transfer(self, target: str) -> None:
        """Cold transfer: the carrier connects the caller to ``target`` and this bridge leaves
        the call. Only Twilio calls can be moved (a REST redirect to ``<Dial>``)."""
        await self._redirect(target)
        await self._call.handle(ev.Transferred(target))

    async def _redirect(self, target: str) -> None:
        call = self._call
        start = call.started
        if call.over or start is None:
            raise ControlRefused("cannot transfer now: the call is over")
        carrier = call.codec.carrier
        if carrier != "twilio" or not start.call_sid:
            raise ControlRefused(f"transfer is not supported for {carrier} calls")
        account = await twilio_account(call.services, call.org)
        if account is None:
            raise ControlRefused("transfer needs the organization's Twilio account")
        response = VoiceResponse()
        dial = Dial()
        if target.startswith("sip"):
            dial.sip(target)
        else:
            dial.number(target)
        response.append(dial)
        call.journal("transfer_requested", target=target)
        if not await account.redirect(start.call_sid, str(response)):
            raise ControlRefused("the call ended before it could be transferred")
        call.handed_over()

    async def run_builtin(self, action: act.RunTool) -> None:
        """The agent's ``transfer_call`` or ``send_dtmf``; the result goes back as a tool's."""
        call = self._call
        agent = call.agent
        assert agent is not None
        started = call.clock()
        try:
            if action.name == TRANSFER_CALL:
                name = str(action.arguments.get("target", ""))
                target = agent.transfer_targets.get(name)
                if target is None:
                    raise ControlRefused(f"unknown transfer target {name!r}")
                await call.played_out()  # the agent's "transferring you now" first
                await self._redirect(target)
                output = json.dumps({"ok": True, "transferred_to": name})
                duration = (call.clock() - started) * 1000
                await call.handle(ev.Transferred(target, action.call_id, output, duration))
                return
            await self.send_dtmf(str(action.arguments.get("digits", "")))
            ok, output = True, json.dumps({"ok": True})
        except (ControlRefused, CarrierApiError) as exc:
            ok, output = False, json.dumps({"error": str(exc)})
        duration = (call.clock() - started) * 1000
        await call.handle(ev.ToolResult(action.call_id, action.name, output, ok, duration))
