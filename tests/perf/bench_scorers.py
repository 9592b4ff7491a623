"""The automatic scorers' two targets, printed:

1. Speed: every output of a 3-model x 12-prompt run (the meeting-notes set; each meeting's reference
   notes, their first section only, the next meeting's notes) scored by `check` (checks + scorers, the
   embedding model's load included, stored) in under 10 s, in a fresh process: wall and CPU time and
   their ratios to the target. The store exists with its rubrics before the clock starts (migrating a
   new file is not scoring).
2. Separation: the coverage scorer on each meeting's reference notes (positives) against every other
   meeting's reference notes (negatives, 12 x 11), on that meeting's expected aspects: the AUC
   (Mann-Whitney: the share of (positive, negative) pairs ranked right, ties half), target >= 0.95.

Run: .venv/bin/python -m tests.perf.bench_scorers
"""
import json
import os
import tempfile
import time

TARGET_S = 10.0
TARGET_AUC = 0.95


def main() -> None:
    tmp = tempfile.mkdtemp()
    os.environ["SLM_DB"] = os.path.join(tmp, "perf.duckdb")
    from core.config import DATA_DIR
    from core.quality.scorers import check_run, coverage
    from tests.support.quality_run import make_run

    prompts = json.loads((DATA_DIR / "prompts" / "meeting_notes.json").read_text())
    expect = json.loads((DATA_DIR / "prompts" / "meeting_notes_expectations.json").read_text())
    ids = [p["id"] for p in prompts]
    ref = {pid: expect[pid]["reference_answer"] for pid in ids}
    outputs = {}
    for i, pid in enumerate(ids):
        outputs[("notes-full", pid)] = ref[pid]
        outputs[("notes-first-section", pid)] = ref[pid].split("\n\n")[0]
        outputs[("notes-next-meeting", pid)] = ref[ids[(i + 1) % len(ids)]]
    make_run("perf", {p["id"]: p["text"] for p in prompts}, outputs, extra_requests=False)
    with __import__("core.store", fromlist=["connect"]).connect() as con:
        con.execute("UPDATE runs SET prompt_set = 'meeting_notes' WHERE run_id = 'perf'")

    from core.quality.rubrics import get_rubric
    get_rubric("meeting_notes")   # the store and its shipped rubrics exist before (not part of scoring)

    t0, c0 = time.perf_counter(), time.process_time()
    doc = check_run("perf")
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    n = len(doc["scores"])
    print(f"check (checks + automatic scorers, stored) on {n} outputs, embedding model load included: wall "
          f"{wall:.2f} s, CPU {cpu:.2f} s (on a shared machine the CPU time is the work, the wall time adds the "
          f"waiting for a core); target {TARGET_S:.0f} s; ratios wall {wall / TARGET_S:.2f}, CPU {cpu / TARGET_S:.2f}")

    from core.quality.embedding import load_embedder

    emb = load_embedder()
    pos, neg = [], []
    for pid in ids:
        aspects = expect[pid]["expected_aspects"]
        pos.append(coverage(ref[pid], aspects, [], emb)[0])
        neg += [coverage(ref[other], aspects, [], emb)[0] for other in ids if other != pid]
    pairs = len(pos) * len(neg)
    right = sum(1.0 if p > q else 0.5 if p == q else 0.0 for p in pos for q in neg)
    auc = right / pairs
    print(f"coverage scorer, reference notes vs another meeting's notes: AUC {auc:.3f} over {len(pos)} x "
          f"{len(neg)} pairs (positives mean {sum(pos) / len(pos):.2f}, negatives mean {sum(neg) / len(neg):.2f}); "
          f"target >= {TARGET_AUC}; ratio {auc / TARGET_AUC:.2f}")


if __name__ == "__main__":
    main()
