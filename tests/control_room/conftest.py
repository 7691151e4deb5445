import os

import pytest

from .browser import launch


@pytest.fixture(autouse=True)
def investigation_panels():
    """The incident page as shipped: the investigation's panels registered (InvestigationConfig.ready()
    does this too; registering is idempotent)."""
    from investigation import panels

    panels.register()


@pytest.fixture(scope="module")
def browser():
    """One Chromium per test module.

    Playwright's sync API keeps an asyncio loop in this thread, which makes Django refuse ORM calls
    ("async context"); the tests' ORM calls are plain sync code, so allow them while the browser
    lives and restore the guard afterwards (module scope: later modules run with it again).
    """
    from playwright.sync_api import sync_playwright

    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            chromium = launch(playwright)
            yield chromium
            chromium.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous
