"""Start tests/support/openai_server.py in its own process (so its CPU is not the client's)."""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


@contextlib.contextmanager
def server_process(*args: str):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    proc = subprocess.Popen([sys.executable, "-m", "tests.support.openai_server", "--port", "0", *args],
                            cwd=REPO, env=env, stdout=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip()
        if not url.startswith("http"):
            raise RuntimeError("test server did not start")
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def cpu_s(pid: int | None = None) -> float:
    """User + system CPU seconds of a process (this one by default), children excluded."""
    if pid is None:
        t = os.times()
        return t.user + t.system
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
