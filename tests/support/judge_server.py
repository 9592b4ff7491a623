"""A scripted OpenAI-compatible server for the judge's tests (stdlib only, 127.0.0.1, own thread).

    with JudgeServer(["first answer", "second answer"]) as srv:   # or a callable(request_json) -> str
        srv.base_url  # http://127.0.0.1:PORT/v1
        srv.requests  # every chat request body received (parsed JSON), in order

Speaks: GET /v1/models; POST /v1/chat/completions, non-streaming (one JSON body with usage) and
streaming (SSE chunks, a finish reason, a usage chunk when asked, then [DONE]). An answer given as
{"status": 500, "body": "..."} is sent as that HTTP error. When the script runs out, the last
answer repeats.
"""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable


class JudgeServer:
    def __init__(self, answers: list | Callable[[dict], object], model: str = "judge-model"):
        self.answers = answers
        self.model = model
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        self._i = 0
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------------- lifecycle
    def __enter__(self) -> "JudgeServer":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self) -> None:
        server = self

        class Handler(_Handler):
            owner = server

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._httpd:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    # ---------------------------------------------------------------- script
    def next_answer(self, body: dict):
        with self._lock:
            self.requests.append(body)
            if callable(self.answers):
                return self.answers(body)
            if not self.answers:
                return ""
            answer = self.answers[min(self._i, len(self.answers) - 1)]
            self._i += 1
            return answer


class _Handler(BaseHTTPRequestHandler):
    owner: JudgeServer
    protocol_version = "HTTP/1.1"

    def log_message(self, *args) -> None:  # quiet
        pass

    def _send_json(self, status: int, obj) -> None:
        data = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        if self.path.rstrip("/").endswith("/models"):
            self._send_json(200, {"object": "list", "data": [{"id": self.owner.model, "object": "model",
                                                              "owned_by": "test"}]})
        else:
            self._send_json(404, {"error": {"message": "not found"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._send_json(404, {"error": {"message": "not found"}})
            return
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            self._send_json(400, {"error": {"message": "bad JSON"}})
            return
        answer = self.owner.next_answer(body)
        if isinstance(answer, dict) and "status" in answer:
            self._send_json(int(answer["status"]), {"error": {"message": answer.get("body", "scripted error")}})
            return
        text = answer if isinstance(answer, str) else json.dumps(answer)
        created = int(time.time())
        usage = {"prompt_tokens": 10, "completion_tokens": max(1, len(text.split())),
                 "total_tokens": 10 + max(1, len(text.split()))}
        if not body.get("stream"):
            self._send_json(200, {"id": "cmpl-1", "object": "chat.completion", "created": created,
                                  "model": body.get("model", self.owner.model),
                                  "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                               "finish_reason": "stop"}],
                                  "usage": usage})
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()

        def event(obj) -> None:
            self.wfile.write(b"data: " + json.dumps(obj).encode() + b"\n\n")
            self.wfile.flush()

        base = {"id": "cmpl-1", "object": "chat.completion.chunk", "created": created,
                "model": body.get("model", self.owner.model)}
        event({**base, "choices": [{"index": 0, "delta": {"role": "assistant"}, "finish_reason": None}]})
        for i in range(0, len(text), 8):
            event({**base, "choices": [{"index": 0, "delta": {"content": text[i:i + 8]}, "finish_reason": None}]})
        event({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        if (body.get("stream_options") or {}).get("include_usage"):
            event({**base, "choices": [], "usage": usage})
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()
        self.close_connection = True
