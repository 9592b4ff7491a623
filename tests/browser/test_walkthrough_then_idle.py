"""The app never competes with the model: a real Streamlit server with a page open in a browser uses (almost) no
CPU while idle. (The file watcher once followed .venv/ and data/models/ and burned a whole core.)

It runs on the browser package's one server and Chromium (tests/browser/conftest.py), after the walkthrough
(this file's name sorts after test_walkthrough.py): the server has served every page, run a benchmark and a judge
and may hold a model loaded, which is how a user leaves it too."""
import time

import psutil
import pytest

from core.config import REPO_ROOT

IDLE_LIMIT = 0.02     # of one core
SAMPLE_S = 10.0
SETTLE_S = 20.0


def cpu_s(proc: psutil.Process) -> float:
    total = 0.0
    for p in [proc, *proc.children(recursive=True)]:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def test_file_watcher_is_off():
    import tomllib
    config = tomllib.loads((REPO_ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["fileWatcherType"] == "none"
    assert config["server"].get("runOnSave") is False


def test_streamlit_server_idle_cpu_with_a_page_open(server, browser, sync_api):
    """The home page open in Chromium (a real websocket session: the page script has run and drawn), then 10 s of
    the server's CPU (its whole process tree) while the page sits there. A page that polled or reran (say an
    `st.fragment(run_every=0.5)`) costs the server a script run every time, far above the limit."""
    api = sync_api
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(server["url"] + "/")
        # idle: the script ran (the home page's title and its sidebar are drawn) and is not running
        api.expect(page.locator("[data-testid=stMain] h1").first).to_have_text("SLM Selector", timeout=90_000)
        api.expect(page.locator("[data-testid=stApp]")).to_have_attribute(
            "data-test-script-state", "notRunning", timeout=90_000)
        api.expect(page.locator("[data-testid=stSidebar]")).to_contain_text("Loaded models and servers",
                                                                           timeout=30_000)
        proc = psutil.Process(server["pid"])
        # start-up work settles (a fresh clone compiles what the first script run imported lazily):
        # wait, up to SETTLE_S, for one second below the limit; then the 10 s that count
        settle_end = time.monotonic() + SETTLE_S
        while time.monotonic() < settle_end:
            c, t = cpu_s(proc), time.monotonic()
            time.sleep(1.0)
            if (cpu_s(proc) - c) / (time.monotonic() - t) <= IDLE_LIMIT:
                break
        c0, t0 = cpu_s(proc), time.monotonic()
        time.sleep(SAMPLE_S)
        used = (cpu_s(proc) - c0) / (time.monotonic() - t0)
        # the page is still there, still idle, and the session still alive (the websocket is open)
        api.expect(page.locator("[data-testid=stApp]")).to_have_attribute(
            "data-test-script-state", "notRunning", timeout=5_000)
        assert page.locator("[data-testid=stMain] h1").first.inner_text() == "SLM Selector"
    finally:
        context.close()
    print(f"idle Streamlit server with the home page open: {used * 100:.2f}% of a core over {SAMPLE_S:.0f} s")
    assert used <= IDLE_LIMIT, f"the idle app uses {used * 100:.1f}% of a core (limit {IDLE_LIMIT * 100:.0f}%)"
