"""OpenAI-compatible HTTP engine: chat completions streamed over Server-Sent Events.

Why a small asyncio HTTP/1.1 client and not the ``openai`` package here: the client must cost far
less CPU than the model it measures (the laptop's cores are shared), and must sustain hundreds of
requests per second at concurrency 32 on two cores. The ``openai`` client parses every chunk into
pydantic objects and retries failed requests twice by default (inside the caller's timer). This
client never retries, keeps connections alive, parses bytes in ``asyncio.Protocol.data_received``
(no coroutine switch per chunk) and stamps ``time.perf_counter()`` as the bytes arrive; it speaks exactly
the protocol the ``openai`` client speaks (``POST {base}/chat/completions`` with ``stream`` and
``stream_options.include_usage``, ``Authorization: Bearer`` and ``api-key`` headers).
``rec.start`` is stamped just before the request is written, on a connection already open: when one
had to be opened, its connect (TCP + TLS) seconds are kept apart in ``rec.connect_s``.

Responses are capped (``MAX_RESPONSE_BYTES`` for a whole body, ``MAX_SSE_LINE_BYTES`` for one SSE
line, ``MAX_ERROR_BODY`` read of an error body): an endless or huge answer from a broken or hostile
endpoint ends as a failed request.

Why not aiohttp (what ``vllm bench serve`` uses): measured in ``tests/perf`` against the same engine on
aiohttp (``tests/perf/_aiohttp_http.py``), aiohttp costs about 1.4x the CPU per streamed request (one
more event-loop turn and coroutine resume per chunk), over the 0.01 CPU s/request target here, and
tops out at 0.5-0.7x the requests/s at concurrency 32; the fidelity is the same.
``tests/perf/bench_client_cost.py``, ``bench_ceiling.py`` and ``bench_fidelity.py`` print both, and
the ``openai`` client (and guidellm) for scale.

The engine stamps times and copies fields; ``core.metrics`` derives every number.
"""
from __future__ import annotations

import asyncio
import json
from urllib.parse import urlsplit

from core.engines.base import Engine, LoadInfo, RequestOptions, RequestRecord
from core.errors import UserError
from core.engines.http_transport import (
    Malformed, ResponseTooLarge, TransportError, _Pool, _Response, _perf, _quote, _why,
)


def _text(value, field: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise Malformed(f"{field} is {type(value).__name__}, not text")
    return value


def _count(usage: dict, field: str) -> int | None:
    value = usage.get(field)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value or value < 0 \
            or value > 10 ** 9 or int(value) != value:
        raise Malformed(f"usage.{field} is {str(value)[:20]!r}, not a token count")
    return int(value)


def _object(value, field: str) -> dict:
    if not isinstance(value, dict):
        raise Malformed(f"{field} is {type(value).__name__}, not an object")
    return value


class HttpEngine(Engine):
    """Chat completions against ``base_url`` (ending in /v1). ``server_pid``: the server's process,
    when known, so its memory and CPU can be measured (else they are unknown, never 0)."""

    backend = "openai"
    is_async = True

    def __init__(self, model: str, base_url: str, *, api_key_env: str | None = None,
                 server_pid: int | None = None, count_tokens=None):
        super().__init__(model)
        from core.catalog.endpoints import normalize_base_url
        self.base_url = normalize_base_url(base_url)
        self.api_key_env = api_key_env
        self.server_pid = server_pid
        self.count_tokens = count_tokens
        parts = urlsplit(self.base_url)
        self._ssl = parts.scheme == "https"
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or (443 if self._ssl else 80)
        default_port = (443 if self._ssl else 80)
        self._host_header = self._host if self._port == default_port else f"{self._host}:{self._port}"
        path = parts.path.rstrip("/") + "/chat/completions"
        self._path = path + (f"?{parts.query}" if parts.query else "")
        self._pool: _Pool | None = None
        self._head_cache: dict[tuple[int, bool], bytes] = {}
        self._auth = b""

    # -- lifecycle --------------------------------------------------------------------------
    def open(self) -> LoadInfo:
        from core.catalog.endpoints import auth_headers, fetch_models
        # the variable's name and its value checked at each open (never a redirect: this client follows none)
        self._auth = "".join(f"{k}: {v}\r\n" for k, v in auth_headers(self.api_key_env).items()).encode("latin-1")
        fetch_models(self.base_url, self.api_key_env, timeout=5.0)   # UserError when unreachable
        info = LoadInfo(pid=self.server_pid)
        if self.server_pid:
            from core.engines.base import process_stats
            st = process_stats(self.server_pid)
            if st:
                info.rss_after_load_mb = st["rss_mb"]
        info.notes.append("model loaded by the server before the run: cold-load time not measured")
        return info

    def _close_pool(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None

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
        if opts.response_format is not None:
            payload["response_format"] = opts.response_format
        return json.dumps(payload, separators=(",", ":")).encode()

    def _head(self, length: int, stream: bool) -> bytes:
        return (f"POST {self._path} HTTP/1.1\r\nHost: {self._host_header}\r\n"
                f"Content-Type: application/json\r\nAccept: {'text/event-stream' if stream else 'application/json'}\r\n"
                f"Accept-Encoding: identity\r\nUser-Agent: slm-selector\r\nContent-Length: {length}\r\n").encode() \
            + self._auth + b"\r\n"

    async def arequest(self, messages: list[dict], opts: RequestOptions, rec: RequestRecord) -> None:
        body = self._payload(messages, opts)
        data = self._head(len(body), opts.stream) + body
        pool = self._pool
        loop = asyncio.get_running_loop()
        if pool is None or pool.loop is not loop:
            pool = self._pool = _Pool(self._host, self._port, self._ssl)
        conn = response = None
        rec.start = _perf()           # stamped again once a connection is open
        try:
            async with asyncio.timeout(opts.timeout_s):
                conn, connect_s = await pool.get()
                if connect_s is not None:
                    rec.connect_s = connect_s        # kept apart: not the model's time
                response = _Response(self, rec, opts.stream, loop.create_future())
                conn.response = response
                rec.start = _perf()
                conn.transport.write(data)
                await response.done
        except TimeoutError:
            stage = "no response" if rec.first_token_at is None else f"stalled after {len(rec.chunk_times)} chunks"
            rec.fail(f"timed out after {opts.timeout_s:g} s ({stage})")
        except ResponseTooLarge as exc:
            rec.fail(str(exc))
        except (ConnectionError, TransportError, OSError) as exc:
            detail = str(exc) if isinstance(exc, (ConnectionResetError, TransportError)) and str(exc) \
                else f"{type(exc).__name__}: {exc}"
            if conn is None:
                rec.fail(f"cannot connect to {self._host}:{self._port} ({detail})")
            elif rec.finish_reason is None:
                where = f"mid-stream after {len(rec.chunk_times)} chunks" if rec.chunk_times else "before the first token"
                rec.fail(f"connection dropped {where} ({detail})")
            elif rec.end is None and response is not None:
                rec.end = response.last_event   # the answer was complete; the connection went after it
        except asyncio.CancelledError:
            if conn is not None:
                conn.close()
            raise
        except Exception as exc:        # never out of a request: whatever else went wrong fails this one
            if rec.error is None:
                rec.fail(f"request failed ({_why(exc)})")
        finally:
            if conn is not None:
                if rec.error is not None or response is None or not response.reusable \
                        or response.state != _Response.DONE:
                    conn.close()
                else:
                    pool.put(conn)
        if rec.error is None and rec.finish_reason is None:
            rec.fail("stream ended without a finish reason (truncated)")

    @staticmethod
    def _on_event(obj, t: float, rec: RequestRecord) -> None:
        """One SSE event into ``rec``; Malformed (naming the field) when a field has the wrong shape."""
        obj = _object(obj, "the event")
        if obj.get("error"):
            err = obj["error"]
            msg = err.get("message") if isinstance(err, dict) else err
            rec.fail(f"server error in stream: {' '.join(str(msg).split())[:200]}")
            return
        choices = obj.get("choices")
        if choices is not None and not isinstance(choices, list):
            raise Malformed(f"choices is {type(choices).__name__}, not a list")
        if choices:
            ch = _object(choices[0], "choices[0]")
            delta = _object(ch.get("delta") or {}, "choices[0].delta")
            content = _text(delta.get("content"), "delta.content")
            # reasoning models stream their thinking apart: it is generated output (timed, counted by
            # usage) but not part of the answer text
            thinking = _text(delta.get("reasoning_content"), "delta.reasoning_content") \
                or _text(delta.get("reasoning"), "delta.reasoning")
            fr = _text(ch.get("finish_reason"), "finish_reason")
            if content or thinking:
                if rec.first_token_at is None:
                    rec.first_token_at = t
                rec.chunk_times.append(t)
                if content:
                    rec.text_parts.append(content)
            if fr:
                rec.finish_reason = fr
        usage = obj.get("usage")
        if usage:
            usage = _object(usage, "usage")
            completion, prompt = _count(usage, "completion_tokens"), _count(usage, "prompt_tokens")
            if completion is not None:
                rec.usage_completion_tokens = completion
            if prompt is not None:
                rec.prompt_tokens = prompt

    @staticmethod
    def _parse_json_body(body: bytes, rec: RequestRecord) -> None:
        """A non-streamed chat completion into ``rec``; a body that is not one fails the request (never raises)."""
        try:
            obj = json.loads(body)
            choices = _object(obj, "the body").get("choices")
            if not isinstance(choices, list) or not choices:
                raise Malformed("no choices")
            choice = _object(choices[0], "choices[0]")
            message = _object(choice.get("message") or {}, "choices[0].message")
            text = _text(message.get("content"), "message.content") or ""
            finish = _text(choice.get("finish_reason"), "finish_reason")
            usage = _object(obj.get("usage") or {}, "usage")
            completion, prompt = _count(usage, "completion_tokens"), _count(usage, "prompt_tokens")
        except ValueError as exc:
            why = str(exc) if isinstance(exc, Malformed) else "not JSON"
            rec.fail(f"response is not a chat completion ({why}): {_quote(body)}")
            return
        rec.raw = obj
        if text:
            rec.text_parts.append(text)
        rec.finish_reason = finish
        if completion is not None:
            rec.usage_completion_tokens = completion
        if prompt is not None:
            rec.prompt_tokens = prompt
        if rec.finish_reason is None and rec.error is None:
            rec.fail("response without a finish reason")

    def run_one(self, messages: list[dict], opts: RequestOptions) -> RequestRecord:
        async def go():
            rec = RequestRecord()
            try:
                await self.arequest(messages, opts, rec)
            finally:
                self._close_pool()
            return rec
        return asyncio.run(go())


def local_tokenizer(model: str):
    """A token counter from the model's own tokenizer.json when a local model has this id or alias
    (e.g. Foundry Local's service serving a model also in the local catalog); else None."""
    try:
        from pathlib import Path

        from tokenizers import Tokenizer

        from core.catalog.foundry import list_local_models
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
    from core.catalog.endpoints import fetch_models, normalize_base_url
    try:
        return fetch_models(normalize_base_url(base_url), api_key_env, timeout=timeout)
    except UserError:
        raise
    except Exception as exc:  # pragma: no cover - defensive
        raise UserError(f"endpoint {base_url} unreachable: {exc}") from exc

