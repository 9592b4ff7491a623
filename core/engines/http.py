"""OpenAI-compatible HTTP engine: chat completions streamed over Server-Sent Events, on aiohttp.

HTTP/1.1 itself (framing, chunked encoding, keep-alive pool, TLS) is aiohttp's, with its C parser, the
client ``vllm bench serve`` measures with. What is ours: the request (exactly what the ``openai``
client sends: ``POST {base}/chat/completions`` with ``stream`` and ``stream_options.include_usage``,
``Authorization: Bearer`` and ``api-key`` headers), the SSE split and the time stamps. The client must
cost far less CPU than the model it measures (the laptop's cores are shared) and sustain hundreds of
requests per second at concurrency 32 on two cores, so: no retry and no redirect (never inside the
caller's timer), no pydantic per chunk, one ``readany()`` per batch of received bytes (all SSE lines
in it split here and stamped with one ``time.perf_counter()``), one pool of keep-alive connections
per event loop. ``rec.start`` is stamped as aiohttp hands the request to the socket (a trace hook),
so neither aiohttp's own work to build it nor a connect counts in TTFT; when a request had to open a
connection, the connect (DNS + TCP + TLS) seconds are kept apart in ``rec.connect_s``.

Responses are capped (``MAX_RESPONSE_BYTES`` for a whole body, ``MAX_SSE_LINE_BYTES`` for one SSE
line): an endless or huge answer from a broken or hostile endpoint ends as a failed request.
``tests/perf/`` compares it with the hand-written client it replaced and with the ``openai`` client.

The engine stamps times and copies fields; ``core.metrics`` derives every number.
"""
from __future__ import annotations

import asyncio
import json
import time
from types import SimpleNamespace

import aiohttp
from yarl import URL

from core.engines import Engine, LoadInfo, RequestOptions, RequestRecord
from core.errors import UserError

_perf = time.perf_counter
MAX_ERROR_BODY = 4096                       # bytes of an error body kept for its message
MAX_RESPONSE_BYTES = 64 * 1024 * 1024       # a whole response body (SSE stream or JSON)
MAX_SSE_LINE_BYTES = 1024 * 1024            # one SSE line (one event's JSON)

# failures of the connection or of HTTP framing (aiohttp wraps most, not all, OSErrors)
_TRANSPORT_ERRORS = (aiohttp.ClientError, ConnectionError, OSError)


class ResponseTooLarge(Exception):
    pass


async def _on_connect_start(session, ctx: SimpleNamespace, params) -> None:
    ctx.connect_t0 = _perf()


async def _on_connect_end(session, ctx: SimpleNamespace, params) -> None:
    """A new connection was opened for this request: its time is kept apart, not the model's."""
    rec = ctx.trace_request_ctx
    if isinstance(rec, RequestRecord):
        rec.connect_s = _perf() - ctx.connect_t0


async def _on_body_sent(session, ctx: SimpleNamespace, params) -> None:
    """aiohttp hands the request (head and JSON body, one write) to the socket right after this:
    the request's start, after aiohttp built it and after any connect."""
    rec = ctx.trace_request_ctx
    if isinstance(rec, RequestRecord) and not getattr(ctx, "sent", False):
        ctx.sent = True
        rec.start = _perf()


def _close_session_now(session: aiohttp.ClientSession) -> None:
    """Close the pool's sockets synchronously (``finish_level`` runs inside the loop but cannot await).
    The connector's ``_close`` closes every transport at once; ``close()`` only adds the wait."""
    connector = session.connector
    if connector is None or connector.closed:
        return
    close_now = getattr(connector, "_close", None)
    if close_now is not None:
        close_now()
    else:  # pragma: no cover - another aiohttp
        asyncio.ensure_future(session.close())


def _error_message(status: int, body: bytes) -> str:
    text = body.decode("utf-8", "replace").strip()
    try:
        obj = json.loads(text)
        err = obj.get("error", obj) if isinstance(obj, dict) else obj
        if isinstance(err, dict):
            text = str(err.get("message") or err)
        else:
            text = str(err)
    except ValueError:
        pass
    text = " ".join(text.split())[:200]
    return f"HTTP {status}" + (f": {text}" if text else "")


class HttpEngine(Engine):
    """Chat completions against ``base_url`` (ending in /v1). ``server_pid``: the server's process,
    when known, so its memory and CPU can be measured (else they are unknown, never 0)."""

    backend = "openai"
    is_async = True

    def __init__(self, model: str, base_url: str, *, api_key_env: str | None = None,
                 server_pid: int | None = None, count_tokens=None):
        super().__init__(model)
        from core.endpoints import normalize_base_url
        self.base_url = normalize_base_url(base_url)
        self.api_key_env = api_key_env
        self.server_pid = server_pid
        self.count_tokens = count_tokens
        base = URL(self.base_url)
        self._url = base.with_path(base.path.rstrip("/") + "/chat/completions").with_query(base.query)
        self._session: aiohttp.ClientSession | None = None
        self._session_loop: asyncio.AbstractEventLoop | None = None
        self._auth: dict[str, str] = {}
        self._headers: dict[bool, dict[str, str]] = {}
        self._build_headers()

    def _build_headers(self) -> None:
        common = {"Content-Type": "application/json", "Accept-Encoding": "identity",
                  "User-Agent": "slm-selector", **self._auth}
        self._headers = {True: {**common, "Accept": "text/event-stream"},
                         False: {**common, "Accept": "application/json"}}

    # -- lifecycle --------------------------------------------------------------------------
    def open(self) -> LoadInfo:
        from core.endpoints import api_key, fetch_models
        key = api_key(self.api_key_env)
        if self.api_key_env:
            self._auth = {"Authorization": f"Bearer {key}", "api-key": key}
            self._build_headers()
        fetch_models(self.base_url, self.api_key_env, timeout=5.0)   # UserError when unreachable
        info = LoadInfo(pid=self.server_pid)
        if self.server_pid:
            from core.engines import process_stats
            st = process_stats(self.server_pid)
            if st:
                info.rss_after_load_mb = st["rss_mb"]
        info.notes.append("model loaded by the server before the run: cold-load time not measured")
        return info

    def _pool(self) -> aiohttp.ClientSession:
        """The keep-alive pool of the running event loop (one per loop: a level runs in its own)."""
        loop = asyncio.get_running_loop()
        session = self._session
        if session is not None and self._session_loop is loop and not session.closed:
            return session
        self._close_pool()
        trace = aiohttp.TraceConfig()
        trace.on_connection_create_start.append(_on_connect_start)
        trace.on_connection_create_end.append(_on_connect_end)
        trace.on_request_chunk_sent.append(_on_body_sent)
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)   # the runner bounds concurrency
        session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=None),   # our own deadline below
            cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False, trace_configs=[trace],
            read_bufsize=2 ** 16)
        self._session, self._session_loop = session, loop
        return session

    def _close_pool(self) -> None:
        session, self._session, self._session_loop = self._session, None, None
        if session is not None:
            _close_session_now(session)

    async def _aclose_pool(self) -> None:
        session, self._session, self._session_loop = self._session, None, None
        if session is not None:
            await session.close()

    def close(self) -> None:
        self._close_pool()

    def finish_level(self) -> None:
        self._close_pool()

    def pid(self) -> int | None:
        return self.server_pid

    # -- one request ------------------------------------------------------------------------
    def _payload(self, messages: list[dict], opts: RequestOptions) -> bytes:
        payload = {"model": self.model, "messages": messages, "max_tokens": opts.max_tokens,
                   "temperature": opts.temperature, "stream": opts.stream}
        if opts.seed is not None:
            payload["seed"] = opts.seed
        if opts.stream:
            payload["stream_options"] = {"include_usage": True}
        if opts.json_schema is not None:
            payload["response_format"] = {"type": "json_schema", "json_schema": {
                "name": str(opts.json_schema.get("title") or "answer"), "schema": opts.json_schema, "strict": True}}
        return json.dumps(payload, separators=(",", ":")).encode()

    async def arequest(self, messages: list[dict], opts: RequestOptions, rec: RequestRecord) -> None:
        body = self._payload(messages, opts)
        session = self._pool()
        resp = None
        complete = False
        rec.start = _perf()          # stamped again as the request goes to the socket (_on_body_sent)
        try:
            async with asyncio.timeout(opts.timeout_s):
                resp = await session.post(self._url, data=body, headers=self._headers[opts.stream],
                                          allow_redirects=False, trace_request_ctx=rec)
                complete = await self._read(resp, opts.stream, rec)
        except TimeoutError:
            stage = "no response" if rec.first_token_at is None else f"stalled after {len(rec.chunk_times)} chunks"
            rec.fail(f"timed out after {opts.timeout_s:g} s ({stage})")
        except ResponseTooLarge as exc:
            rec.fail(str(exc))
        except aiohttp.ClientConnectorError as exc:
            rec.fail(str(exc))      # "Cannot connect to host H:P ssl:... [reason]"
        except _TRANSPORT_ERRORS as exc:
            where = f"mid-stream after {len(rec.chunk_times)} chunks" if rec.chunk_times else "before the first token"
            rec.fail(f"connection dropped {where} ({_describe(exc)})")
        finally:
            if resp is not None:
                if complete and rec.error is None:
                    resp.release()          # back to the pool (aiohttp closes it unless fully read)
                else:
                    resp.close()            # cancelled, failed or cut short: never reused
        if rec.error is None and rec.finish_reason is None:
            rec.fail("stream ended without a finish reason (truncated)")

    async def _read(self, resp: aiohttp.ClientResponse, stream: bool, rec: RequestRecord) -> bool:
        """Reads the response into ``rec``; True when it was read to its end."""
        content = resp.content
        if resp.status != 200:
            body = b""
            while len(body) < MAX_ERROR_BODY:
                data = await content.readany()
                if not data:
                    break
                body += data
            rec.end = _perf()
            rec.fail(_error_message(resp.status, body[:MAX_ERROR_BODY]))
            return False
        if stream and "text/event-stream" not in resp.headers.get("Content-Type", "text/event-stream"):
            stream = False
        if not stream:
            body = b""
            while data := await content.readany():
                body += data
                if len(body) > MAX_RESPONSE_BYTES:
                    raise ResponseTooLarge(f"response body larger than {_size(MAX_RESPONSE_BYTES)}: cut")
            rec.end = _perf()
            self._parse_json_body(body, rec)
            return True
        on_event = self._on_event
        loads = json.loads
        total = 0
        last_event = None
        sse = b""
        while True:
            try:
                data = await content.readany()
            except _TRANSPORT_ERRORS:
                if rec.finish_reason is None:
                    raise
                complete = False     # the answer was complete; the connection went after it
                break
            t = _perf()
            if not data:
                complete = True
                break
            total += len(data)
            if total > MAX_RESPONSE_BYTES:
                raise ResponseTooLarge(f"response stream larger than {_size(MAX_RESPONSE_BYTES)}: cut")
            sse = sse + data if sse else data
            start = 0
            while True:
                nl = sse.find(b"\n", start)
                if nl < 0:
                    break
                line = sse[start:nl]
                start = nl + 1
                if not line.startswith(b"data:"):
                    continue            # blank separator, ": comment", "event:", "id:", "retry:"
                payload = line[5:].strip()
                if payload == b"[DONE]":
                    rec.end = t
                    continue
                try:
                    obj = loads(payload)
                except ValueError:
                    rec.fail(f"non-JSON SSE data line: {payload[:80].decode('utf-8', 'replace')!r}")
                    return False
                last_event = t
                on_event(obj, t, rec)
                if rec.error is not None:
                    return False
            sse = sse[start:]
            if len(sse) > MAX_SSE_LINE_BYTES:
                raise ResponseTooLarge(f"an SSE line longer than {_size(MAX_SSE_LINE_BYTES)}: cut")
        if rec.end is None and last_event is not None and rec.finish_reason is not None:
            rec.end = last_event        # no [DONE], but the answer was complete
        return complete

    @staticmethod
    def _on_event(obj, t: float, rec: RequestRecord) -> None:
        if not isinstance(obj, dict):
            rec.fail(f"unexpected SSE event: {str(obj)[:80]!r}")
            return
        if obj.get("error"):
            err = obj["error"]
            rec.fail(f"server error in stream: {err.get('message') if isinstance(err, dict) else err}")
            return
        choices = obj.get("choices")
        if choices:
            ch = choices[0]
            delta = ch.get("delta") or {}
            content = delta.get("content")
            # reasoning models stream their thinking apart: it is generated output (timed, counted by
            # usage) but not part of the answer text
            thinking = delta.get("reasoning_content") or delta.get("reasoning")
            if content or thinking:
                if rec.first_token_at is None:
                    rec.first_token_at = t
                rec.chunk_times.append(t)
                if content:
                    rec.text_parts.append(content)
            fr = ch.get("finish_reason")
            if fr:
                rec.finish_reason = fr
        usage = obj.get("usage")
        if usage:
            if usage.get("completion_tokens") is not None:
                rec.usage_completion_tokens = int(usage["completion_tokens"])
            if usage.get("prompt_tokens") is not None:
                rec.prompt_tokens = int(usage["prompt_tokens"])

    @staticmethod
    def _parse_json_body(body: bytes, rec: RequestRecord) -> None:
        try:
            obj = json.loads(body)
            choice = obj["choices"][0]
        except (ValueError, KeyError, IndexError, TypeError):
            rec.fail(f"response is not a chat completion: {body[:80].decode('utf-8', 'replace')!r}")
            return
        rec.raw = obj
        text = (choice.get("message") or {}).get("content") or ""
        if text:
            rec.text_parts.append(text)
        rec.finish_reason = choice.get("finish_reason")
        usage = obj.get("usage") or {}
        if usage.get("completion_tokens") is not None:
            rec.usage_completion_tokens = int(usage["completion_tokens"])
        if usage.get("prompt_tokens") is not None:
            rec.prompt_tokens = int(usage["prompt_tokens"])
        if rec.finish_reason is None and rec.error is None:
            rec.fail("response without a finish reason")

    def run_one(self, messages: list[dict], opts: RequestOptions) -> RequestRecord:
        async def go():
            rec = RequestRecord()
            try:
                await self.arequest(messages, opts, rec)
                if (rec.error or "").startswith(("HTTP 400", "HTTP 422")) and opts.json_schema is not None:
                    # the server has no structured output: ask again without it (a separate attempt)
                    from dataclasses import replace
                    rec = RequestRecord()
                    await self.arequest(messages, replace(opts, json_schema=None), rec)
            finally:
                await self._aclose_pool()
            return rec
        return asyncio.run(go())


def _size(n: int) -> str:
    return f"{n / 2 ** 20:g} MiB" if n >= 2 ** 20 else f"{n / 2 ** 10:g} KiB"


def _describe(exc: BaseException) -> str:
    """One line for a transport failure: the innermost message aiohttp gives, else the exception's type."""
    if isinstance(exc, aiohttp.ClientPayloadError):
        cause = exc.__cause__
        detail = getattr(cause, "message", None) or (str(cause) if cause is not None else "")
        return "response body incomplete" + (f": {detail}" if detail else "")
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "server disconnected"
    text = " ".join(str(exc).split())
    return text if isinstance(exc, aiohttp.ClientError) and text else f"{type(exc).__name__}: {text}".rstrip(": ")


def local_tokenizer(model: str):
    """A token counter from the model's own tokenizer.json when a local model has this id or alias
    (e.g. Foundry Local's service serving a model also in the local catalog); else None."""
    try:
        from pathlib import Path

        from tokenizers import Tokenizer

        from core.foundry import list_local_models
        for row in list_local_models():
            if model in (row.get("id"), row.get("alias")) and row.get("path"):
                path = Path(row["path"]) / "tokenizer.json"
                if path.is_file():
                    tok = Tokenizer.from_file(str(path))
                    return lambda text: len(tok.encode(text, add_special_tokens=False).ids)
    except Exception:
        return None
    return None


def check_endpoint(base_url: str, api_key_env: str | None = None, timeout: float = 5.0) -> list[dict]:
    """The endpoint's models; UserError (one line) when it does not answer."""
    from core.endpoints import fetch_models, normalize_base_url
    try:
        return fetch_models(normalize_base_url(base_url), api_key_env, timeout=timeout)
    except UserError:
        raise
    except Exception as exc:  # pragma: no cover - defensive
        raise UserError(f"endpoint {base_url} unreachable: {exc}") from exc
