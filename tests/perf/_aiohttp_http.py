"""Reference only: the HTTP engine on aiohttp (its C parser and keep-alive pool; our SSE split, time
stamps and caps), what ``core/engines/http.py`` was moved onto and moved back from. ``tests/perf`` prints
its figures beside the engine's: about 1.4x the CPU per streamed request (one more event-loop turn and
coroutine resume per chunk: ``readany()`` wakes a task, where the engine parses in ``data_received``),
0.5-0.7x the requests/s at concurrency 32, the same fidelity. Nothing in ``core/`` imports it.

Same request, same records, same errors as ``core.engines.http.HttpEngine`` (it reuses its payload,
event and body parsing); ``rec.start`` is stamped as aiohttp hands the request to the socket (a trace
hook), a connect's seconds are kept apart in ``rec.connect_s``.
"""
from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import aiohttp
from yarl import URL

from core.engines.base import LoadInfo, RequestOptions, RequestRecord
from core.engines import http_transport as _core    # its caps are read at run time (tests patch them)
from core.engines.http import HttpEngine
from core.engines.http_transport import MAX_ERROR_BODY, ResponseTooLarge, _error_message, _perf, _size

# failures of the connection or of HTTP framing (aiohttp wraps most, not all, OSErrors)
_TRANSPORT_ERRORS = (aiohttp.ClientError, ConnectionError, OSError)


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


class AiohttpHttpEngine(HttpEngine):
    """``HttpEngine`` with aiohttp underneath."""

    def __init__(self, model: str, base_url: str, **kwargs):
        super().__init__(model, base_url, **kwargs)
        base = URL(self.base_url)
        self._url = base.with_path(base.path.rstrip("/") + "/chat/completions").with_query(base.query)
        self._session: aiohttp.ClientSession | None = None
        self._session_loop: asyncio.AbstractEventLoop | None = None
        self._headers: dict[bool, dict[str, str]] = {}
        self._build_headers({})

    def _build_headers(self, auth: dict) -> None:
        common = {"Content-Type": "application/json", "Accept-Encoding": "identity",
                  "User-Agent": "slm-selector", **auth}
        self._headers = {True: {**common, "Accept": "text/event-stream"},
                         False: {**common, "Accept": "application/json"}}

    def open(self) -> LoadInfo:
        info = super().open()
        if self.api_key_env:
            from core.catalog.endpoints import api_key
            key = api_key(self.api_key_env)
            self._build_headers({"Authorization": f"Bearer {key}", "api-key": key})
        return info

    def _aio_pool(self) -> aiohttp.ClientSession:
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

    def finish_level(self) -> None:
        self._close_pool()

    async def arequest(self, messages: list[dict], opts: RequestOptions, rec: RequestRecord) -> None:
        body = self._payload(messages, opts)
        session = self._aio_pool()
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
                if len(body) > _core.MAX_RESPONSE_BYTES:
                    raise ResponseTooLarge(f"response body larger than {_size(_core.MAX_RESPONSE_BYTES)}: cut")
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
            if total > _core.MAX_RESPONSE_BYTES:
                raise ResponseTooLarge(f"response stream larger than {_size(_core.MAX_RESPONSE_BYTES)}: cut")
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
            if len(sse) > _core.MAX_SSE_LINE_BYTES:
                raise ResponseTooLarge(f"an SSE line longer than {_size(_core.MAX_SSE_LINE_BYTES)}: cut")
        if rec.end is None and last_event is not None and rec.finish_reason is not None:
            rec.end = last_event        # no [DONE], but the answer was complete
        return complete

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
