"""Helpers of the dashboard's browser tests: the browser, and where Chromium and the docs' screenshot are."""
from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from tests.support.paths import REPO
from tests.support.waiting import wait_for

CHROMIUM = os.environ.get("KNAS_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("KNAS_TEST_CHROMEDRIVER", "/usr/bin/chromedriver")
# Known to work as root in a container; no network beyond loopback, a fresh profile per browser.
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--window-size=1400,1000", "--lang=en-US")
# Regenerate docs/img/job-page.png from a real job: KNAS_UPDATE_SCREENSHOT=1 pytest tests/dashboard -k finishes
UPDATE_SCREENSHOT = bool(os.environ.get("KNAS_UPDATE_SCREENSHOT"))
DOCS_SCREENSHOT = REPO / "docs" / "img" / "job-page.png"


def browser_missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not (Path(path).is_file() and os.access(path, os.X_OK)):
            return f"{path} is missing (apt-get install -y chromium chromium-driver; package {package})"
    return None


class Browser:
    """One headless Chromium on the dashboard, with the few waits and reads the tests need."""

    def __init__(self, base_url: str, binary: str, driver_path: str, artefacts: Path, name: str) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        self.base_url, self.artefacts, self.name = base_url, artefacts, name
        self.profile = Path(tempfile.mkdtemp(prefix="knas-chromium-"))
        self.downloads = artefacts / f"{name}-downloads"
        self.downloads.mkdir(parents=True, exist_ok=True)
        options = webdriver.ChromeOptions()
        options.binary_location = binary
        for flag in CHROMIUM_FLAGS:
            options.add_argument(flag)
        options.add_argument(f"--user-data-dir={self.profile}")
        options.add_experimental_option("prefs", {"download.default_directory": str(self.downloads),
                                                  "download.prompt_for_download": False})
        self.driver = webdriver.Chrome(service=Service(driver_path), options=options)
        self.driver.set_page_load_timeout(30)
        self.driver.execute_cdp_cmd("Browser.setDownloadBehavior",
                                    {"behavior": "allow", "downloadPath": str(self.downloads)})
        self.shots = 0

    def quit(self) -> None:
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self.profile, ignore_errors=True)

    # ---------------------------------------------------------------- navigation and reads

    def open(self, path: str) -> None:
        self.driver.get(self.base_url + path)

    def find(self, css: str, timeout: float = 15):
        """The first element matching `css`, waiting for it to exist and be displayed."""
        from selenium.common.exceptions import StaleElementReferenceException
        from selenium.webdriver.common.by import By

        def visible():
            try:
                return next((e for e in self.driver.find_elements(By.CSS_SELECTOR, css) if e.is_displayed()), None)
            except StaleElementReferenceException:  # re-rendered between the find and the check
                return None
        return wait_for(visible, timeout, interval=0.1, what=f"{css!r} on {self.driver.current_url}")

    def all(self, css: str) -> list:
        from selenium.webdriver.common.by import By

        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def text(self, css: str, timeout: float = 15) -> str:
        from selenium.common.exceptions import StaleElementReferenceException

        def read():
            try:
                return self.find(css, timeout).text
            except StaleElementReferenceException:
                return None
        return wait_for(read, timeout, interval=0.1, what=f"text of {css!r}")

    def wait_text(self, css: str, expected: Callable[[str], bool] | str, timeout: float = 30) -> str:
        """Wait until the element's text satisfies `expected` (or equals it); returns the text."""
        from selenium.common.exceptions import StaleElementReferenceException
        from selenium.webdriver.common.by import By

        check = expected if callable(expected) else (lambda text: text == expected)
        seen: list[str] = []

        def matches():
            try:
                elements = self.driver.find_elements(By.CSS_SELECTOR, css)
                text = elements[0].text if elements else None
            except StaleElementReferenceException:
                return None
            seen[:] = [repr(text)]
            return text if text is not None and check(text) else None
        try:
            return wait_for(matches, timeout, interval=0.2, what=f"{css!r} text")
        except AssertionError:
            self.screenshot("timeout")
            raise AssertionError(f"timed out after {timeout} s waiting for {css!r}; last text {seen}") from None

    def js(self, script: str, *args: Any) -> Any:
        return self.driver.execute_script(script, *args)

    def screenshot(self, label: str, path: Path | None = None, full_page: bool = False) -> Path:
        self.shots += 1
        path = path or self.artefacts / f"{self.name}-{self.shots:02d}-{label}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        if full_page:  # a tall window holds the whole page, from its top
            self.js("window.scrollTo(0, 0)")
            height = self.js("return document.documentElement.scrollHeight")
            self.driver.set_window_size(1400, min(int(height) + 40, 6000))
            time.sleep(0.3)
        self.driver.save_screenshot(str(path))
        if full_page:
            self.driver.set_window_size(1400, 1000)
        return path

    # ---------------------------------------------------------------- the dashboard

    def login(self, token: str) -> None:
        self.open("/ui/login")
        field = self.find("#token")
        field.clear()
        field.send_keys(token)
        self.find("#login-button").click()

    def token_in_tab(self) -> str | None:
        return self.js("return sessionStorage.getItem('knas.token')")
