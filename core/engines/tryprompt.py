""""Try a prompt": stream one answer from any model in the list, with its TTFT and decode speed."""
from __future__ import annotations

import threading
import time
from typing import Iterator

from core import metrics
from core.engines.base import EngineDied, RequestOptions, RequestRecord
from core.engines.factory import make_engine
from core.metrics import completion_tokens_of
from core.errors import UserError


def stream_answer(model: dict, prompt: str, *, pool, max_tokens: int = 128, stats: dict | None = None,
                  timeout_s: float = 120.0) -> Iterator[str]:
    """Yield the answer's text as it arrives; fill `stats` with ttft_ms, e2e_ms, decode_tok_s,
    completion_tokens and token_count_source (core.metrics definitions) when it ends.

    Foundry Local and llama.cpp models are loaded into `pool` (a core.engines.pool.LoadedModels) first."""
    stats = stats if stats is not None else {}
    temporary = None
    if model["backend"] in ("foundry", "llamacpp"):
        pool.load(model)
        engine = pool.get(model["id"])
    else:
        engine = temporary = make_engine(model["backend"], model["id"], endpoint=model.get("endpoint"),
                                         api_key_env=model.get("api_key_env"), model_row=model)
        engine.open()
    rec = RequestRecord()
    opts = RequestOptions(temperature=0.0, max_tokens=max_tokens, seed=0, timeout_s=timeout_s)
    failure: list[BaseException] = []

    def work():
        try:
            if engine.is_async:
                import asyncio
                asyncio.run(engine.arequest([{"role": "user", "content": prompt}], opts, rec))
            else:
                engine.request_sync([{"role": "user", "content": prompt}], opts, rec)
        except BaseException as exc:  # noqa: BLE001 - reported below, on the caller's thread
            failure.append(exc)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    sent = 0
    try:
        while thread.is_alive() or sent < len(rec.text_parts):
            parts = rec.text_parts[sent:]
            if parts:
                sent += len(parts)
                yield "".join(parts)
            else:
                time.sleep(0.02)
        thread.join()
    finally:
        if temporary is not None:
            temporary.close()
    if failure:
        exc = failure[0]
        if isinstance(exc, EngineDied):
            pool.unload(model["id"])
        raise UserError(f"{model['id']}: {' '.join(str(exc).split())}")
    if rec.error is None and rec.usage_completion_tokens is None and engine.count_tokens and rec.text_parts:
        rec.tokenizer_completion_tokens = engine.count_tokens(rec.output_text)
    row = metrics.request_row(rec, level_start=rec.start or 0.0)
    if not row["ok"]:
        raise UserError(f"{model['id']}: {row['error']}")
    tokens, source = completion_tokens_of(rec)
    stats.update(ttft_ms=row["ttft_ms"], e2e_ms=row["e2e_ms"], tpot_ms=row["tpot_ms"],
                 decode_tok_s=metrics.per_s(row["tpot_ms"]), completion_tokens=tokens,
                 token_count_source=source, finish_reason=rec.finish_reason)
