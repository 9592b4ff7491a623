"""The Foundry Local worker process (the child `core.engines.foundry_worker.FoundryWorker` starts): it
loads one model and streams its chat answers. Run as ``python -m core.engines.foundry_server``.

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

import json
import os
import queue
import sys
import threading
import time

from core.engines.proc import memory_mb

FLUSH_EVERY_S = 0.05   # a chat's events go out in batches at most this far apart (times are in them)


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

    from core.catalog.foundry import CPU_EP, get_local_model, get_manager
    from core.catalog.foundry.folders import _genai_provider
    from core.errors import one_line

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
    rss_before = memory_mb(os.getpid()).get("VmRSS")
    start = time.perf_counter()
    model.load()
    load_s = time.perf_counter() - start
    rss_after = memory_mb(os.getpid()).get("VmRSS")
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
        from core.errors import one_line

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
