"""Browser tests of the dashboard: headless Chromium (Debian's package) driven by Selenium.

The servers are the API tests' `InProcessServer` (the app served over HTTP on a loopback port, in this
process: tests/support/servers.py).
Without Chromium, chromedriver or selenium the browser tests skip — and fail under CI, where they must run.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.dashboard.browser_helpers import CHROMEDRIVER, CHROMIUM, Browser, browser_missing
from tests.support.require import require_service
from tests.support.servers import InProcessServer, clean_env


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
    """An embedded server of this module's own (its jobs run one at a time in the server)."""
    home = tmp_path_factory.mktemp("dashboard-home")
    server = InProcessServer(clean_env(KNAS_HOME=str(home))).start()
    yield server
    server.stop()


