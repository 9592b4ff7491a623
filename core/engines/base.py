"""What every engine shares: the request/record types, the Engine interface, the process to measure.

An engine only *stamps times* (``time.perf_counter()``) and copies what the runtime said into a
``RequestRecord``; it computes no statistic. Every number is derived from these records in
``core.metrics``. Engines import this module, never the package (no import cycle).
"""
from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from core.engines.proc import process_stats  # noqa: F401  (the engines' measurement of a process: proc.py)

BACKENDS = ("foundry", "openai", "llamacpp")
TOKEN_SOURCES = ("usage", "tokenizer", "chunks")


@dataclass
class RequestOptions:
    """What one request asks for (the same for every engine)."""
    temperature: float = 0.0
    max_tokens: int = 256
    seed: int | None = 0
    timeout_s: float = 120.0
    stream: bool = True
    json_schema: dict | None = None
    # structured output in the engine's own form: the literal ``response_format`` of an HTTP body
    # (llama.cpp: {"type": "json_object", "schema": ...}; OpenAI: {"type": "json_schema", ...}),
    # or a Lark grammar for Foundry Local in-process. None: free text.
    response_format: dict | None = None
    grammar: str | None = None


@dataclass
class RequestRecord:
    """Raw facts about one request: timestamps (perf_counter seconds) and what the runtime returned.

    Filled by an engine; nothing here is derived. ``None`` means "did not happen / not known".
    """
    queued_at: float | None = None          # its turn in the schedule (ready to go; waiting for a slot from here)
    slot_at: float | None = None            # got a slot to run on (sync engines: its thread); None = at once
    engine_ready_at: float | None = None    # an engine serving one request at a time became free for it (measured)
    connect_s: float | None = None          # opening a connection (TCP/TLS) for it, outside every timer; None = none opened
    start: float | None = None              # just before the request left the client
    first_token_at: float | None = None     # first chunk carrying output text
    end: float | None = None                # finish reason / [DONE] / end of body
    chunk_times: list[float] = field(default_factory=list)   # each chunk carrying output text
    text_parts: list[str] = field(default_factory=list)
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    usage_completion_tokens: int | None = None   # from the runtime's usage, when it sent one
    tokenizer_completion_tokens: int | None = None
    error: str | None = None
    raw: Any = None                          # last JSON object seen (chat_once only)

    @property
    def output_text(self) -> str:
        return "".join(self.text_parts)

    def fail(self, message: str) -> None:
        if self.error is None:
            self.error = " ".join(str(message).split())[:500]


@dataclass
class LoadInfo:
    """What opening an engine measured (None where unknown; memory never guessed)."""
    load_s: float | None = None
    rss_before_mb: float | None = None
    rss_after_load_mb: float | None = None
    model_version: str | None = None
    execution_provider: str | None = None
    pid: int | None = None
    pid_source: str | None = None    # how the measured process was found: launched | port | user | unknown
    runtime: dict = field(default_factory=dict)   # runtime/SDK versions for the environment record
    notes: list[str] = field(default_factory=list)


class EngineDied(Exception):
    """The process running the model went away (killed, crashed, out of memory)."""


class Engine:
    """Base class. Subclasses implement ``open`` and either ``arequest`` (async) or ``request_sync``."""

    backend: str = ""
    is_async: bool = False
    # How the wait for an engine that serves one request at a time is known: "measured" (the engine stamps
    # ``engine_ready_at``), "inferred" (from the requests' times: the engine serves them in order), or None
    # (the engine serves requests concurrently, or nobody knows).
    engine_wait: str | None = None

    def __init__(self, model: str):
        self.model = model
        self.count_tokens: Callable[[str], int] | None = None

    # -- lifecycle --------------------------------------------------------------------------
    def open(self) -> LoadInfo:  # pragma: no cover - interface
        raise NotImplementedError

    def close(self) -> None:
        pass

    def alive(self) -> bool:
        """False once the process that serves the model is gone (a crash, a kill). Remote: True."""
        return True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # -- requests ---------------------------------------------------------------------------
    def request_sync(self, messages: list[dict], opts: RequestOptions, rec: RequestRecord) -> None:
        raise NotImplementedError

    async def arequest(self, messages: list[dict], opts: RequestOptions, rec: RequestRecord) -> None:
        loop = asyncio.get_running_loop()

        def on_slot():
            rec.slot_at = time.perf_counter()
            self.request_sync(messages, opts, rec)
        await loop.run_in_executor(None, on_slot)

    def run_one(self, messages: list[dict], opts: RequestOptions) -> RequestRecord:
        """One request, synchronously (chat_once and tests)."""
        rec = RequestRecord()
        if self.is_async:
            asyncio.run(self.arequest(messages, opts, rec))
        else:
            self.request_sync(messages, opts, rec)
        return rec

    def prepare_level(self, concurrency: int) -> None:
        """Called before each concurrency level."""

    def finish_level(self) -> None:
        """Called at the end of each level, inside its event loop (HTTP engines close their connections)."""

    # -- the model's process -----------------------------------------------------------------
    def pid(self) -> int | None:
        return None

    def process_stats(self) -> dict | None:
        """{"rss_mb","peak_rss_mb","cpu_s"} of the process that runs the model, or None if unknown."""
        pid = self.pid()
        return process_stats(pid) if pid else None

    def supports_concurrency(self) -> bool:
        return True


LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "0.0.0.0", "::", "ip6-localhost"}


def _is_local_host(host: str) -> bool:
    import socket

    import psutil
    if host.lower() in LOCAL_HOSTS or host.startswith("127."):
        return True
    local = {a.address.split("%")[0] for addrs in psutil.net_if_addrs().values() for a in addrs}
    try:
        resolved = {ai[4][0] for ai in socket.getaddrinfo(host, None)}
    except OSError:
        return False
    return bool(resolved & local)


def listening_pid(base_url: str) -> int | None:
    """The process on this machine listening on an endpoint's port (Ollama, llama-server, LM Studio, vLLM...),
    or None: a remote host, no listener found, or not allowed to see it."""
    from urllib.parse import urlsplit

    import psutil
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    if not host or not _is_local_host(host):
        return None
    try:
        conns = psutil.net_connections(kind="tcp")
    except (psutil.AccessDenied, OSError):
        conns = []
        for proc in psutil.process_iter():
            try:
                conns += [c._replace(pid=proc.pid) for c in proc.net_connections(kind="tcp")]
            except (psutil.AccessDenied, psutil.NoSuchProcess, OSError):
                continue
    pids = {c.pid for c in conns if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid}
    return min(pids) if len(pids) == 1 else None


def resolve_server_pid(base_url: str, server_pid: int | None) -> tuple[int | None, str]:
    """The process to measure for an HTTP endpoint and how it was found: ``user`` (named, e.g. --server-pid),
    ``port`` (listening on the endpoint's port), or ``unknown`` (remote, not found, or this very process)."""
    from core.errors import UserError
    if server_pid:
        if process_stats(int(server_pid)) is None:
            raise UserError(f"server process {server_pid} not found on this machine")
        return int(server_pid), "user"
    pid = listening_pid(base_url)
    if pid is None or pid == os.getpid():   # served from inside this process (a test server): not the model's
        return None, "unknown"
    return pid, "port"


@dataclass
class ChatResult:
    text: str
    finish_reason: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    token_count_source: str | None
    raw: Any = None
    constrained: bool = False      # the answer was decoded under a schema/grammar the engine accepted
