"""Hand-score save time (the Score-by-hand page's "Save and next"): target under 0.5 s.

Prints the median of 10 saves of one prompt's form (every candidate, every criterion) on a run of
the starter pack size, and the ratio to the target. Run: .venv/bin/python -m tests.perf.bench_hand_save
"""
import os
import statistics
import tempfile
import time

TARGET_S = 0.5


def main() -> None:
    tmp = tempfile.mkdtemp()
    os.environ["SLM_DB"] = os.path.join(tmp, "perf.duckdb")
    from core.quality import blind
    from core.quality.rubrics import get_rubric
    from tests.support.quality_run import make_run

    prompts = {f"p{i:02d}": f"task {i}" for i in range(12)}
    make_run("perf", prompts, {(m, p): f"{m} answer to {p}" for m in ("m-a", "m-b", "m-c") for p in prompts})
    rubric = get_rubric("meeting_notes")
    session = blind.blind_session("perf", rubric.name, "ana")
    times = []
    for k in range(10):
        p = session.prompts[k % len(session.prompts)]
        values = {c.request_id: ({n: 3 for n in rubric.criterion_names}, f"comment {k}") for c in p.candidates}
        t0 = time.perf_counter()
        blind.save_prompt_scores("perf", rubric.name, "ana", values)
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    print(f"hand-score save: median {med:.3f} s over {len(times)} saves (max {max(times):.3f} s); "
          f"target {TARGET_S} s; ratio {med / TARGET_S:.2f}")


if __name__ == "__main__":
    main()
