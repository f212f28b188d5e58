"""A headless Chromium driven by Selenium, for the browser UI's tests and its screenshot.

It uses the distribution's ``chromium`` and ``chromedriver`` (Debian: the ``chromium`` and
``chromium-driver`` packages), given to Selenium by path, so nothing is downloaded at run time.
"""

from __future__ import annotations

import os
import shutil
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from selenium.webdriver.remote.webdriver import WebDriver

CHROMIUM = ("chromium", "chromium-browser")
CHROMEDRIVER = ("chromedriver",)
INSTALL_HINT = "install them with `apt-get update && apt-get install -y chromium chromium-driver` (.ci/run does this in CI)"


def _which(names: tuple[str, ...], default: str) -> str | None:
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    return default if os.path.exists(default) else None


def binaries() -> tuple[str, str] | None:
    """(chromium, chromedriver) paths, or None when either is missing."""
    browser = _which(CHROMIUM, "/usr/bin/chromium")
    driver = _which(CHROMEDRIVER, "/usr/bin/chromedriver")
    return (browser, driver) if browser and driver else None


def headless_chromium(width: int = 1440, height: int = 1000) -> WebDriver:
    """A new headless Chromium session (the caller quits it)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    found = binaries()
    if found is None:
        raise FileNotFoundError(f"chromium or chromedriver not found; {INSTALL_HINT}")
    browser, driver = found
    options = Options()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--no-first-run",
                "--disable-extensions", f"--window-size={width},{height}", "--force-device-scale-factor=1"):  # fmt: skip
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # console errors (CSP, scripts) readable
    return webdriver.Chrome(service=Service(executable_path=driver), options=options)


def chromium_or_skip() -> WebDriver:
    """A browser; without chromium and chromedriver, fail under CI (``CI`` set) and skip elsewhere."""
    if binaries() is None:
        message = f"the browser UI tests need chromium and chromedriver; {INSTALL_HINT}"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return headless_chromium()
