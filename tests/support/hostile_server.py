"""An OpenAI-compatible endpoint on 127.0.0.1 that answers like a hostile one: model ids with formulas, Markdown
images, HTML and ANSI escapes; outputs that start with spreadsheet formulas; error bodies that echo an API key.
Non-streaming answers only (run the benchmark with BENCH_STREAM=0). Stdlib only; use as a context manager."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LEAKED_KEY = "sk-proj-Zq81Lk2Pw9Xv4Rt7Ny3Mb6Hc5"
MODELS = {
    "=1+2-model": '=HYPERLINK("http://evil.example/x","click")',
    "\x1b[31mred\x1b[0m\x07-model": "- item one\n- item two",
    "![j](http://evil.example/x.png)": "@SUM(A1:A9) <img src=x onerror=alert(1)>",
    "leaky": None,          # HTTP 401 whose body echoes the key
}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet
        pass

    def _json(self, status: int, obj) -> None:
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path.rstrip("/") == "/v1/models":
            self._json(200, {"object": "list", "data": [{"id": m, "object": "model"} for m in MODELS]})
        else:
            self._json(404, {"error": {"message": "not found"}})

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        req = json.loads(self.rfile.read(length) or b"{}")
        model = req.get("model")
        if model not in MODELS:
            self._json(404, {"error": {"message": f"no model {model}"}})
        elif MODELS[model] is None:
            self._json(401, {"error": {"message": f"Incorrect API key provided: {LEAKED_KEY}. Authorization: "
                                                  f"Bearer {LEAKED_KEY}"}})
        else:
            text = MODELS[model]
            self._json(200, {"id": "x", "object": "chat.completion", "created": 0, "model": model,
                             "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                          "finish_reason": "stop"}],
                             "usage": {"prompt_tokens": 3, "completion_tokens": len(text.split()),
                                       "total_tokens": 3 + len(text.split())}})


class _Served:
    """A ThreadingHTTPServer on 127.0.0.1 (port chosen by the OS) in a daemon thread; use as a context manager."""

    def _serve(self, handler) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True, name=type(self).__name__)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        stop = getattr(self, "stop", None)
        if stop is not None:
            stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


class HostileServer(_Served):
    def __init__(self):
        self._serve(_Handler)


class RecordingServer(_Served):
    """A server on 127.0.0.1 that records every request it gets (method, path, headers) and answers as told:
    ``redirect_to`` (302 to that URL), ``drip_s`` (a /v1/models body sent one byte every drip_s seconds), or a
    model list. The tests assert what reached it: nothing, or no Authorization header."""

    def __init__(self, *, redirect_to: str | None = None, drip_s: float | None = None, models=("m",)):
        self.requests: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _any(self):
                outer.requests.append({"method": self.command, "path": self.path,
                                       "headers": {k.lower(): v for k, v in self.headers.items()}})
                if outer.redirect_to and "/real" not in self.path:   # a path with /real is answered
                    self.send_response(302)
                    self.send_header("Location", outer.redirect_to)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = json.dumps({"object": "list", "data": [{"id": m} for m in outer.models]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if outer.drip_s:
                    for i in range(len(body)):
                        try:
                            self.wfile.write(body[i:i + 1])
                            self.wfile.flush()
                        except OSError:
                            return
                        if outer.stop.wait(outer.drip_s):
                            return
                else:
                    self.wfile.write(body)

            do_GET = do_POST = _any

        self.redirect_to, self.drip_s, self.models = redirect_to, drip_s, list(models)
        self.stop = threading.Event()
        self._serve(Handler)


MALFORMED = {
    # model id -> the SSE data lines it streams (a malformed one among them); "healthy" streams a proper answer
    "bad-delta": ['{"choices":[{"delta":"oops"}]}'],
    "bad-content": ['{"choices":[{"delta":{"content":{"x":1}}}]}'],
    "bad-usage": ['{"choices":[{"delta":{"content":"hi"},"finish_reason":"stop"}]}',
                  '{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":"many"}}'],
    "bad-choices": ['{"choices":{"0":{"delta":{"content":"x"}}}}'],
}
MALFORMED_BODY = '{"choices":["oops"]}'     # what every model answers when not streamed, but "healthy"


class MalformedEventsServer(_Served):
    """An OpenAI-compatible endpoint whose models answer malformed events (``MALFORMED``), beside a healthy
    model that streams a proper answer with usage. Non-streamed: the bad models answer ``MALFORMED_BODY``."""

    def __init__(self, tokens: int = 4):
        outer = self
        self.tokens = tokens

        class Handler(_Handler):
            def do_GET(self):
                self._json(200, {"object": "list", "data": [{"id": m} for m in ("healthy", *MALFORMED)]})

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                req = json.loads(self.rfile.read(length) or b"{}")
                model = req.get("model")
                if not req.get("stream"):
                    if model == "healthy":
                        return self._json(200, {"choices": [{"message": {"content": "ok " * outer.tokens},
                                                             "finish_reason": "stop"}],
                                                "usage": {"prompt_tokens": 3, "completion_tokens": outer.tokens}})
                    body = MALFORMED_BODY.encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                if model == "healthy":
                    lines = [json.dumps({"choices": [{"delta": {"content": "ok "}}]})] * outer.tokens
                    lines += [json.dumps({"choices": [{"delta": {}, "finish_reason": "stop"}]}),
                              json.dumps({"choices": [], "usage": {"prompt_tokens": 3,
                                                                   "completion_tokens": outer.tokens}})]
                else:
                    lines = MALFORMED.get(model, ['{"error": {"message": "no such model"}}'])
                body = b"".join(b"data: " + line.encode() + b"\n\n" for line in [*lines, "[DONE]"])
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self._serve(Handler)
