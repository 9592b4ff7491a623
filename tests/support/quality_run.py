"""A finished benchmark run written straight into the store (quality tests score its outputs)."""
from __future__ import annotations

import json

from core.store import connect


def make_run(run_id: str, prompts: dict[str, str], outputs: dict[tuple[str, str], str], *,
             backend: str = "openai", extra_requests: bool = True) -> dict[tuple[str, str], str]:
    """Insert runs/run_prompts/requests rows; returns {(model, prompt_id): request_id} of the scored outputs.

    With extra_requests, each scored output also gets a warm-up, a failed request and a later round,
    which quality must ignore.
    """
    ids = {}
    with connect() as con:
        con.execute("INSERT INTO runs (run_id, status, prompt_set, settings) VALUES (?, 'completed', 'test', ?)",
                    [run_id, json.dumps({"rounds": 2})])
        for pos, (pid, text) in enumerate(prompts.items()):
            con.execute("INSERT INTO run_prompts (run_id, prompt_id, position, text) VALUES (?, ?, ?, ?)",
                        [run_id, pid, pos, text])
        n = 0
        for (model, pid), text in outputs.items():
            rid = f"{run_id}-r{n:03d}"
            n += 1
            ids[(model, pid)] = rid
            rows = [(rid, 1, 0, False, True, text, 0.5)]
            if extra_requests:
                rows += [(f"{rid}-warm", 1, 0, True, True, "warm-up text", 0.0),
                         (f"{rid}-fail", 1, 0, False, False, None, 0.1),
                         (f"{rid}-round2", 1, 1, False, True, "a later round", 2.0),
                         (f"{rid}-c4", 4, 0, False, True, "at concurrency 4", 0.0)]
            for req_id, conc, rnd, warm, ok, out, offset in rows:
                con.execute(
                    "INSERT INTO requests (request_id, run_id, model, backend, concurrency, prompt_id, round, warmup, ok, "
                    "start_offset_s, output_text, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [req_id, run_id, model, backend, conc, pid, rnd, warm, ok, offset, out,
                     None if ok else "HTTP 500"])
    return ids


TEST_RUBRIC = {
    "name": "notes",
    "description": "test rubric",
    "criteria": [
        {"name": "coverage", "description": "all decisions and actions", "scale": [1, 5], "weight": 2},
        {"name": "faithfulness", "description": "nothing invented", "scale": [1, 5], "weight": 1},
    ],
    "checks": [{"kind": "max_words", "value": 50}],
    "prompts": {"p1": {"expected_aspects": ["the launch moves to May"], "reference_answer": "Launch moves to May.",
                       "checks": [{"kind": "contains", "value": "May"}]}},
}
