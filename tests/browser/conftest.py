"""The real app in a real browser: `streamlit run app.py` on a free 127.0.0.1 port with its own database file,
driven by Playwright through Debian's chromium (never a downloaded browser).

One server and one Chromium for the whole package (the walkthrough, then the idle-CPU check on the server the
walkthrough used): both started once. tests/conftest.py keeps the package on one xdist worker (group "browser")."""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from core.config import REPO_ROOT

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
SCREENSHOTS = REPO_ROOT / "tests" / "browser" / "screenshots"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="package")
def sync_api():
    api = pytest.importorskip("playwright.sync_api", reason="pip install playwright (make test installs it)")
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        pytest.skip("Debian's chromium is not installed: apt-get install -y chromium (make test / .ci/run do it)")
    return api


@contextlib.contextmanager
def app_server(tmp: Path):
    """The app as a person starts it, on its own database in ``tmp``; stopped (process group) at the end."""
    port = _free_port()
    env = dict(os.environ, SLM_DB=str(tmp / "browser.duckdb"))
    env.pop("FOUNDRY_LOCAL_ENDPOINT", None)
    log = open(tmp / "server.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port), "--server.address",
         "127.0.0.1", "--server.headless", "true", "--browser.gatherUsageStats", "false"],
        cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            try:
                urllib.request.urlopen(url + "/_stcore/health", timeout=1)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the app did not start: {(tmp / 'server.log').read_text()[-2000:]}")
                time.sleep(0.3)
        yield {"url": url, "db": tmp / "browser.duckdb", "log": tmp / "server.log", "tmp": tmp, "pid": proc.pid}
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


@pytest.fixture(scope="package")
def server(tmp_path_factory, sync_api):
    """The walkthrough's server (then the idle-CPU check on it); a module that needs an empty store of its own
    (the first-hour walk) starts its own with ``app_server``."""
    with app_server(tmp_path_factory.mktemp("browser")) as srv:
        yield srv


@pytest.fixture(scope="package")
def browser(sync_api):
    """Package-scoped, never session-scoped: Playwright's sync API runs an event loop on this thread while it is
    open, and the rest of the suite calls asyncio.run(), which refuses to start inside a running loop."""
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def page(browser, server):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    ctx = browser.new_context(viewport={"width": 1400, "height": 950}, accept_downloads=True)
    ctx.set_default_timeout(60_000)
    pg = ctx.new_page()
    yield pg
    ctx.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture(autouse=True)
def screenshot_on_failure(request):
    """What the person would have seen when a step failed: FAILED-<test>.png beside the other screenshots."""
    yield
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed and "page" in request.fixturenames:
        pg = request.getfixturevalue("page")
        try:
            pg.screenshot(path=str(SCREENSHOTS / f"FAILED-{request.node.name}.png"))
        except Exception:  # noqa: BLE001 - a screenshot must not hide the failure itself
            pass
