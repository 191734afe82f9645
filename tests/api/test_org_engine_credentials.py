"""An organization's stored provider keys are what its calls' engines use."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bridge.runtime.engines import ENGINE_FACTORIES
from bridge.simulate.caller import TwilioCaller
from tests.api.test_twilio_webhooks import ACME_NUMBER, CALLER, PUBLIC, run
from tests.fakes.twilio_voice import stream_of

ACME_OPENAI = "sk-acme-0123456789abcdefghij"


async def test_an_organizations_calls_use_its_stored_keys(tmp_path: Path) -> None:
    async with run(tmp_path, public_url=PUBLIC, openai_api_key="sk-server-key-000000") as bridge:
        services = bridge.app.state.services
        seen: list[str | None] = []

        def capturing(agent: Any, rendered: Any, settings: Any, fmt: str, call_id: str) -> Any:
            seen.append(settings.openai_api_key)
            return ENGINE_FACTORIES["pipeline"](agent, rendered, settings, fmt, call_id)

        services.engine_factories["pipeline"] = capturing
        put = await bridge.http.put(
            "/v1/credentials/openai", json={"api_key": ACME_OPENAI}, headers=bridge.acme
        )
        assert put.status_code == 201, put.text

        params = bridge.twilio.voice_params(to=ACME_NUMBER, from_=CALLER)
        stream = stream_of((await bridge.twilio.post("/twilio/voice", params)).text)
        caller = TwilioCaller(
            bridge.twilio.loopback(stream.url),
            custom_parameters=stream.parameters,
            call_sid=params["CallSid"],
        )
        async with caller.connect():
            await caller.wait_for_agent_audio(min_bytes=2000, timeout=20)
            await caller.hang_up()
        assert seen == [ACME_OPENAI]
        # the default organization stored none: the server's key
        default = await services.org_settings("default")
        assert default.openai_api_key == "sk-server-key-000000"
        assert (await services.org_settings("acme")).openai_api_key == ACME_OPENAI
