"""One Foundry Local model per worker process: the parent's side (`FoundryWorker`, a handle on the child).

Why a process per model: its memory is measured alone (RSS before/after load, peak VmHWM), a native
crash cannot take the app down, and the memory is returned when the process exits (the runtime keeps
much of it after `unload()`). The child is `core.engines.foundry_server`; the protocol between them is
described there.
"""
from __future__ import annotations

import atexit
import json
import os
import select
import subprocess
import sys
import threading
import time
from typing import Iterator

from core.catalog.foundry.loaded import live_workers, loaded_model_ids, track, untrack  # noqa: F401 (loaded_model_ids re-exported)
from core.config import REPO_ROOT
from core.engines.proc import process_stats
from core.errors import UserError

READY_TIMEOUT_S = 60.0
CANCEL_GRACE_S = 30.0  # how long a cancel may take (a long prompt's prefill is not interruptible) before a kill
TIMED_OUT = {"timed_out": True}   # what _read returns when nothing came in time (compared by identity)


class FoundryWorker:
    """A worker process that loads `model_id` from Foundry Local and streams chat answers."""

    def __init__(self, model_id: str):
        self.model_id = model_id
        self.proc: subprocess.Popen | None = None
        self.loaded = False
        self._lock = threading.Lock()
        self._log = None
        self._buf = bytearray()
        self._stopped: str | None = None   # why the worker was killed (a stalled request), if it was

    # lifecycle ------------------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> "FoundryWorker":
        if self.alive:
            return self
        from core.catalog.foundry import NATIVE_LOG

        NATIVE_LOG.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(NATIVE_LOG, "ab")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "core.engines.foundry_server"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log,
            cwd=str(REPO_ROOT), env=env,
        )
        self._fd = self.proc.stdout.fileno()
        self._buf = bytearray()
        self._stopped = None
        track(self)
        ready = self._read(timeout_s=READY_TIMEOUT_S)
        if ready is None or not ready.get("ok"):
            reason = (ready or {}).get("error") or self._exit_reason()
            self.close()
            raise UserError(f"Foundry Local worker for {self.model_id} did not start: {reason}")
        return self

    def close(self, timeout_s: float = 10.0) -> None:
        """Ask the worker to exit, wait for it, kill it if it does not."""
        proc, self.proc = self.proc, None
        self.loaded = False
        untrack(self)
        if proc is not None:
            if proc.poll() is None:
                try:
                    proc.stdin.write(b'{"op": "exit"}\n')
                    proc.stdin.flush()
                except (BrokenPipeError, OSError, ValueError):
                    pass
                try:
                    proc.wait(timeout=timeout_s)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            for stream in (proc.stdin, proc.stdout):
                try:
                    stream.close()
                except Exception:
                    pass
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> "FoundryWorker":
        return self.start()

    def __exit__(self, *_exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close(timeout_s=2.0)
        except Exception:
            pass

    # protocol ---------------------------------------------------------------------------------------
    def _send(self, message: dict) -> None:
        if not self.alive:
            raise UserError(f"Foundry Local worker for {self.model_id} is not running ({self._exit_reason()})")
        try:
            self.proc.stdin.write((json.dumps(message) + "\n").encode())
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            raise UserError(f"Foundry Local worker for {self.model_id} stopped: {self._exit_reason()}") from exc

    def _read(self, timeout_s: float | None = None) -> dict | None:
        """Next message from the worker: None when it exited, TIMED_OUT when no whole message came
        within timeout_s (None: wait as long as it takes). Reads the pipe itself, with its own buffer,
        so the timeout holds whatever has been buffered."""
        if self.proc is None:
            return None
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while b"\n" not in self._buf:
            if deadline is not None:
                ready, _, _ = select.select([self._fd], [], [], max(deadline - time.monotonic(), 0.0))
                if not ready:
                    return TIMED_OUT
            try:
                data = os.read(self._fd, 65536)
            except OSError:
                data = b""
            if not data:
                try:
                    self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
                return None
            self._buf += data
        line, _, rest = self._buf.partition(b"\n")
        self._buf = bytearray(rest)
        return json.loads(line)

    def _cancel_or_kill(self) -> bool:
        """Cancel the request in flight and drain it; a worker that does not finish within
        CANCEL_GRACE_S is killed. True when the worker is still usable."""
        if not self.alive:
            return False
        try:
            self.proc.stdin.write(b'{"op": "cancel"}\n')
            self.proc.stdin.flush()
            deadline = time.monotonic() + CANCEL_GRACE_S
            while True:
                event = self._read(timeout_s=max(deadline - time.monotonic(), 0.0))
                if event is None:
                    return False
                if event is TIMED_OUT:
                    break
                if event.get("type") in ("done", "error"):
                    return True
        except (OSError, ValueError):
            pass
        self._kill(f"killed: it did not stop within {CANCEL_GRACE_S:g} s of a cancel")
        return False

    def _kill(self, reason: str) -> None:
        proc = self.proc
        self._stopped = reason
        if proc is not None and proc.poll() is None:
            proc.kill()
        self.close(timeout_s=5.0)

    def _exit_reason(self) -> str:
        if self.proc is None:
            return f"worker {self._stopped}" if self._stopped else "worker closed"
        code = self.proc.poll()
        return f"worker exited with code {code}" if code is not None else "worker did not answer"

    def _call(self, message: dict) -> dict:
        with self._lock:
            self._send(message)
            reply = self._read()
        if reply is None:
            reason = self._exit_reason()
            self.close()
            raise UserError(f"Foundry Local worker for {self.model_id} failed: {reason}")
        return reply

    # operations -------------------------------------------------------------------------------------
    def load(self) -> dict:
        """Load the model in the worker: {"load_s", "rss_before_mb", "rss_after_load_mb", "model_version",
        "execution_provider"}. A model that will not load: UserError with the runtime's reason, and the
        worker is closed (its memory goes back)."""
        if not self.alive:
            self.start()
        reply = self._call({"op": "load", "model_id": self.model_id})
        if not reply.get("ok"):
            self.close()
            raise UserError(f"cannot load {self.model_id}: {reply.get('error')}")
        self.loaded = True
        return {k: reply[k] for k in ("load_s", "rss_before_mb", "rss_after_load_mb", "model_version",
                                      "execution_provider")}

    def chat(self, messages: list[dict], *, temperature: float = 0.0, max_tokens: int = 256,
             seed: int | None = 0, timeout_s: float | None = None, grammar: str | None = None) -> Iterator[dict]:
        """Stream one answer as events: start, chunk..., then done or error (never raises mid-stream).

        A fresh ChatSession per request in the worker, so no history leaks between requests. Closing
        the iterator early cancels the request in the worker. When nothing at all comes for the rest
        of `timeout_s` (a stalled runtime), the request is cancelled, the worker killed if the cancel
        does not take, and the last event is an error with "timed_out": true.

        With `grammar` (a Lark grammar) the answer is decoded under it, in one piece: the worker uses
        the SDK's chat client (the only API with a response format); a grammar the runtime rejects
        ends in an error starting "structured output:".
        """
        request = {"op": "chat", "messages": messages, "temperature": temperature, "max_tokens": max_tokens,
                   "seed": seed}
        if grammar:
            request["grammar"] = grammar
        with self._lock:
            try:
                self._send(request)
            except UserError as exc:
                yield {"type": "error", "error": str(exc), "t": time.perf_counter()}
                return
            finished = False
            deadline = None if timeout_s is None else time.monotonic() + timeout_s
            chunks = 0
            try:
                while True:
                    event = self._read(None if deadline is None else max(deadline - time.monotonic(), 0.0))
                    if event is TIMED_OUT:
                        finished = True
                        usable = self._cancel_or_kill()
                        yield {"type": "error", "timed_out": True, "t": time.perf_counter(),
                               "error": f"timed out after {timeout_s:g} s (stalled after {chunks} chunks"
                                        + ("" if usable else f"; worker {self._stopped or 'exited'}") + ")"}
                        return
                    if event is None:
                        reason = self._exit_reason()
                        self.loaded = False
                        yield {"type": "error", "error": reason, "t": time.perf_counter()}
                        finished = True
                        return
                    kind = event.get("type")
                    chunks += kind == "chunk"
                    if kind in ("done", "error"):
                        finished = True
                        yield event
                        return
                    yield event
            finally:
                if not finished:  # the consumer stopped early: cancel and drain
                    self._cancel_or_kill()

    def stats(self) -> dict:
        """{"rss_mb", "peak_rss_mb" (VmHWM), "cpu_s" (user+sys)} of the worker, read from /proc."""
        pid = self.pid
        if pid is None or not self.alive:
            return {"rss_mb": None, "peak_rss_mb": None, "cpu_s": None}
        return process_stats(pid) or {"rss_mb": None, "peak_rss_mb": None, "cpu_s": None}

    def unload(self) -> None:
        if self.alive and self.loaded:
            reply = self._call({"op": "unload"})
            if not reply.get("ok"):
                raise UserError(f"cannot unload {self.model_id}: {reply.get('error')}")
        self.loaded = False


@atexit.register
def _close_all() -> None:
    for worker in live_workers():
        try:
            worker.close(timeout_s=2.0)
        except Exception:
            pass
