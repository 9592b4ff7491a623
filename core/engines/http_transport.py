"""HTTP/1.1 bytes for the OpenAI-compatible engine (`core.engines.http`): a response parsed as its bytes arrive
(head, chunked / Content-Length / until close, the SSE lines of its body) with each event stamped at the time
its bytes were received, the asyncio protocol that feeds it, and a keep-alive connection pool. The protocol's
own fields (what an SSE event or a JSON body means) are the engine's.

Responses are capped (``MAX_RESPONSE_BYTES`` for a whole body, ``MAX_SSE_LINE_BYTES`` for one SSE
line, ``MAX_ERROR_BODY`` read of an error body): an endless or huge answer from a broken or hostile
endpoint ends as a failed request."""
from __future__ import annotations

import asyncio
import json
import ssl
import time

from core.engines.base import Engine, RequestRecord


_perf = time.perf_counter
MAX_ERROR_BODY = 4096                       # bytes of an error body read for its message
MAX_RESPONSE_BYTES = 64 * 1024 * 1024       # a whole response body (SSE stream or JSON)
MAX_SSE_LINE_BYTES = 1024 * 1024            # one SSE line (one event's JSON)


class Malformed(ValueError):
    """A field of an answer that is not what the OpenAI protocol says (its message names the field)."""


class TransportError(Exception):
    pass


class ResponseTooLarge(Exception):
    pass


def _quote(raw: bytes, n: int = 120) -> str:
    """The start of an event or body as it came, on one line, for the request's error."""
    text = " ".join(raw[: n * 4].decode("utf-8", "replace").split())
    return repr(text if len(text) <= n else text[: n - 3] + "...")


def _why(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, Malformed) else f"{type(exc).__name__}: {' '.join(str(exc).split())[:80]}"


def _size(n: int) -> str:
    return f"{n / 2 ** 20:g} MiB" if n >= 2 ** 20 else f"{n / 2 ** 10:g} KiB"


class _Response:
    """Parses one HTTP/1.1 response as bytes arrive (head, chunked / Content-Length / until close),
    and the SSE events of its body, stamping each with the time its bytes were received."""

    __slots__ = ("engine", "rec", "stream", "done", "buf", "state", "remaining", "status", "headers",
                 "body", "sse", "last_event", "reusable", "error_body", "total")

    HEAD, SIZE, DATA, CRLF, TRAILER, LENGTH, UNTIL_CLOSE, DONE = range(8)

    def __init__(self, engine: Engine, rec: RequestRecord, stream: bool, done: asyncio.Future):
        self.engine, self.rec, self.stream, self.done = engine, rec, stream, done
        self.buf = b""
        self.state = self.HEAD
        self.remaining = 0
        self.status = 0
        self.headers: dict = {}
        self.body = b""        # non-streamed body / error body
        self.sse = b""         # SSE bytes not yet split into lines
        self.last_event: float | None = None
        self.reusable = True
        self.error_body = False
        self.total = 0          # body bytes received

    # framing -----------------------------------------------------------------------------
    def feed(self, data: bytes, t: float) -> None:
        buf = self.buf + data if self.buf else data
        while True:
            state = self.state
            if state == self.SIZE:
                i = buf.find(b"\r\n")
                if i < 0:
                    break
                try:
                    size = int(buf[:i].split(b";", 1)[0], 16)
                except ValueError:
                    self.abort(TransportError(f"bad chunk size line {buf[:40]!r}"))
                    return
                buf = buf[i + 2:]
                if size == 0:
                    self.state = self.TRAILER
                else:
                    self.remaining, self.state = size, self.DATA
            elif state == self.DATA:
                if not buf:
                    break
                piece = buf[:self.remaining]
                buf = buf[len(piece):]
                self.remaining -= len(piece)
                if self.remaining == 0:
                    self.state = self.CRLF
                self.on_body(piece, t)
                if self.state == self.DONE:
                    return
            elif state == self.CRLF:
                if len(buf) < 2:
                    break
                buf = buf[2:]
                self.state = self.SIZE
            elif state == self.TRAILER:
                i = buf.find(b"\r\n")
                if i < 0:
                    break
                line, buf = buf[:i], buf[i + 2:]
                if not line:
                    if buf:
                        self.reusable = False
                    self.finish(t)
                    return
            elif state == self.LENGTH:
                if not buf:
                    break
                piece = buf[:self.remaining]
                buf = buf[len(piece):]
                self.remaining -= len(piece)
                self.on_body(piece, t)
                if self.state == self.DONE:
                    return
                if self.remaining == 0:
                    if buf:
                        self.reusable = False
                    self.finish(t)
                    return
            elif state == self.UNTIL_CLOSE:
                if buf:
                    self.on_body(buf, t)
                buf = b""
                break
            elif state == self.HEAD:
                i = buf.find(b"\r\n\r\n")
                if i < 0:
                    if len(buf) > 65536:
                        self.abort(TransportError("response headers too large"))
                        return
                    break
                self.on_head(buf[:i].decode("latin-1"))
                buf = buf[i + 4:]
                if self.state == self.DONE:
                    return
            else:
                return
        self.buf = buf

    def on_head(self, head: str) -> None:
        lines = head.split("\r\n")
        try:
            self.status = int(lines[0].split(" ", 2)[1])
        except (IndexError, ValueError):
            self.abort(TransportError(f"not an HTTP response: {lines[0][:80]!r}"))
            return
        headers = self.headers
        for line in lines[1:]:
            k, sep, v = line.partition(":")
            if sep:
                headers[k.strip().lower()] = v.strip()
        if headers.get("connection", "").lower() == "close":
            self.reusable = False
        if self.status != 200:
            self.error_body = True
        elif self.stream and "text/event-stream" not in headers.get("content-type", "text/event-stream"):
            self.stream = False
        if "chunked" in headers.get("transfer-encoding", "").lower():
            self.state = self.SIZE
        elif "content-length" in headers:
            self.remaining = int(headers["content-length"])
            self.state = self.LENGTH
            if self.remaining == 0:
                self.finish(_perf())
                return
        else:
            self.state = self.UNTIL_CLOSE
            self.reusable = False

    def on_body(self, data: bytes, t: float) -> None:
        self.total += len(data)
        if self.error_body:
            self.body += data[:MAX_ERROR_BODY - len(self.body)]
            if len(self.body) >= MAX_ERROR_BODY:     # enough for the message: stop reading (never reused)
                self.reusable = False
                self.finish(t)
            return
        if self.total > MAX_RESPONSE_BYTES:
            what = "stream" if self.stream else "body"
            self.abort(ResponseTooLarge(f"response {what} larger than {_size(MAX_RESPONSE_BYTES)}: cut"))
            return
        if not self.stream:
            self.body += data
            return
        sse = self.sse + data if self.sse else data
        rec = self.rec
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
                obj = json.loads(payload)
            except ValueError:
                rec.fail(f"non-JSON SSE data line: {_quote(payload)}")
                self.abort(None)
                return
            self.last_event = t
            try:
                self.engine._on_event(obj, t, rec)
            except Exception as exc:        # any malformed field fails this request, never the run
                rec.fail(f"malformed SSE event ({_why(exc)}): {_quote(payload)}")
            if rec.error is not None:
                self.abort(None)
                return
        self.sse = sse[start:]
        if len(self.sse) > MAX_SSE_LINE_BYTES:
            self.abort(ResponseTooLarge(f"an SSE line longer than {_size(MAX_SSE_LINE_BYTES)}: cut"))

    # ends ----------------------------------------------------------------------------------
    def finish(self, t: float) -> None:
        if self.state == self.DONE:
            return
        self.state = self.DONE
        rec = self.rec
        if self.error_body:
            rec.end = t
            rec.fail(_error_message(self.status, self.body))
            self.reusable = self.reusable and len(self.body) < MAX_ERROR_BODY
        elif not self.stream:
            rec.end = t
            try:
                self.engine._parse_json_body(self.body, rec)
            except Exception as exc:        # fails at once: the request never waits out its timeout
                rec.fail(f"malformed response body ({_why(exc)}): {_quote(self.body)}")
        elif rec.end is None and self.last_event is not None and rec.finish_reason is not None:
            rec.end = self.last_event        # no [DONE], but the response was complete
        if not self.done.done():
            self.done.set_result(None)

    def abort(self, exc: BaseException | None) -> None:
        self.state = self.DONE
        self.reusable = False
        if not self.done.done():
            if exc is None:
                self.done.set_result(None)
            else:
                self.done.set_exception(exc)

    def eof(self, exc: BaseException | None) -> None:
        if self.state == self.DONE:
            return
        if self.state == self.UNTIL_CLOSE:
            self.reusable = False
            self.finish(_perf())
        else:
            self.abort(exc or ConnectionResetError("closed by the server"))


class _Protocol(asyncio.Protocol):
    """One keep-alive connection; feeds bytes to the response in flight."""

    def __init__(self):
        self.transport: asyncio.Transport | None = None
        self.response: _Response | None = None
        self.closed = False

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        t = _perf()
        response = self.response
        if response is not None:
            try:
                response.feed(data, t)
            except Exception as exc:        # a response this parser cannot follow fails its request, at once
                if response.rec.error is None:
                    response.rec.fail(f"malformed response ({_why(exc)}): {_quote(data)}")
                response.abort(None)
        else:
            self.closed = True        # bytes nobody asked for: do not reuse this connection
            self.transport.close()

    def eof_received(self):
        self.closed = True
        if self.response is not None:
            self.response.eof(None)
        return False

    def connection_lost(self, exc) -> None:
        self.closed = True
        if self.response is not None:
            self.response.eof(exc)

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            try:
                self.transport.abort()
            except RuntimeError:          # its event loop is already closed: the socket goes with the object
                pass


class _Pool:
    """Keep-alive connections to one host, bound to one event loop."""

    def __init__(self, host: str, port: int, use_ssl: bool):
        self.host, self.port = host, port
        self.ssl = ssl.create_default_context() if use_ssl else None
        self.idle: list[_Protocol] = []
        self.loop = asyncio.get_running_loop()

    async def get(self) -> tuple[_Protocol, float | None]:
        """An open connection, and the seconds it took to open it (None when one was reused)."""
        while self.idle:
            conn = self.idle.pop()
            if not conn.closed and not conn.transport.is_closing():
                return conn, None
            conn.close()
        t0 = _perf()
        _, conn = await self.loop.create_connection(_Protocol, self.host, self.port, ssl=self.ssl)
        return conn, _perf() - t0

    def put(self, conn: _Protocol) -> None:
        conn.response = None
        if not conn.closed:
            self.idle.append(conn)

    def close(self) -> None:
        for conn in self.idle:
            conn.close()
        self.idle.clear()


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

