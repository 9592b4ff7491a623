"""llama.cpp engine: the app starts llama-cpp-python's OpenAI server on a GGUF and stops it after.

The server is ``python -m llama_cpp.server --model GGUF --host 127.0.0.1 --port FREE`` run with the
app's own interpreter; the app knows its PID, so its memory and CPU are measured (weights are
memory-mapped: pages of the GGUF count in RSS only once touched, and may sit in page cache).
It sends no usage when streaming: completion tokens are counted with the GGUF's own vocabulary
(llama_cpp, ``vocab_only``), and the source is stored as ``tokenizer``.
"""
from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path

from core.catalog.gguf_file import GgufTokenizer, gguf_context_length
from core.engines.base import EngineDied, LoadInfo
from core.engines.http import HttpEngine
from core.errors import UserError

START_TIMEOUT_S = 180.0

# The server dies with the app: it runs under this small launcher, which holds the read end of a pipe whose
# write end only the app holds. When the app's process ends in any way (exit, crash, SIGKILL) the kernel
# closes that end, the read returns EOF and the server exits at once. (prctl PDEATHSIG is not used: it
# fires when the *thread* that started the child ends, and Streamlit runs each script run in its own thread.)
LIFELINE = (
    "import os, runpy, sys, threading\n"
    "fd = int(sys.argv.pop(1))\n"
    "def watch():\n"
    "    while True:\n"
    "        try:\n"
    "            if not os.read(fd, 1):\n"
    "                break\n"
    "        except InterruptedError:\n"
    "            continue\n"
    "        except OSError:\n"
    "            break\n"
    "    os._exit(0)\n"
    "threading.Thread(target=watch, daemon=True).start()\n"
    "if os.environ.get('SLM_LLAMACPP_NO_EXTRA_BUFTS') == '1':\n"
    "    import llama_cpp.llama_cpp as C\n"
    "    _defaults = C.llama_model_default_params\n"
    "    def _params():\n"
    "        p = _defaults()\n"
    "        p.use_extra_bufts = False\n"
    "        return p\n"
    "    C.llama_model_default_params = _params\n"
    "sys.argv[0] = 'llama_cpp.server'\n"
    "runpy.run_module('llama_cpp.server', run_name='__main__', alter_sys=True)\n"
)


# A CPU whose AMX tiles the OS or hypervisor does not switch on (seen in a Firecracker VM: AMX in cpuinfo and
# arch_prctl granted, yet `ldtilecfg` faults) crashes llama.cpp's AMX weight buffers on the first batch of more
# than one token. A one-off probe in a child process tells; the server then runs without the extra buffer types.
PROBE = (
    "import sys\n"
    "from llama_cpp import Llama\n"
    "llm = Llama(model_path=sys.argv[1], n_ctx=64, n_batch=16, verbose=False)\n"
    "llm.eval(llm.tokenize(b'one two three four five six seven eight'))\n"
)


def extra_buffers_ok(gguf_path: str) -> bool:
    """Whether llama.cpp's extra weight buffer types (AMX, repacking) work on this machine (probed once per
    CPU and llama-cpp-python version, remembered in data/runtime)."""
    import hashlib
    import json

    from core.config import RUNTIME_DIR
    try:
        flags = next((ln for ln in open("/proc/cpuinfo", encoding="ascii", errors="replace")
                      if ln.startswith("flags")), "")
    except OSError:
        flags = ""
    try:
        version = metadata.version("llama_cpp_python")
    except metadata.PackageNotFoundError:
        version = None
    key = hashlib.sha256(f"{flags}|{version}".encode()).hexdigest()[:16]
    cache = RUNTIME_DIR / "llamacpp-probe.json"
    try:
        known = json.loads(cache.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        known = {}
    if key in known:
        return bool(known[key])
    try:
        ok = subprocess.run([sys.executable, "-c", PROBE, gguf_path], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120).returncode == 0
    except subprocess.TimeoutExpired:
        ok = True
    known[key] = ok
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(known), encoding="utf-8")
    except OSError:
        pass
    return ok


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def resolve_gguf(model: str) -> str:
    """A GGUF path from a path, a file name or the starter's alias/id in the model list."""
    p = Path(model).expanduser()
    if p.is_file():
        return str(p.resolve())
    try:
        from core.catalog.starter import starter_gguf_path
        starter = starter_gguf_path()
    except Exception:
        starter = None
    if starter and Path(starter).is_file() and model in (Path(starter).name, "smollm2-135m-instruct-gguf", "starter"):
        return str(Path(starter).resolve())
    try:
        from core.catalog.models import resolve_model
        row = resolve_model(model, backend="llamacpp")
        if row.get("path"):
            return str(row["path"])
    except UserError:
        pass
    raise UserError(f"no GGUF file for llama.cpp model {model!r} (run `python -m core setup-models` for the starter)")


class LlamaCppEngine(HttpEngine):
    backend = "llamacpp"
    engine_wait = "inferred"    # llama-cpp-python's server answers one request at a time, in order

    def __init__(self, gguf_path: str, *, n_ctx: int | None = None, n_threads: int | None = None,
                 start_timeout_s: float = START_TIMEOUT_S):
        path = Path(gguf_path).expanduser()
        self.gguf_path = str(path.resolve())
        self.n_ctx = n_ctx   # None: the model's window (GGUF context_length), 2048 if it has none
        self.n_ctx_source = "run setting" if n_ctx else None
        self.n_threads = n_threads
        self.start_timeout_s = start_timeout_s
        self.port = free_port()
        super().__init__(path.name, f"http://127.0.0.1:{self.port}/v1")
        self.proc: subprocess.Popen | None = None
        self.log_path: str | None = None
        self._lifeline: int | None = None   # write end of the pipe the server watches (see LIFELINE)

    def _log_tail(self, n: int = 400) -> str:
        try:
            text = Path(self.log_path).read_text(errors="replace")
        except (OSError, TypeError):
            return ""
        lines = [ln for ln in text.strip().splitlines() if ln.strip()]
        return " ".join(" ".join(lines[-3:]).split())[-n:]

    def open(self) -> LoadInfo:
        if not Path(self.gguf_path).is_file():
            raise UserError(f"GGUF file {self.gguf_path} not found")
        try:
            import llama_cpp  # noqa: F401
        except ImportError as exc:
            raise UserError("llama-cpp-python is not installed (pip install 'llama-cpp-python[server]')") from exc
        if not self.n_ctx:
            window = gguf_context_length(self.gguf_path)
            self.n_ctx, self.n_ctx_source = (window, "model window") if window else (2048, "default (no window in the GGUF)")
        fd, self.log_path = tempfile.mkstemp(prefix="llamacpp-server-", suffix=".log")
        read_end, self._lifeline = os.pipe()
        cmd = [sys.executable, "-c", LIFELINE, str(read_end), "--model", self.gguf_path, "--host", "127.0.0.1",
               "--port", str(self.port), "--model_alias", self.model, "--n_ctx", str(self.n_ctx),
               # queue concurrent requests: by default a new request interrupts the one streaming
               "--interrupt_requests", "False"]
        if self.n_threads:
            cmd += ["--n_threads", str(self.n_threads)]
        env = dict(os.environ)
        self.extra_buffers = extra_buffers_ok(self.gguf_path)
        if not self.extra_buffers:
            env["SLM_LLAMACPP_NO_EXTRA_BUFTS"] = "1"
        t0 = time.perf_counter()
        try:
            self.proc = subprocess.Popen(cmd, stdout=fd, stderr=fd, stdin=subprocess.DEVNULL, start_new_session=True,
                                         pass_fds=(read_end,), env=env)
        finally:
            os.close(fd)
            os.close(read_end)
        from core.catalog.endpoints import fetch_models
        deadline = t0 + self.start_timeout_s
        while True:
            if self.proc.poll() is not None:
                tail, code = self._log_tail(), self.proc.returncode
                self.close()
                raise UserError(f"llama.cpp server exited with code {code} while loading "
                                f"{Path(self.gguf_path).name}" + (f": {tail}" if tail else ""))
            try:
                fetch_models(self.base_url, None, timeout=1.0)
                break
            except UserError:
                if time.perf_counter() > deadline:
                    self.close()
                    raise UserError(f"llama.cpp server did not answer within {self.start_timeout_s:g} s")
                time.sleep(0.05)
        load_s = time.perf_counter() - t0
        self.server_pid = self.proc.pid
        try:
            self.count_tokens = GgufTokenizer(self.gguf_path)
        except Exception:
            self.count_tokens = None
        from core.engines.base import process_stats
        st = process_stats(self.proc.pid) or {}
        try:
            version = metadata.version("llama_cpp_python")
        except metadata.PackageNotFoundError:
            version = None
        return LoadInfo(
            load_s=load_s, rss_before_mb=None, rss_after_load_mb=st.get("rss_mb"),
            model_version=Path(self.gguf_path).stem.rsplit(".", 1)[-1], execution_provider="llama.cpp CPU",
            pid=self.proc.pid, runtime={"llama-cpp-python": version, "n_ctx": self.n_ctx},
            notes=["load time: server start to first /v1/models answer (includes Python start-up)",
                   f"context: n_ctx {self.n_ctx} ({self.n_ctx_source})",
                   *([] if self.extra_buffers else ["llama.cpp's extra weight buffers (AMX, repacking) crash on this "
                                                    "CPU (probed): the server runs without them"]),
                   "GGUF weights are memory-mapped: RSS counts only the pages touched; they may stay in page cache"],
        )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def close(self) -> None:
        super().close()
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait(5)
        if self._lifeline is not None:
            try:
                os.close(self._lifeline)
            except OSError:
                pass
            self._lifeline = None
        if self.log_path:
            try:
                os.unlink(self.log_path)
            except OSError:
                pass
            self.log_path = None

    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else self.server_pid

    def count_prompt_tokens(self, messages: list[dict]) -> int | None:
        """Prompt tokens of a request as the server builds it (it sends no usage when streaming)."""
        counter = self.count_tokens
        try:
            return counter.prompt_tokens(messages) if isinstance(counter, GgufTokenizer) else None
        except Exception:
            return None

    async def arequest(self, messages, opts, rec) -> None:
        await super().arequest(messages, opts, rec)
        if rec.error is not None and self.proc is not None and "connection" in rec.error:
            for _ in range(40):   # the socket closes a moment before the process can be reaped
                if self.proc.poll() is not None:
                    raise EngineDied(f"llama.cpp server (pid {self.proc.pid}) exited with code {self.proc.returncode}")
                await asyncio.sleep(0.05)
