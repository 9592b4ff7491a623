"""Loaded models and servers: listed with their process and memory, unloaded on demand or when idle,
and they die with the app (even a SIGKILLed one)."""
import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

from core.catalog.starter import starter_gguf_path
from core.config import REPO_ROOT
from core.engines import pool

pytestmark = pytest.mark.models


@pytest.fixture(scope="module")
def gguf():
    path = starter_gguf_path()
    if not path.is_file():
        pytest.skip("starter GGUF not built (python -m core setup-models)")
    return str(path)


def gone(pid: int, within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.1)
    return False


def test_listed_unloaded_when_idle(gguf):
    shared = pool.shared_pool()
    before = time.monotonic()
    shared.load({"id": "smollm2-135m-instruct-gguf", "backend": "llamacpp", "path": gguf})
    loaded = time.monotonic()       # it was last used between `before` and `loaded`
    try:
        (row,) = [r for r in pool.loaded_everywhere() if r["id"] == "smollm2-135m-instruct-gguf"]
        assert row["kind"] == "model" and row["backend"] == "llamacpp" and row["rss_mb"] > 10
        pid = row["pid"]
        assert psutil.pid_exists(pid)
        time.sleep(0.5)
        # idle limits 10x away from the measured idle time on either side, whatever the load on the machine
        assert pool.unload_idle(10 * (time.monotonic() - before)) == []     # idle for less: kept
        assert "smollm2-135m-instruct-gguf" in pool.unload_idle((time.monotonic() - loaded) / 10)
        assert not [r for r in pool.loaded_everywhere() if r["id"] == "smollm2-135m-instruct-gguf"]
        assert gone(pid, 15)                                 # its process ended, its memory returned
    finally:
        shared.close_all()


def test_llamacpp_server_dies_with_a_killed_app(gguf):
    """The app (here a child Python that opened the engine) is SIGKILLed: no atexit runs, yet the server ends."""
    code = textwrap.dedent(f"""
        import sys, time
        from core.engines.llamacpp import LlamaCppEngine
        e = LlamaCppEngine({gguf!r})
        e.open()
        print(e.pid(), flush=True)
        time.sleep(600)
    """)
    app = subprocess.Popen([sys.executable, "-c", code], cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True,
                           env=dict(os.environ, PYTHONPATH=str(REPO_ROOT)))
    try:
        server_pid = int(app.stdout.readline())
        assert psutil.pid_exists(server_pid)
        app.send_signal(signal.SIGKILL)
        app.wait(10)
        assert gone(server_pid, 15), "the llama.cpp server outlived the app"
    finally:
        if app.poll() is None:
            app.kill()
