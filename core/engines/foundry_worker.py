"""One Foundry Local model per worker process.

Why a process per model: its memory is measured alone (RSS before/after load, peak VmHWM), a native
crash cannot take the app down, and the memory is returned when the process exits (the runtime keeps
much of it after `unload()`).

Protocol: JSON lines. The parent writes requests on the worker's stdin; the worker answers on a
duplicate of its original stdout, while its fd 1 and 2 point at data/runtime/foundry-native.log so
the runtime's own output can never corrupt the protocol or reach the user's terminal.

    {"op": "load", "model_id": ...}            -> {"ok": true, "load_s", "rss_before_mb", ...}
    {"op": "chat", "messages", "temperature", "max_tokens", "seed"}
                                               -> {"type": "start"|"chunk"|"done"|"error", "t", ...}...
    {"op": "cancel"}                           (while a chat streams: stop it; it ends with "done")
    {"op": "unload"} / {"op": "exit"}          -> {"ok": true}

Times ("t") are time.perf_counter() in the worker: CLOCK_MONOTONIC on Linux, the same clock as the
parent's perf_counter, stamped where the runtime hands over each item.
"""
from __future__ import annotations

import atexit
import json
import os
import queue
import select
import subprocess
import sys
import threading
import time
from typing import Iterator

from core.catalog.loaded import live_workers, loaded_model_ids, track, untrack  # noqa: F401 (loaded_model_ids re-exported)
from core.config import REPO_ROOT
from core.errors import UserError

READY_TIMEOUT_S = 60.0
FLUSH_EVERY_S = 0.05   # the worker sends a chat's events in batches at most this far apart (times are in them)
CANCEL_GRACE_S = 30.0  # how long a cancel may take (a long prompt's prefill is not interruptible) before a kill
TIMED_OUT = {"timed_out": True}   # what _read returns when nothing came in time (compared by identity)
_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _proc_status(pid: int) -> dict[str, float]:
    """VmRSS / VmHWM of a process in MB (from /proc/PID/status)."""
    out: dict[str, float] = {}
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    key, value = line.split(":", 1)
                    out[key] = int(value.split()[0]) / 1024.0  # kB -> MB
    except OSError:
        pass
    return out


def _proc_cpu_s(pid: int) -> float | None:
    """User + system CPU seconds of a process (from /proc/PID/stat)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / _CLK_TCK  # utime, stime
    except (OSError, IndexError, ValueError):
        return None


# ---------------------------------------------------------------------------------------------------
# Parent side
# ---------------------------------------------------------------------------------------------------

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
            [sys.executable, "-m", "core.engines.foundry_worker"],
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
        status = _proc_status(pid)
        return {"rss_mb": status.get("VmRSS"), "peak_rss_mb": status.get("VmHWM"), "cpu_s": _proc_cpu_s(pid)}

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


# ---------------------------------------------------------------------------------------------------
# Worker side
# ---------------------------------------------------------------------------------------------------

def _serve() -> int:
    # The protocol gets a private duplicate of the real stdout; fd 1 then points where fd 2 goes (the
    # native log, set up by the parent), so nothing the runtime prints can reach the protocol.
    # block-buffered: a chat's events are flushed in batches (see _chat), every other message at once
    proto = os.fdopen(os.dup(1), "w", buffering=1 << 16, encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = os.fdopen(1, "w", buffering=1, encoding="utf-8", closefd=False)
    write_lock = threading.Lock()

    def send(message: dict, flush: bool = True) -> None:
        line = json.dumps(message, ensure_ascii=False) + "\n"
        with write_lock:
            proto.write(line)
            if flush:
                proto.flush()

    requests: "queue.Queue[dict | None]" = queue.Queue()
    cancel = threading.Event()

    def reader() -> None:  # a thread, so "cancel" arrives while a chat streams
        for raw in sys.stdin.buffer:
            try:
                message = json.loads(raw)
            except ValueError:
                continue
            if message.get("op") == "cancel":
                cancel.set()
            else:
                if message.get("op") == "chat":
                    # cleared here, in the order the parent wrote: a cancel sent before the chat
                    # started (the parent gave up waiting) still stops it
                    cancel.clear()
                requests.put(message)
        cancel.set()        # the parent went away (exit, crash, kill): stop the answer in flight too,
        requests.put(None)  # and exit, so the worker dies with the app

    threading.Thread(target=reader, daemon=True).start()

    from core.catalog.foundry import CPU_EP, _genai_provider, get_local_model, get_manager, one_line

    try:
        get_manager()
    except Exception as exc:
        send({"ok": False, "error": one_line(exc)})
        return 1
    send({"ok": True, "pid": os.getpid()})

    model = None
    while True:
        message = requests.get()
        if message is None or message.get("op") == "exit":
            break
        op = message.get("op")
        try:
            if op == "load":
                model = _load(message["model_id"], get_local_model, send, CPU_EP, _genai_provider)
            elif op == "chat":
                _chat(model, message, send, cancel)
            elif op == "unload":
                if model is not None:
                    model.unload()
                send({"ok": True})
            else:
                send({"ok": False, "error": f"unknown op {op!r}"})
        except Exception as exc:
            if op == "chat":
                send({"type": "error", "error": one_line(exc), "t": time.perf_counter()})
            else:
                send({"ok": False, "error": one_line(exc)})
    if model is not None:
        try:
            model.unload()
        except Exception:
            pass
    return 0


def _load(model_id, get_local_model, send, cpu_ep, genai_provider):
    model = get_local_model(model_id)
    if model is None:
        from core.catalog.foundry import get_manager

        catalog = get_manager().catalog  # a downloaded public-catalog model
        model = catalog.get_model_variant(model_id) if catalog is not None else None
    if model is None:
        send({"ok": False, "error": f"unknown model {model_id} (not registered with Foundry Local)"})
        return None
    rss_before = _proc_status(os.getpid()).get("VmRSS")
    start = time.perf_counter()
    model.load()
    load_s = time.perf_counter() - start
    rss_after = _proc_status(os.getpid()).get("VmRSS")
    info = model.info
    provider = (info.runtime.execution_provider if info.runtime else "") or genai_provider(model.get_path()) or cpu_ep
    send({"ok": True, "load_s": load_s, "rss_before_mb": rss_before, "rss_after_load_mb": rss_after,
          "model_version": info.version, "execution_provider": provider})
    return model


def _chat(model, message: dict, send, cancel: threading.Event) -> None:
    from foundry_local_sdk import ChatSession, MessageItem, Request, RequestOptions, SearchOptions

    if model is None:
        send({"type": "error", "error": "no model loaded", "t": time.perf_counter()})
        return
    if message.get("grammar"):
        _chat_grammar(model, message, send)
        return
    builders = {"system": MessageItem.system, "user": MessageItem.user, "assistant": MessageItem.assistant,
                "developer": MessageItem.developer}
    options = SearchOptions(temperature=message.get("temperature"), max_output_tokens=message.get("max_tokens"),
                            seed=message.get("seed"))
    with ChatSession(model) as session:
        session.set_options(RequestOptions(search=options))
        session.set_streaming(True)
        request = Request()
        for m in message["messages"]:
            builder = builders.get(m.get("role", "user"))
            if builder is None:
                raise ValueError(f"unknown message role {m.get('role')!r}")
            request.add_item(builder(str(m.get("content", ""))))
        with request:
            perf = time.perf_counter
            # Every event carries the time it was stamped here, so when it reaches the parent does not
            # matter for any number: events are batched so the parent is not woken while the model works.
            # Nothing is flushed during prefill (the start event goes with the first chunk), then at most
            # every FLUSH_EVERY_S (the page still streams the answer live).
            send({"type": "start", "t": perf()}, flush=False)
            last_flush = None
            with session.process_streaming_request(request) as stream:
                for item in stream:
                    now = perf()
                    text = getattr(item, "text", None)
                    if text:
                        flush = last_flush is None or now - last_flush >= FLUSH_EVERY_S
                        send({"type": "chunk", "text": text, "t": now}, flush=flush)
                        if flush:
                            last_flush = now
                    if cancel.is_set():
                        break
                if cancel.is_set():
                    send({"type": "done", "finish_reason": "cancelled", "prompt_tokens": None,
                          "completion_tokens": None, "t": perf()})
                    return
                end = perf()
                with stream.final_response as final:
                    reason = final.finish_reason
                    usage = final.get_usage()
            if reason is not None and reason.name == "ERROR":
                send({"type": "error", "error": "the runtime ended the answer with an error", "t": end})
                return
            send({"type": "done",
                  "finish_reason": reason.name.lower() if reason is not None and reason.name != "NONE" else None,
                  "prompt_tokens": usage.prompt_tokens if usage else None,
                  "completion_tokens": usage.completion_tokens if usage else None, "t": end})


def _chat_grammar(model, message: dict, send) -> None:
    """One answer decoded under a Lark grammar (structured output), not streamed.

    ChatSession has no response format in SDK 2.x; the deprecated chat client does
    (``settings.response_format = {"type": "lark_grammar", ...}``; its ``json_schema`` fails natively).
    """
    import warnings

    perf = time.perf_counter
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        client = model.get_chat_client()
    client.settings.temperature = message.get("temperature")
    client.settings.max_tokens = message.get("max_tokens")
    if message.get("seed") is not None:
        client.settings.random_seed = int(message["seed"])
    client.settings.response_format = {"type": "lark_grammar", "lark_grammar": message["grammar"]}
    msgs = [{"role": m.get("role", "user"), "content": str(m.get("content", ""))} for m in message["messages"]]
    send({"type": "start", "t": perf()})
    try:
        completion = client.complete_chat(msgs)
    except Exception as exc:
        from core.catalog.foundry import one_line

        send({"type": "error", "error": f"structured output: {one_line(exc)}", "t": perf()})
        return
    end = perf()
    choice = completion.choices[0] if completion.choices else None
    text = (choice.message.content if choice is not None and choice.message is not None else None) or ""
    if text:
        send({"type": "chunk", "text": text, "t": end})
    usage = completion.usage
    send({"type": "done", "finish_reason": (choice.finish_reason if choice is not None else None) or "stop",
          "prompt_tokens": usage.prompt_tokens if usage else None,
          "completion_tokens": usage.completion_tokens if usage else None, "t": end})


if __name__ == "__main__":
    code = _serve()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    # Not sys.exit: the stdin reader thread is blocked in a read, and interpreter shutdown would
    # abort on its buffer lock ("could not acquire lock for <stdin>"). Every answer is flushed.
    os._exit(code or 0)
