"""The console's journal pages (calls.html, call.html) in headless chromium, over the real app."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, Route, expect

from bridge.journal.ids import new_call_id
from bridge.journal.store import JournalStore
from bridge.session.actions import JournalAction, JournalEvent, JournalToolCall, JournalTurn
from tests.browser.conftest import Console, LaunchBrowser, OpenPage

T0 = datetime(2026, 11, 21, 9, 30, tzinfo=UTC)
HTML = "<img src=x onerror=alert(1)>"


async def seed(
    journal: JournalStore,
    *,
    started: datetime = T0,
    agent: str | None = "demo",
    status: str | None = "completed",
    end_reason: str | None = "caller_hangup",
    seconds: float = 65.3,
    records: Sequence[JournalAction] = (),
    carrier: str = "twilio",
    **fields: Any,
) -> str:
    """A call in the journal; ``status=None`` leaves it in progress."""
    call_id = new_call_id()
    await journal.create_call(call_id, carrier=carrier, started_at=started, agent=agent, **fields)
    await journal.add_records(call_id, records)
    if status is not None:
        ended = started + timedelta(seconds=seconds)
        await journal.finish_call(call_id, status=status, end_reason=end_reason, ended_at=ended)
    return call_id


async def shown_ids(page: Page) -> list[str]:
    ids: list[str] = await page.locator("#calls tbody tr[data-id]").evaluate_all(
        "rows => rows.map(row => row.dataset.id)"
    )
    return ids


async def wait_for_ids(page: Page, expected: list[str], limit_s: float = 5.0) -> None:
    """Wait until the list shows exactly ``expected``, in order."""
    deadline = asyncio.get_running_loop().time() + limit_s
    while (ids := await shown_ids(page)) != expected:
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"the list shows {ids}, expected {expected}")
        await asyncio.sleep(0.05)


async def apply_filters(page: Page, *, agent: str = "", status: str = "") -> None:
    field = page.get_by_label("Agent")
    if await field.evaluate("node => node.tagName") == "SELECT":  # GET /v1/agents answered
        await field.select_option(agent)
    else:
        await field.fill(agent)
    await page.get_by_label("Status").select_option(status)
    await page.get_by_role("button", name="Apply filters").click()


def fits_width(page: Page) -> Any:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def screenshot_ok(path: Path) -> None:
    assert path.is_file(), path
    assert path.stat().st_size > 20_000, f"{path} is only {path.stat().st_size} bytes"


async def test_call_page_shows_the_whole_call(
    console: Console, launch_browser: LaunchBrowser, open_page: OpenPage, artifacts: Path
) -> None:
    records: list[JournalAction] = [
        JournalTurn("agent", "Thanks for calling Brightwater. How can I help?", 0.4),
        JournalTurn("user", "Where is my order 42?", 3.2),
        JournalTurn("agent", "Let me look that up for you, one moment while I", 5.0, True),
        JournalEvent("carrier_cleared", 6.2, {"latency_ms": 3.2}),
        JournalTurn("user", "Sorry, it is order 42.", 6.1),
        JournalToolCall(
            "call_7", "lookup_order", {"order_id": "42"}, '{"status": "shipped"}', True, 7.1, 183.4
        ),
        JournalToolCall("call_8", "transfer", {"to": "sales"}, "timed out", False, 9.0, 2000.0),
        JournalEvent("protocol_error", 8.0, {"message": "unexpected frame", "code": 4}),
        JournalTurn("agent", "Your order 42 has shipped and arrives Friday.", 9.4),
    ]
    call_id = await seed(
        console.journal,
        agent="support",
        records=records,
        from_number="+15551230001",
        to_number="+15559870002",
        call_sid="CA0123456789",
        context={"customer_name": "Ada", "order": 42, "tier": {"level": "gold"}},
    )
    browser = await launch_browser()
    page, log = await open_page(
        browser, api_key=console.key, url=f"{console.url}call.html?id={call_id}"
    )

    await expect(page.locator("#call")).to_be_visible()
    await expect(page.locator("#status .badge")).to_have_text("completed")
    await expect(page.locator("h1")).to_have_text("Call from +15551230001")
    facts = page.locator("#facts")
    for label, value in [
        ("Agent", "support"),
        ("Carrier", "twilio"),
        ("From", "+15551230001"),
        ("To", "+15559870002"),
        ("Duration", "1:05.3"),
        ("End reason", "caller_hangup"),
        ("Call SID", "CA0123456789"),
        ("Stream SID", "—"),
    ]:
        await expect(facts.locator(f"div:has(> dt:text-is('{label}')) dd")).to_have_text(value)
    await expect(page.locator("#context dt")).to_have_text(["customer_name", "order", "tier"])
    await expect(page.locator("#context dd")).to_have_text(["Ada", "42", '{"level":"gold"}'])

    turns = page.locator("#transcript > li")
    await expect(turns).to_have_count(5)
    await expect(turns.nth(0)).to_have_class(re.compile(r"\bturn-agent\b"))
    await expect(turns.nth(0).locator(".turn-role")).to_have_text("Agent")
    await expect(turns.nth(0).locator(".offset")).to_have_text("0:00.4")
    await expect(turns.nth(1)).to_have_class(re.compile(r"\bturn-user\b"))
    await expect(turns.nth(1).locator(".turn-role")).to_have_text("Caller")
    await expect(turns.nth(1).locator(".turn-text")).to_have_text("Where is my order 42?")
    await expect(turns.nth(2)).to_have_class(re.compile(r"\binterrupted\b"))
    await expect(turns.nth(2).locator(".interrupted-mark")).to_have_text("interrupted")
    await expect(page.locator("#transcript .interrupted")).to_have_count(1)

    events = page.locator("#events tbody tr")
    await expect(events).to_have_count(2)
    await expect(events.nth(0).locator("td")).to_have_text(
        ["0:06.2", "carrier_cleared", "latency_ms=3.2"]
    )
    await expect(events.nth(1).locator("td")).to_have_text(
        ["0:08.0", "protocol_error", "message=unexpected frame code=4"]
    )

    tools = page.locator("#tools > li")
    await expect(tools).to_have_count(2)
    await expect(tools.nth(0).locator("h3")).to_have_text(re.compile(r"lookup_order\s*ok"))
    await expect(tools.nth(0)).to_contain_text("took 183 ms")
    await expect(tools.nth(0).locator("pre").nth(0)).to_have_text('{\n  "order_id": "42"\n}')
    await expect(tools.nth(0).locator("pre").nth(1)).to_have_text('{\n  "status": "shipped"\n}')
    await expect(tools.nth(1).locator(".badge")).to_have_text("failed")
    await expect(tools.nth(1)).to_contain_text("took 2.00 s")
    await expect(tools.nth(1).locator("pre").nth(1)).to_have_text("timed out")
    await expect(page.locator("#recording-panel")).to_be_hidden()  # the API has no recording

    shot = artifacts / "journal-call.png"
    await page.screenshot(path=str(shot), full_page=True)
    screenshot_ok(shot)
    await page.set_viewport_size({"width": 360, "height": 740})
    assert await fits_width(page), "call.html scrolls sideways at 360 px"
    await page.screenshot(path=str(artifacts / "journal-call-360.png"), full_page=True)
    log.check()
    assert not log.console, log.describe()


async def test_list_filters_pages_and_refreshes(
    console: Console, launch_browser: LaunchBrowser, open_page: OpenPage, artifacts: Path
) -> None:
    journal = console.journal
    a = await seed(journal, started=datetime(2026, 11, 19, 10, tzinfo=UTC), agent="demo")
    b = await seed(
        journal,
        started=datetime(2026, 11, 20, 23, 30, tzinfo=UTC),  # 21 November in Berlin
        agent="support",
        status="failed",
        end_reason="engine_error",
        seconds=4.2,
    )
    noon = datetime(2026, 11, 21, 12, tzinfo=UTC)
    c = await seed(journal, started=noon, agent="demo", status="rejected", end_reason="busy")
    d = await seed(journal, started=noon, agent="support")  # same instant as c, a greater id
    e = await seed(
        journal, started=datetime(2026, 11, 22, 9, tzinfo=UTC), agent="demo", status=None
    )
    browser = await launch_browser()

    # Paging, two at a time: c and d start at the same instant, across a page boundary.
    page, log = await open_page(
        browser,
        api_key=console.key,
        url=f"{console.url}calls.html?limit=2",
        timezone_id="Europe/Berlin",
    )
    await wait_for_ids(page, [e, d])
    await page.keyboard.press("Tab")  # keyboard users can skip the header
    await expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    await page.keyboard.press("Enter")
    await page.keyboard.press("Tab")
    await expect(page.get_by_label("Agent")).to_be_focused()
    more = page.get_by_role("button", name="Load more")
    await more.click()
    await wait_for_ids(page, [e, d, c, b])
    await more.click()
    await wait_for_ids(page, [e, d, c, b, a])
    await expect(more).to_be_hidden()
    log.check()

    page, log = await open_page(
        browser, api_key=console.key, url=f"{console.url}calls.html", timezone_id="Europe/Berlin"
    )
    await wait_for_ids(page, [e, d, c, b, a])
    row = page.locator(f"tr[data-id='{b}'] td")
    await expect(row).to_have_text(
        [
            re.compile("Nov 21, 2026"),
            "support",
            "twilio",
            "failed",
            "0:04.2",
            "— → —",
            "engine_error",
        ]
    )
    await expect(page.locator(f"tr[data-id='{e}'] .badge")).to_have_text("in-progress")
    link = page.locator(f"tr[data-id='{d}'] a")
    await expect(link).to_have_attribute("href", f"call.html?id={d}")

    await apply_filters(page, status="failed")
    await wait_for_ids(page, [b])
    await expect(page).to_have_url(re.compile(r"calls\.html\?status=failed$"))
    await apply_filters(page, agent="demo")
    await wait_for_ids(page, [e, c, a])
    await expect(page).to_have_url(re.compile(r"calls\.html\?agent=demo$"))
    await apply_filters(page)
    await page.get_by_label("Started from").fill("2026-11-21")
    await page.get_by_label("Started to").fill("2026-11-21")
    await page.get_by_role("button", name="Apply filters").click()
    await wait_for_ids(page, [d, c, b])  # the local (Berlin) day, b included
    await expect(page).to_have_url(re.compile(r"from=2026-11-21&to=2026-11-21$"))
    await page.go_back()  # the filters are history entries
    await wait_for_ids(page, [e, d, c, b, a])
    await expect(page.get_by_label("Started from")).to_have_value("")

    # Journaled after the page loaded: the since_id refresh puts it on top, without a reload.
    await page.evaluate("window.loadedOnce = true")
    f = await seed(
        journal, started=datetime(2026, 11, 22, 10, tzinfo=UTC), agent="demo", status=None
    )
    await journal.finish_call(
        e,
        status="completed",
        end_reason="agent_hangup",
        ended_at=datetime(2026, 11, 22, 9, 2, tzinfo=UTC),
    )
    await wait_for_ids(page, [f, e, d, c, b, a], limit_s=8)
    await expect(page.locator(f"tr[data-id='{e}'] .badge")).to_have_text("completed")
    await expect(page.locator(f"tr[data-id='{e}'] td").nth(4)).to_have_text("2:00.0")
    await expect(page.locator("#announce")).to_have_text("1 new call")
    assert await page.evaluate("window.loadedOnce === true")  # the same document
    await page.screenshot(path=str(artifacts / "journal-list.png"), full_page=True)
    screenshot_ok(artifacts / "journal-list.png")

    # With a status filter, a call that starts afterwards is watched until it ends as one.
    await apply_filters(page, status="failed")
    await wait_for_ids(page, [b])
    g = await seed(
        journal, started=datetime(2026, 11, 22, 10, 5, tzinfo=UTC), agent="support", status=None
    )
    async with page.expect_response(lambda r: "since_id=" in r.url and "limit=500" in r.url):
        await page.get_by_role("button", name="Refresh").click()
    await journal.finish_call(
        g,
        status="failed",
        end_reason="engine_error",
        ended_at=datetime(2026, 11, 22, 10, 6, tzinfo=UTC),
    )
    await page.get_by_role("button", name="Refresh").click()
    await wait_for_ids(page, [g, b])
    await expect(page.locator("#announce")).to_have_text("1 new call")

    await page.set_viewport_size({"width": 360, "height": 740})
    assert await fits_width(page), "calls.html scrolls sideways at 360 px"
    log.check()


async def test_journal_text_is_never_markup(
    console: Console, launch_browser: LaunchBrowser, open_page: OpenPage
) -> None:
    call_id = await seed(
        console.journal,
        agent="demo",
        end_reason="<i>hung up</i>",
        from_number="<b>+1555</b>",
        context={"note": "<script>alert(2)</script>"},
        records=[
            JournalTurn("user", HTML, 1.0),
            JournalEvent("protocol_error", 2.0, {"message": HTML}),
            JournalToolCall("call_1", "lookup_order", {"order_id": HTML}, HTML, True, 3.0, 5.0),
        ],
    )
    browser = await launch_browser()
    page, log = await open_page(
        browser, api_key=console.key, url=f"{console.url}call.html?id={call_id}"
    )
    await expect(page.locator("#transcript .turn-text")).to_have_text(HTML)
    await expect(page.locator("h1")).to_have_text("Call from <b>+1555</b>")
    await expect(page.locator("#context dd")).to_have_text("<script>alert(2)</script>")
    await expect(page.locator("#events tbody td").nth(2)).to_have_text(f"message={HTML}")
    await expect(page.locator("#tools pre").nth(1)).to_have_text(HTML)
    await page.wait_for_load_state("networkidle")  # an injected <img> would have failed by now
    assert await page.locator("main img, main script, main b, main i").count() == 0

    page, log = await open_page(browser, api_key=console.key, url=f"{console.url}calls.html")
    row = page.locator(f"tr[data-id='{call_id}'] td")
    await expect(row.nth(5)).to_have_text("<b>+1555</b> → —")
    await expect(row.nth(6)).to_have_text("<i>hung up</i>")
    await page.wait_for_load_state("networkidle")
    assert await page.locator("main img, main b, main i").count() == 0
    log.check()  # no dialog opened, nothing threw


async def test_unknown_or_missing_call_id_says_so(
    console: Console, launch_browser: LaunchBrowser, open_page: OpenPage
) -> None:
    browser = await launch_browser()
    unknown = "01ARZ3NDEKTSV4RRFFQ69G5FAV"
    page, log = await open_page(
        browser, api_key=console.key, url=f"{console.url}call.html?id={unknown}"
    )
    await expect(page.get_by_role("alert")).to_have_text(
        f"No call with the id “{unknown}” is in the journal."
    )
    await expect(page.locator("#call")).to_be_hidden()
    await expect(page.locator("#loading")).to_be_hidden()
    assert any("404" in text for text in log.console), log.describe()  # the API's answer

    page, _ = await open_page(browser, api_key=console.key, url=f"{console.url}call.html")
    await expect(page.get_by_role("alert")).to_have_text(re.compile(r"^No call id given"))


@pytest.mark.parametrize("stream", [True, False], ids=["live-stream", "polling"])
async def test_live_call_follows_until_it_ends(
    console: Console, launch_browser: LaunchBrowser, open_page: OpenPage, stream: bool
) -> None:
    writer = console.writer
    call_id = new_call_id()
    writer.call_started(call_id, carrier="twilio", started_at=T0, agent="demo")
    writer.record(call_id, JournalTurn("agent", "Hello, Riverside Dental.", 0.5))
    await writer.flush()
    browser = await launch_browser()
    page, log = await open_page(browser, api_key=console.key, url=None)
    live = page.wait_for_event("request", lambda r: r.url.endswith(f"/{call_id}/live"))
    if not stream:  # the stream fails: the page falls back to re-fetching every 3 s
        await page.route(f"**/v1/calls/{call_id}/live", lambda route: route.abort())
    await page.goto(f"{console.url}call.html?id={call_id}")
    await live
    await expect(page.locator("#status .badge")).to_have_text("in-progress")
    await expect(page.locator("#live")).to_have_text(re.compile("Live call"))
    await expect(page.locator("#transcript")).to_have_attribute("aria-live", "polite")

    # The live stream, or without it a re-fetch every 3 s, brings the turn and the end.
    writer.record(call_id, JournalTurn("user", "I would like an appointment.", 2.0))
    writer.record(call_id, JournalEvent("carrier_cleared", 2.1, {"latency_ms": 1.5}))
    writer.call_finished(
        call_id, status="completed", end_reason="caller_hangup", ended_at=T0 + timedelta(seconds=9)
    )
    await writer.flush()
    await expect(page.locator("#status .badge")).to_have_text("completed", timeout=8000)
    await expect(page.locator("#transcript .turn-text")).to_have_text(
        ["Hello, Riverside Dental.", "I would like an appointment."]
    )
    await expect(page.locator("#events tbody tr")).to_have_count(1)
    await expect(page.locator("#live")).to_have_text("The call ended: completed.", timeout=8000)
    await expect(page.locator("#facts div:has(> dt:text-is('Duration')) dd")).to_have_text("0:09.0")
    log.check()


async def test_recording_url_gets_a_player(
    console: Console, launch_browser: LaunchBrowser, open_page: OpenPage
) -> None:
    call_id = await seed(console.journal)
    recording: dict[str, Any] = {"recording_url": "/recordings/call.wav"}

    async def with_recording(route: Route) -> None:  # the API does not have the field yet
        response = await route.fetch()
        body = json.loads(await response.text())
        await route.fulfill(response=response, json=body | recording)

    browser = await launch_browser()
    page, log = await open_page(browser, api_key=console.key, url=None)
    await page.route(f"**/v1/calls/{call_id}", with_recording)
    await page.goto(f"{console.url}call.html?id={call_id}")
    audio = page.locator("#recording audio")
    await expect(audio).to_have_attribute("src", f"{console.base}/recordings/call.wav")
    await expect(audio).to_have_attribute("preload", "none")
    await expect(audio).to_have_attribute("controls", "")

    recording["recording_url"] = "javascript:alert(1)"
    await page.reload()
    await expect(page.locator("#call")).to_be_visible()
    await expect(page.locator("#recording-panel")).to_be_hidden()
    recording["recording_url"] = None
    await page.reload()
    await expect(page.locator("#call")).to_be_visible()
    await expect(page.locator("#recording-panel")).to_be_hidden()
    log.check()
