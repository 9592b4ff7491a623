"""The app never competes with the model: a real Streamlit server with a page open uses (almost) no CPU
while idle. (The file watcher once followed .venv/ and data/models/ and burned a whole core.)"""
import os
import socket
import subprocess
import sys
import time
import urllib.request

import psutil

from core.config import REPO_ROOT

IDLE_LIMIT = 0.02     # of one core
SAMPLE_S = 5.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


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


def test_streamlit_server_idle_cpu_with_a_page_open(tmp_path):
    port = free_port()
    env = dict(os.environ, SLM_DB=str(tmp_path / "idle.duckdb"))
    server = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
         "--server.address", "127.0.0.1", "--server.headless", "true"],
        cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            assert server.poll() is None, server.stderr.read()
            try:
                with urllib.request.urlopen(base + "/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "streamlit did not start"
            time.sleep(0.2)
        with urllib.request.urlopen(base + "/", timeout=10) as r:      # the page, as a browser opens it
            assert r.status == 200 and b"<html" in r.read().lower()
        time.sleep(1.0)                                                  # start-up work settles
        proc = psutil.Process(server.pid)
        c0, t0 = cpu_s(proc), time.monotonic()
        time.sleep(SAMPLE_S)
        used = (cpu_s(proc) - c0) / (time.monotonic() - t0)
        print(f"idle Streamlit server: {used * 100:.2f}% of a core over {SAMPLE_S:.0f} s")
        assert used <= IDLE_LIMIT, f"the idle app uses {used * 100:.1f}% of a core (limit {IDLE_LIMIT * 100:.0f}%)"
    finally:
        server.terminate()
        try:
            server.wait(15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(5)
