"""Browser tests: Debian's chromium driven by playwright (async), the app served on loopback.

* ``launch_browser(fake_audio=None)`` launches headless chromium (``/usr/bin/chromium``, never a
  ``playwright install`` download) with a fake camera and microphone; ``fake_audio`` (a WAV file)
  becomes the microphone's sound, played once. Every browser is closed at teardown.
* ``open_page(browser, url)`` opens a page in a fresh context that records page errors and
  console errors (:class:`PageLog`); a page that threw fails its test.
* ``console`` serves the real app (its journal in ``tmp_path``) with the console's static files
  under ``/console``.
* ``artifacts`` is the directory for screenshots (``tests/artifacts/``, or
  ``$CALLBRIDGE_TEST_ARTIFACTS``).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from playwright.async_api import Browser, ConsoleMessage, Error, Page, async_playwright

from bridge.api.app import create_app
from bridge.config import Settings
from bridge.journal.store import JournalStore
from bridge.journal.writer import JournalWriter
from tests.auth import SECRET_KEY, authorize
from tests.servers import serve

REPO = Path(__file__).resolve().parents[2]

CHROMIUM_ARGS = (
    "--no-sandbox",  # CI runs as root, where chromium's sandbox cannot start
    "--disable-gpu",
    "--disable-quic",
    # Loopback only: no update checks, metrics, sync or first-run pages reaching out.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    # getUserMedia without a prompt, from fake devices (a tone, or the file given).
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--allow-loopback-in-peer-connection",
    "--autoplay-policy=no-user-gesture-required",
)

LaunchBrowser = Callable[..., Awaitable[Browser]]


def chromium_path() -> str:
    """The system chromium; skip the test (fail it on CI) when there is none."""
    path = shutil.which("chromium")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: CI must run the browser tests")
        pytest.skip("chromium is not installed (make test installs it)")
    return path


def fake_audio_arg(wav: Path) -> str:
    """Chromium's flag making ``wav`` the fake microphone; ``%noloop``: it plays once, then the
    microphone is silent."""
    return f"--use-file-for-fake-audio-capture={wav.resolve()}%noloop"


@pytest.fixture
async def launch_browser() -> AsyncIterator[LaunchBrowser]:
    """A factory: ``await launch_browser(fake_audio=None)`` → a headless chromium."""
    executable = chromium_path()
    browsers: list[Browser] = []
    async with async_playwright() as playwright:

        async def launch(fake_audio: Path | None = None) -> Browser:
            args = list(CHROMIUM_ARGS)
            if fake_audio is not None:
                args.append(fake_audio_arg(fake_audio))
            browser = await playwright.chromium.launch(
                executable_path=executable, headless=True, args=args
            )
            browsers.append(browser)
            return browser

        try:
            yield launch
        finally:
            for browser in browsers:
                await browser.close()


@dataclass
class PageLog:
    """What a page reported: uncaught exceptions, console errors and dialogs it opened."""

    errors: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def describe(self) -> str:
        lines = [f"page error: {text}" for text in self.errors]
        lines += [f"console error: {text}" for text in self.console]
        lines += [f"dialog: {text}" for text in self.dialogs]
        return "\n".join(lines) or "(nothing)"

    def check(self) -> None:
        """Fail if the page threw or opened a dialog (console errors are listed with it)."""
        if self.errors or self.dialogs:
            pytest.fail(f"the page misbehaved:\n{self.describe()}", pytrace=False)


def watch(page: Page) -> PageLog:
    """Record ``page``'s errors, console errors and dialogs (dismissed) into a :class:`PageLog`."""
    log = PageLog()

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            where = message.location.get("url", "")
            log.console.append(f"{message.text} ({where})" if where else message.text)

    async def on_dialog(dialog: Any) -> None:
        log.dialogs.append(f"{dialog.type}: {dialog.message}")
        await dialog.dismiss()

    def on_error(error: Error) -> None:
        log.errors.append(f"{error.name}: {error.message}\n{error.stack or ''}".strip())

    page.on("console", on_console)
    page.on("pageerror", on_error)
    page.on("dialog", on_dialog)
    return log


OpenPage = Callable[..., Awaitable[tuple[Page, PageLog]]]


@pytest.fixture
async def open_page() -> AsyncIterator[OpenPage]:
    """A factory: ``await open_page(browser, url, **context_options)`` → (page, its log).

    ``url=None`` opens a blank page (to set up routes before going anywhere). ``api_key`` is
    stored where the console keeps it, before any page script runs.
    The context defaults to en-US in UTC at 1280×800; pass ``timezone_id``, ``viewport``… to
    change them. At teardown, a page that threw or opened a dialog fails the test.
    """
    logs: list[PageLog] = []

    async def open_(
        browser: Browser, url: str | None, *, api_key: str | None = None, **options: Any
    ) -> tuple[Page, PageLog]:
        settings: dict[str, Any] = {
            "locale": "en-US",
            "timezone_id": "UTC",
            "viewport": {"width": 1280, "height": 800},
        }
        settings.update(options)
        context = await browser.new_context(**settings)
        if api_key is not None:  # what the console's key prompt stores
            await context.add_init_script(
                f"localStorage.setItem('callbridge.apiKey', {json.dumps(api_key)})"
            )
        page = await context.new_page()
        log = watch(page)
        logs.append(log)
        if url is not None:
            await page.goto(url)
        return page, log

    yield open_
    for log in logs:
        log.check()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where screenshots go: ``$CALLBRIDGE_TEST_ARTIFACTS`` or ``tests/artifacts/``."""
    directory = Path(os.environ.get("CALLBRIDGE_TEST_ARTIFACTS") or REPO / "tests" / "artifacts")
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@dataclass
class Console:
    """The app served on loopback: ``url`` is the console's base (``…/console/``)."""

    app: FastAPI
    base: str
    http: httpx.AsyncClient
    key: str
    """An admin API key of the default organization (``open_page(..., api_key=key)``)."""

    @property
    def url(self) -> str:
        return f"{self.base}/console/"

    @property
    def journal(self) -> JournalStore:
        store: JournalStore = self.app.state.journal
        return store

    @property
    def writer(self) -> JournalWriter:
        writer: JournalWriter = self.app.state.services.journal
        return writer


@pytest.fixture
async def console(tmp_path: Path) -> AsyncIterator[Console]:
    """The real app (agents from the repository, a fresh SQLite journal) on 127.0.0.1."""
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'journal.db'}",
        agents_dir=REPO / "agents",
        prompts_dir=REPO / "prompts",
        # An agent that needs no local recogniser: the app starts without warming one up.
        default_agent="default",
        secret_keys=(SECRET_KEY,),
    )
    app = create_app(settings, env={})  # the console is mounted at /console
    async with serve(app) as hostport:
        base = f"http://{hostport}"
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:
            key = await authorize(app, http)
            yield Console(app, base, http, key)
