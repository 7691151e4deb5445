"""Playwright driving Debian's Chromium by path (no browser download) for the control room tests."""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
PASSWORD = "correct-horse-battery-staple"
VIEWPORT = {"width": 1280, "height": 800}
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"


def off_loop(fn, *args, **kwargs):
    """Run `fn` on a worker thread and return its result.

    Playwright's sync API keeps an asyncio loop running on the test's thread, where
    `async_to_sync` (used by incidents.events to publish after commit) refuses to run; service
    calls whose live events matter go through here.
    """
    from django.db import connection

    def call():
        try:
            return fn(*args, **kwargs)
        finally:
            connection.close()

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(call).result()


def launch(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def sign_in(page, base_url: str, username: str, password: str = PASSWORD, next_path: str = "/"):
    """Sign in through the real login form, in whatever page or frame is given."""
    page.goto(f"{base_url}/accounts/login/?next={next_path}")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")


def new_page(browser, base_url: str, username: str, next_path: str = "/"):
    context = browser.new_context(viewport=VIEWPORT, base_url=base_url)
    page = context.new_page()
    sign_in(page, base_url, username, next_path=next_path)
    page.wait_for_url(f"{base_url}{next_path}")
    wait_live(page)
    return page


def wait_live(target, timeout: float = 5000):
    """Wait until the page's WebSocket is connected (the live script marks <body>) and the catch-up
    refresh that every (re)connection starts has been swapped in, so what a test changes next is
    what the page's next refresh shows."""
    target.locator("body[data-live-state=live]").wait_for(timeout=timeout)
    idle = "() => !document.querySelector('.htmx-request')"
    if hasattr(target, "wait_for_function"):  # a Page or Frame; a FrameLocator can only wait for elements
        target.wait_for_function(idle, timeout=timeout)
    else:
        target.locator("body:not(:has(.htmx-request))").wait_for(timeout=timeout)


def screenshot_path(name: str, tmp_path: Path) -> Path:
    """docs/screenshots/ when UPDATE_SCREENSHOTS=1 (committed images), else the test's tmp dir."""
    if os.environ.get("UPDATE_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        return SCREENSHOTS / name
    return tmp_path / name


@contextmanager
def static_site(directory: Path):
    """A tiny http.server on another loopback port: stands in for Grafana's origin."""
    handler = partial(_QuietHandler, directory=str(directory))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass
