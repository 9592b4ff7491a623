"""A small OpenAI-compatible chat server for tests and perf scripts (stdlib asyncio only).

It speaks the real protocol (``GET /v1/models``, ``POST /v1/chat/completions`` with and without
``stream``; SSE with a role-only first chunk, content chunks, a finish chunk, a usage chunk when
``stream_options.include_usage`` is set, then ``data: [DONE]``), HTTP/1.1 keep-alive, chunked.

Behaviour is chosen per request by the *model name*: ``"name;key=value;key=value"``, e.g.
``"tiny;ttft=0.05;tok=0.01;n=32;tpc=2;fault=drop;every=3"``. Keys:

- ``ttft`` seconds before the first content chunk; ``tok`` seconds per token between chunks
  (a chunk carrying k tokens comes k*tok after the previous one); chunk i is scheduled at an
  absolute time so sleep overshoots never accumulate.
- ``n`` completion tokens (capped by max_tokens); ``tpc`` tokens per SSE chunk.
- ``fault``: ``500`` (HTTP 500), ``drop`` (connection cut mid-stream), ``badjson`` (a non-JSON
  ``data:`` line mid-stream), ``stall`` (stops sending mid-stream), ``nousage`` (never a usage
  chunk), ``nofinish`` (``[DONE]`` without any finish reason), ``slowstart`` (stall before headers).
- ``every``: the fault hits only every Nth request of that model name (1 = all).
- ``pt`` seconds per prompt token added to ``ttft`` (TTFT = ttft + pt x prompt tokens: a prefill that grows
  with the prompt); prompt tokens are the words of the messages' contents.
- ``close=1``: every chat response carries ``Connection: close`` and the server closes the connection after
  it (as some servers do), so each request opens a new connection.
- ``window`` the context window listed in ``/v1/models`` as ``max_model_len``; ``truncate`` the most prompt
  tokens the server keeps (and reports in usage): a server that truncates long prompts silently.

Every request is logged in ``server.log`` (server-side perf_counter times: received, first content
write, last content write, tokens) so perf scripts can compare client measurements with the truth.

Run alone: ``python -m tests.support.openai_server --port 0`` prints the base URL and serves.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading
import time
from dataclasses import dataclass, field

_perf = time.perf_counter


@dataclass
class Behaviour:
    ttft: float = 0.0
    tok: float = 0.0
    n: int = 8
    tpc: int = 1
    fault: str | None = None
    every: int = 1
    stall: float = 3600.0
    pt: float = 0.0
    window: int = 0
    truncate: int = 0
    close: int = 0

    @classmethod
    def parse(cls, model: str, defaults: "Behaviour") -> "Behaviour":
        b = Behaviour(**defaults.__dict__)
        for part in model.split(";")[1:]:
            if "=" not in part:
                continue
            k, v = part.split("=", 1)
            if k in ("ttft", "tok", "stall", "pt"):
                setattr(b, k, float(v))
            elif k in ("n", "tpc", "every", "window", "truncate", "close"):
                setattr(b, k, int(v))
            elif k == "fault":
                b.fault = v or None
        return b


@dataclass
class LogEntry:
    model: str
    received: float
    first_write: float | None = None
    last_write: float | None = None
    tokens: int = 0
    fault: str | None = None
    prompt_tokens: int = 0


@dataclass
class ServerState:
    defaults: Behaviour = field(default_factory=Behaviour)
    models: list[str] = field(default_factory=lambda: ["tiny"])
    counts: dict = field(default_factory=dict)
    log: list = field(default_factory=list)
    keep_log: bool = True
    count_tokens: object = None      # a tokenizer (text -> tokens) for prompt tokens; default: words


def _chunk(obj_bytes: bytes) -> bytes:
    data = b"data: " + obj_bytes + b"\n\n"
    return b"%x\r\n%s\r\n" % (len(data), data)


def _event(model: str, delta: dict, finish=None) -> bytes:
    return json.dumps({"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": 0, "model": model,
                       "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]},
                      separators=(",", ":")).encode()


class _Handler:
    def __init__(self, state: ServerState):
        self.state = state

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        k, v = line.split(":", 1)
                        headers[k.strip().lower()] = v.strip()
                body = b""
                if "content-length" in headers:
                    body = await reader.readexactly(int(headers["content-length"]))
                keep = await self.route(method, path, body, writer)
                if not keep:
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            return
        finally:
            try:
                writer.close()
            except Exception:
                pass

    @staticmethod
    def _send_json(writer, status: int, obj, reason="OK") -> None:
        data = json.dumps(obj).encode()
        writer.write(b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                     % (status, reason.encode(), len(data), data))

    async def route(self, method: str, path: str, body: bytes, writer) -> bool:
        path = path.split("?", 1)[0]
        if method == "GET" and path.rstrip("/") == "/v1/models":
            data = []
            for m in self.state.models:
                row = {"id": m, "object": "model", "owned_by": "test"}
                window = Behaviour.parse(m, self.state.defaults).window
                if window:
                    row["max_model_len"] = window
                data.append(row)
            self._send_json(writer, 200, {"object": "list", "data": data})
            return True
        if method == "GET" and path == "/_log":   # the server-side truth, for perf scripts
            self._send_json(writer, 200, [e.__dict__ for e in self.state.log])
            return True
        if method == "DELETE" and path == "/_log":
            self.state.log.clear()
            self._send_json(writer, 200, {"ok": True})
            return True
        if method == "POST" and path == "/v1/chat/completions":
            return await self.chat(json.loads(body), writer)
        self._send_json(writer, 404, {"error": {"message": f"no route {method} {path}"}}, "Not Found")
        return True

    async def chat(self, req: dict, writer) -> bool:
        received = _perf()
        received_at = asyncio.get_running_loop().time()   # TTFT is scheduled from here
        model = str(req.get("model", ""))
        b = Behaviour.parse(model, self.state.defaults)
        count = self.state.counts[model] = self.state.counts.get(model, 0) + 1
        fault = b.fault if (b.fault and count % max(b.every, 1) == 0) else None
        entry = LogEntry(model, received, fault=fault)
        if self.state.keep_log:
            self.state.log.append(entry)
        n = max(0, min(b.n, int(req.get("max_tokens") or b.n)))
        finish = "length" if n < b.n else "stop"
        tokens_of = self.state.count_tokens or (lambda text: len(text.split()))
        prompt_tokens = sum(tokens_of(str(m.get("content", ""))) for m in req.get("messages", []))
        if b.truncate:
            prompt_tokens = min(prompt_tokens, b.truncate)
        entry.prompt_tokens = prompt_tokens
        ttft = b.ttft + b.pt * prompt_tokens
        words = [f"w{i} " for i in range(n)]
        if fault == "500":
            self._send_json(writer, 500, {"error": {"message": "injected server error", "type": "server_error"}},
                            "Internal Server Error")
            return True
        if fault == "slowstart":
            await asyncio.sleep(b.stall)
        usage = {"prompt_tokens": prompt_tokens, "completion_tokens": n, "total_tokens": prompt_tokens + n}
        if not req.get("stream"):
            if ttft or b.tok:
                await asyncio.sleep(ttft + b.tok * max(n - 1, 0))
            entry.first_write = entry.last_write = _perf()
            entry.tokens = n
            self._send_json(writer, 200, {
                "id": "chatcmpl-test", "object": "chat.completion", "created": 0, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "".join(words)},
                             "finish_reason": finish}],
                "usage": usage})
            return not b.close

        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n"
                     + (b"Connection: close\r\n" if b.close else b"") + b"Transfer-Encoding: chunked\r\n\r\n")
        writer.write(_chunk(_event(model, {"role": "assistant", "content": ""})))
        chunks = ["".join(words[i:i + b.tpc]) for i in range(0, n, max(b.tpc, 1))]
        loop = asyncio.get_running_loop()
        due = received_at + ttft
        sent_tokens = 0
        for i, text in enumerate(chunks):
            if i:
                due += b.tok * max(b.tpc, 1)
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
                await writer.drain()
            if fault == "drop" and i >= max(1, len(chunks) // 2):
                writer.transport.abort()
                return False
            if fault == "stall" and i >= max(1, len(chunks) // 2):
                await writer.drain()
                await asyncio.sleep(b.stall)
                return False
            if fault == "badjson" and i == max(1, len(chunks) // 2):
                writer.write(_chunk(b"{this is not json"))
            writer.write(_chunk(_event(model, {"content": text})))
            sent_tokens += text.count(" ")
            t = _perf()
            if entry.first_write is None:
                entry.first_write = t
            entry.last_write = t
        entry.tokens = sent_tokens
        if fault == "drop" and len(chunks) < 2:
            writer.transport.abort()
            return False
        if fault != "nofinish":
            writer.write(_chunk(_event(model, {}, finish)))
        include_usage = bool((req.get("stream_options") or {}).get("include_usage"))
        if include_usage and fault != "nousage":
            writer.write(_chunk(json.dumps({"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": 0,
                                            "model": model, "choices": [], "usage": usage}).encode()))
        writer.write(_chunk(b"[DONE]"))
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return not b.close


class OpenAITestServer:
    """Runs the server on 127.0.0.1 in a background thread. Use as a context manager."""

    def __init__(self, models: list[str] | None = None, port: int = 0, count_tokens=None, **defaults):
        self.state = ServerState(defaults=Behaviour(**defaults), models=list(models or ["tiny"]),
                                 count_tokens=count_tokens)
        self.port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._server = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def log(self) -> list[LogEntry]:
        return self.state.log

    def start(self) -> "OpenAITestServer":
        def run():
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            self._server = self._loop.run_until_complete(
                asyncio.start_server(_Handler(self.state), "127.0.0.1", self.port))
            self.port = self._server.sockets[0].getsockname()[1]
            self._ready.set()
            self._loop.run_forever()
        self._thread = threading.Thread(target=run, daemon=True, name="openai-test-server")
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is None:
            return

        async def shutdown():
            self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()
        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


async def serve(port: int, models: list[str], defaults: Behaviour, keep_log: bool, backlog: int = 1024) -> None:
    state = ServerState(defaults=defaults, models=models, keep_log=keep_log)
    server = await asyncio.start_server(_Handler(state), "127.0.0.1", port, backlog=backlog)
    print(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1", flush=True)
    async with server:
        await server.serve_forever()


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--model", action="append", default=None)
    ap.add_argument("--ttft", type=float, default=0.0)
    ap.add_argument("--tok", type=float, default=0.0)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--log", action="store_true", help="keep the request log (memory grows)")
    ap.add_argument("--backlog", type=int, default=1024, help="the listening socket's accept queue")
    a = ap.parse_args(argv)
    try:
        asyncio.run(serve(a.port, a.model or ["tiny"], Behaviour(ttft=a.ttft, tok=a.tok, n=a.n), a.log, a.backlog))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
