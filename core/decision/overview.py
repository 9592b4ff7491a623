"""The pipeline at a glance for the Overview page: models -> benchmark -> quality -> decision, with what exists
at each step and the next thing to do. No Streamlit here."""
from __future__ import annotations

from pathlib import Path

from core.store import decisions as store


def _starter_ready() -> tuple[int, int]:
    """(ready, total) over what the Models page lists from the starter pack: each Foundry Local folder, and the
    SmolLM2 GGUF that the llama.cpp engine runs."""
    try:
        from core.catalog.starter import starter_gguf_path, starter_models
        models = starter_models()
        gguf = starter_gguf_path()
    except Exception:  # a broken starter file must not break the home page
        return 0, 0
    return sum(1 for m in models if Path(m["path"]).is_dir()) + int(gguf.is_file()), len(models) + 1


def pipeline() -> dict:
    """{"steps": [{"name", "page", "status", "done"}], "next": (sentence, page)}."""
    c = store.pipeline_counts()
    ready, total = _starter_ready()
    latest = c["latest_run"]
    models_done = ready > 0 or c["endpoints"] > 0
    models = f"{ready} of {total} starter models ready" + (f", {c['endpoints']} endpoint(s)" if c["endpoints"] else "")
    if latest:
        bench = (f"{c['runs']} run(s), {c['runs_completed']} completed\nlatest {str(latest['created_at'])[:16]}: "
                 f"{latest['prompt_set'] or '?'}, {latest['models']} model(s), {latest['status']}")
    else:
        bench = "no run yet"
    if c["calibrations"] is not None:
        calib = f"judge calibration: {c['calibrations']} stored"
    else:
        calib = f"judge calibration: not available yet ({c['judge_runs']} judge run(s))"
    quality = (f"{c['scored_outputs']} output(s) scored by hand ({c['raters']} rater(s))\n"
               f"{c['judge_runs_completed']} of {c['judge_runs']} judge run(s) completed\n{calib}")
    decided = c["latest_decision"]
    decision = (f"{c['decisions']} saved decision(s); latest '{decided['name']}'" if decided else "no saved decision")
    steps = [
        {"name": "Models", "page": "models", "status": models, "done": models_done},
        {"name": "Benchmark", "page": "benchmark", "status": bench, "done": c["runs_completed"] > 0},
        {"name": "Quality", "page": "quality", "status": quality,
         "done": c["scored_outputs"] > 0 or c["judge_runs_completed"] > 0},
        {"name": "Decision", "page": "decision", "status": decision, "done": c["decisions"] > 0},
    ]
    if not models_done:
        nxt = ("Build the starter models (python -m core setup-models) or add an endpoint on the Models page.",
               "models")
    elif not c["runs_completed"]:
        nxt = ("Run a first benchmark: the Benchmark page starts with the smallest model, 1 round and a short "
               "answer, which takes well under two minutes.", "benchmark")
    elif not (c["scored_outputs"] or c["judge_runs_completed"]):
        nxt = ("Score some outputs by hand (blind), or run the judge, so quality can count in the decision.",
               "scoring")
    elif not c["decisions"]:
        nxt = ("Weigh the candidates and save a decision.", "decision")
    else:
        nxt = ("Present the latest decision to the team.", "present")
    return {"steps": steps, "next": nxt, "counts": c}
