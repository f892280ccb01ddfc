"""Browser tests: Debian's chromium driven by Playwright, against pytest-django's live server,
with the integration tests' real redis-server and real celery worker (the real engine, tiny images)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

# The worker, broker and shared_media fixtures are the session's (tests/processes.py): one
# redis-server and one worker, a shared database file and media folder.

# Playwright's sync API runs an event loop in this thread; the test's own ORM calls are
# plain blocking calls all the same.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-dev-shm-usage"]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


@pytest.fixture(scope="module")
def browser():
    """One chromium per test module: Playwright's sync API keeps an event loop running in this
    thread while it is open, which must be gone before the suite's async tests run."""
    if not CHROMIUM.exists() and not shutil.which("chromium"):
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900}, device_scale_factor=1)
    context.set_default_timeout(30_000)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    tab.js_errors = errors
    try:
        yield tab
    finally:
        context.close()


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture
def site(live_server, settings, shared_media, broker):
    """The live server's URL, with the settings a plain-HTTP localhost run needs."""
    settings.SESSION_COOKIE_SECURE = False
    settings.CSRF_COOKIE_SECURE = False
    settings.SECURE_SSL_REDIRECT = False
    return live_server.url


@pytest.fixture
def photos(tmp_path, sample_photo):
    """Small copies (48 px) of real sample photos from ../shared/images, as files to upload."""
    paths = {}
    for key, kind, name in (("content", "content", "chelsea.png"), ("style", "style", "starry_night.jpg"),
                            ("style2", "style", "the_scream.jpg")):
        path = tmp_path / f"{key}-{name.rsplit('.', 1)[0]}.png"
        path.write_bytes(sample_photo(kind, name, 48))
        paths[key] = path
    return paths
