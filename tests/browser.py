"""A real browser for end-to-end tests: the review app served by uvicorn in a thread, Debian's headless chromium
driven by selenium through Debian's chromedriver (no browser download: this machine's network is closed)."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import uvicorn
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.expected_conditions import staleness_of
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
DOCS = Path(__file__).resolve().parent.parent / "docs"  # where the README screenshots go
FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,1000",
]


def browser_missing() -> str | None:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not shutil.which(p)]
    return (
        f"{' and '.join(missing)} not installed (Debian packages chromium, chromium-driver; `make test` installs them)"
        if missing
        else None
    )


@contextmanager
def served(app):
    """Serve an ASGI app on a free loopback port; yields its base URL."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@contextmanager
def chromium(tmp_dir):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS + [f"--user-data-dir={tmp_dir}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.implicitly_wait(5)
    try:
        yield driver
    finally:
        driver.quit()


def absent(driver, by: str, value: str) -> bool:
    """No such element on the page as it is now. find_elements would wait the implicit 5 s for each absent element;
    the page has loaded already, so there is nothing to wait for."""
    driver.implicitly_wait(0)
    try:
        return not driver.find_elements(by, value)
    finally:
        driver.implicitly_wait(5)


def click_and_wait(driver, element) -> None:
    """Click something that loads a new page, and wait until it has (the old page's <html> goes stale)."""
    old = driver.find_element("tag name", "html")
    element.click()
    WebDriverWait(driver, 10).until(lambda d: _gone(old))


def _gone(element) -> bool:
    """staleness_of, plus chromedriver's other word for it: while the new page replaces the old one it may answer
    'Node with given id does not belong to the document' instead of a stale-element error."""
    from selenium.common.exceptions import WebDriverException

    try:
        return staleness_of(element)(None)
    except WebDriverException as e:
        if "does not belong to the document" in str(e):
            return True
        raise


def log_in(driver, base: str, user: str, password: str) -> None:
    driver.get(f"{base}/login")
    driver.find_element("id", "username").send_keys(user)
    driver.find_element("id", "password").send_keys(password)
    click_and_wait(driver, driver.find_element("id", "login"))


def skip_module_without_browser() -> None:
    """A machine without chromium may opt out (THB_SKIP_BROWSER=1); otherwise a missing browser fails the tests loudly."""
    if browser_missing() and os.environ.get("THB_SKIP_BROWSER") == "1":
        pytest.skip(browser_missing(), allow_module_level=True)
