"""Browser tests of the dashboard: headless Chromium (Debian's package) driven by Selenium.

The servers are the API tests' `LiveServer` (a real `knas serve` on a loopback port, tests/support/servers.py).
Without Chromium, chromedriver or selenium the browser tests skip — and fail under CI, where they must run.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.dashboard.browser_helpers import CHROMEDRIVER, CHROMIUM, Browser, browser_missing
from tests.support.require import require_service
from tests.support.servers import LiveServer, clean_env


@pytest.fixture(scope="session")
def chromium() -> tuple[str, str]:
    missing = browser_missing()
    if missing:
        require_service("a browser for the dashboard's browser tests", missing)
    return CHROMIUM, CHROMEDRIVER


@pytest.fixture
def open_browser(chromium, tmp_path: Path):
    """`open_browser(server, name)` -> a Browser on that server; all quit after the test."""
    opened: list[Browser] = []

    def start(server: Any, name: str = "browser") -> Browser:
        browser = Browser(server.url, *chromium, tmp_path, name)
        opened.append(browser)
        return browser

    yield start
    for browser in opened:
        browser.quit()


@pytest.fixture(scope="module")
def dashboard_server(tmp_path_factory):
    """An embedded `knas serve` of this module's own (its jobs run one at a time in the server)."""
    home = tmp_path_factory.mktemp("dashboard-home")
    server = LiveServer(clean_env(KNAS_HOME=str(home)), home / "server.log").start()
    yield server
    server.stop()


@pytest.fixture
def start_server(tmp_path: Path):
    """A server of the test's own: `start_server(KNAS_HOME=...)`; stopped afterwards."""
    started: list[LiveServer] = []

    def start(**env: str) -> LiveServer:
        server = LiveServer(clean_env(**env), tmp_path / f"server-{len(started)}.log")
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()
