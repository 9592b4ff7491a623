"""Candidates and their context, read from the store (benchmark runs) and the quality helper."""
from __future__ import annotations

import numpy as np

from core.decision.matrix import Candidate
from core.errors import UserError
from core.store import bench as bench_store


def parse_run_ids(spec) -> list[str]:
    if isinstance(spec, str):
        items = spec.split(",")
    else:
        items = [x for part in (spec or []) for x in str(part).split(",")]
    ids = list(dict.fromkeys(x.strip() for x in items if x and x.strip()))
    if not ids:
        raise UserError("no run id given: use --runs ID[,ID...]")
    return ids


def model_quality(run_id: str, prefer: str = "human", gate=None) -> tuple[dict, str | None]:
    """({model: {"mean","ci_low","ci_high","n","source"}}, problem or None) from the quality helper.

    When the helper is not installed or the run has no scores, quality is unknown ({}), never invented.
    """
    try:
        from core.quality import model_quality as mq  # type: ignore[attr-defined]
    except ImportError:
        return {}, None
    try:
        return dict(mq(run_id, prefer=prefer, gate=gate) or {}), None
    except UserError as exc:
        return {}, exc.one_line()


# What must match for runs to be compared: (label in messages, how to read it from a run row)
COMPARED = (
    ("prompt set", lambda r: _prompt_set(r)),
    ("max tokens", lambda r: (r["settings"] or {}).get("max_tokens")),
    ("temperature", lambda r: (r["settings"] or {}).get("temperature")),
    ("rounds", lambda r: (r["settings"] or {}).get("rounds")),
    ("device", lambda r: device_of(r["environment"])),
)


def _prompt_set(run: dict) -> str | None:
    name, digest = run.get("prompt_set"), run.get("prompt_set_hash")
    if name is None and digest is None:
        return None
    return f"{name or '?'} ({str(digest or '?')[:8]})" if digest else str(name)


def device_of(environment) -> str | None:
    """The machine a run measured: its host label when one was given, else the CPU model."""
    env = environment if isinstance(environment, dict) else {}
    for key in ("device", "host_label", "host", "cpu", "cpu_model"):
        if env.get(key):
            return str(env[key])
    return None


def differences(runs: list[dict]) -> list[str]:
    """What differs between runs that are to be compared, one phrase each: "max tokens (32 vs 96)"."""
    out = []
    for label, get in COMPARED:
        values = list(dict.fromkeys(get(r) for r in runs))
        if len(values) > 1:
            if label == "prompt set" and len({r.get("prompt_set") for r in runs}) > 1:
                values = list(dict.fromkeys(r.get("prompt_set") for r in runs))  # names say enough
            out.append(f"{label} ({' vs '.join('unknown' if v is None else str(v) for v in values)})")
    return out


def check_comparable(run_ids, *, allow_mixed: bool = False) -> list[str]:
    """[] when the runs can be compared; the warnings to carry when mixing is allowed; else UserError."""
    return _comparable(bench_store.runs_by_id(parse_run_ids(run_ids)), allow_mixed)


def _comparable(runs: list[dict], allow_mixed: bool) -> list[str]:
    diffs = differences(runs)
    if not diffs:
        return []
    line = "runs differ in " + ", ".join(diffs)
    if not allow_mixed:
        raise UserError(line + ": their numbers are not comparable; choose comparable runs or allow mixing "
                               "(--allow-mixed)")
    return [line + ": mixed on purpose, numbers are not strictly comparable"]


def _quality_for(q_by_model: dict, model: str, backend: str) -> dict | None:
    # the quality helper labels a model "MODEL (BACKEND)" when it ran on two engines in one run
    q = q_by_model.get(f"{model} ({backend})") or q_by_model.get(model)
    return None if q is None or q.get("mean") is None else q


def build_candidates(inputs: dict, *, prefer: str = "human", gate=None, every_run: bool = False) -> list[Candidate]:
    """One Candidate per (run, model, backend) of ``inputs`` (core.store.bench.candidate_inputs), oldest run
    first, at the lowest concurrency level, with the notes every path keeps: the benchmark's notes,
    "quality unavailable: ..." when the quality helper could not report, "quality unverified: ..." when the
    quality rests on a judge below ``gate`` (core.quality.calibration.Gate). The device is the run's label
    (runs.device), else the machine its environment names.

    The quality helper is asked only about runs with quality data (``inputs["scored"]``: a run without any has
    no quality to report, and asking costs a report per run, which a fleet of many runs cannot afford) unless
    ``every_run``."""
    runs, models, reqs = inputs["runs"], inputs["models"], inputs["requests"]
    run_of = {r["run_id"]: r for r in runs}
    order = {r["run_id"]: i for i, r in enumerate(runs)}
    n = len(reqs["level"]) if reqs else 0
    level = np.asarray(reqs["level"], dtype=np.int64) if n else np.zeros(0, dtype=np.int64)
    bounds = np.searchsorted(level, np.arange(len(models) + 1))
    # NULL (unknown) values arrive masked: NaN
    col = {k: np.ma.filled(np.ma.asarray(reqs[k]).astype(float), np.nan) for k in ("e2e_ms", "ttft_ms", "tpot_ms")} \
        if n else {}
    okcol = np.asarray(reqs["ok"], dtype=bool) if n else np.zeros(0, dtype=bool)
    quality = {rid: (model_quality(rid, prefer, gate) if every_run or rid in inputs["scored"] else ({}, None))
               for rid in run_of}
    from core.catalog.models import display_names, presentable_name
    names = display_names()
    out = []
    for i, r in enumerate(models):      # ordered by (run_id, model, backend): the requests' level index
        run = run_of.get(r["run_id"])
        if run is None:
            continue
        s, e = int(bounds[i]), int(bounds[i + 1])
        ok = okcol[s:e]
        q_by_model, q_problem = quality[r["run_id"]]
        q = _quality_for(q_by_model, r["model"], r["backend"])
        raw_notes = r["notes"] if isinstance(r["notes"], list) else ([r["notes"]] if r["notes"] else [])
        notes = [f"benchmark: {x}" for x in raw_notes]
        if q_problem:
            notes.append(f"quality unavailable: {q_problem}")
        if q is not None and q.get("verified") is False:
            notes.append(f"quality unverified: {q.get('reason') or 'judge below the trust gate'}")
        if r.get("noisy"):
            notes.append("noisy: " + str((r.get("noise") or {}).get("reason") or "other programs used the machine"))
        energy = r.get("energy") or {}
        if r.get("energy_j_per_request") is not None and energy.get("estimate"):
            notes.append(f"energy: {energy.get('source')}")   # the source says "estimate: ..." and from what
        dev = run.get("device")
        out.append(Candidate(
            run_id=r["run_id"], model=r["model"], backend=r["backend"], concurrency=r["concurrency"],
            status=r["status"], error=r["error"], peak_rss_mb=r["peak_rss_mb"], disk_mb=r["disk_mb"],
            throughput_tok_s=r.get("throughput_tok_s"), license=r["license"], load_s=r["load_s"],
            environment=r["environment"],
            e2e_ms=col["e2e_ms"][s:e][ok] if n else [], ttft_ms=col["ttft_ms"][s:e][ok] if n else [],
            tpot_ms=col["tpot_ms"][s:e][ok] if n else [], requests_failed=int((~ok).sum()), quality=q, notes=notes,
            label=presentable_name(r["model"], r["backend"], label=r.get("label"), names=names),
            device=dev if dev and dev != "unknown" else device_of(run["environment"]) or dev,
            extra_metrics={"energy_j": r.get("energy_j_per_request")}))
    _add_length_figures(out, run_of)
    out.sort(key=lambda c: (order[c.run_id], c.model, c.backend))
    return out


def _add_length_figures(cands: list[Candidate], run_of: dict) -> None:
    """Time to notes and the context window of each candidate, from the newest length sweep of its model and
    engine on its device (core.store.lengths.newest_figures), with a note naming that sweep."""
    from core.store.lengths import newest_figures

    def key(c):
        return c.model, c.backend, run_of[c.run_id].get("device") or "unknown"
    figures = newest_figures(list({key(c) for c in cands}))
    for c in cands:
        f = figures.get(key(c))
        if f is None:
            continue
        c.extra_metrics.update(time_to_notes_ms=f["time_to_notes_ms"], context_window=f["context_window"],
                               ttft_at_target_ms=f["ttft_at_target_ms"],
                               target_prompt_tokens=f["target_prompt_tokens"])
        if f["time_to_notes_ms"] is not None:
            c.notes.append(f"time to notes: {f['target_prompt_tokens']:,}-token meeting, {f['target_output_tokens']} "
                           f"output tokens, from length sweep {f['run_id']}"
                           + (" (extrapolated beyond the longest prompt measured, "
                              f"{f['max_measured_tokens']:,} tokens)" if f["extrapolated"] else ""))


def newest(cands: list[Candidate], key) -> tuple[list[Candidate], dict]:
    """The newest candidate of each group (``key(c)``; cands oldest run first) and {kept id: older run ids}."""
    groups: dict = {}
    for c in cands:
        groups.setdefault(key(c), []).append(c)
    kept, older = [], {}
    for group in groups.values():
        kept.append(group[-1])
        if len(group) > 1:
            older[group[-1].id] = [c.run_id for c in group[:-1]]
    return kept, older


def load_candidates(run_ids, *, prefer: str = "human", gate=None, allow_mixed: bool = False,
                    warnings: list[str] | None = None, findings: list[str] | None = None) -> list[Candidate]:
    """One Candidate per model x engine (x device), at the lowest concurrency level.

    When several chosen runs measured the same model on the same engine and device, the newest run is used
    and the candidate says so. Runs that differ in settings are refused unless `allow_mixed`; the warnings
    (differences, newest-run choices) are appended to `warnings` when a list is given.
    ``gate`` (core.quality.calibration.Gate): when the judge is below it, quality resting on the judge
    is marked unverified (a flag with the reason, in the matrix, the record and the exports).
    """
    ids = parse_run_ids(run_ids)
    inputs = bench_store.candidate_inputs(ids)
    known = {r["run_id"] for r in inputs["runs"]}
    missing = [r for r in ids if r not in known]
    if missing:
        raise UserError(f"unknown run id {', '.join(missing)}")
    found = _comparable(inputs["runs"], allow_mixed) + _power_mismatch(inputs["runs"], allow_mixed)
    order = {r["run_id"]: i for i, r in enumerate(inputs["runs"])}
    all_cands = build_candidates(inputs, prefer=prefer, gate=gate, every_run=True)   # a few runs: ask about each
    out, older = newest(all_cands, lambda c: (c.model, c.backend, c.device))
    out.sort(key=lambda c: (order[c.run_id], c.model, c.backend))
    for c in out:
        if c.id in older:
            runs = older[c.id] + [c.run_id]
            found.append(f"{c.model} on {c.backend} was measured in runs {', '.join(runs)}: "
                         f"the newest ({c.run_id}) is used")
            c.notes.append(f"newest of runs {', '.join(runs)}: {c.run_id} used")
    # two candidates with one label (the same model on two devices, mixed on purpose): say which device
    seen: dict[str, int] = {}
    for c in out:
        seen[c.label] = seen.get(c.label, 0) + 1
    for c in out:
        if seen[c.label] > 1:
            c.label = f"{c.label} ({c.device or c.run_id})"
    if warnings is not None:
        warnings.extend(found)
    if findings is not None:
        findings.extend(quality_pairs(out, prefer=prefer, gate=gate))
        findings.extend(speed_pairs(out))
    return out


def quality_pairs(cands: list[Candidate], *, prefer: str = "human", gate=None) -> list[str]:
    """The paired quality verdicts of the candidates scored in one run (core.quality.paired: the best by
    quality against each other, on the same prompts): "A is better on quality than B: +0.31 (0.18 to 0.44)
    over 12 prompts", or "too close to call on quality"."""
    try:
        from core.quality.paired import run_paired
    except ImportError:
        return []
    by_run: dict[str, int] = {}
    for c in cands:
        if c.quality:
            by_run[c.run_id] = by_run.get(c.run_id, 0) + 1
    out = []
    for run_id, n in by_run.items():
        if n < 2:
            continue
        try:
            out += [p["sentence"] for p in run_paired(run_id, prefer=prefer, gate=gate) if p["verdict"] != "no_data"]
        except UserError:
            continue
    return out


def _power_mismatch(runs: list[dict], allow_mixed: bool) -> list[str]:
    """AC and battery runs are not compared unless mixing is allowed (core.bench.conditions.environment.power_mismatch)."""
    from core.bench.conditions.environment import power_mismatch
    line = power_mismatch([r.get("environment") or {} for r in runs])
    if not line:
        return []
    if not allow_mixed:
        raise UserError(line + ": their numbers are not comparable; choose comparable runs or allow mixing "
                               "(--allow-mixed)")
    return [line + ": mixed on purpose"]


def speed_pairs(cands: list[Candidate]) -> list[str]:
    """The paired comparison of every two candidates measured in one run (core.bench.conditions.paired.run_pairs, round
    by round): "A decodes 1.32x faster than B (1.25-1.40)", or "too close to call on speed"."""
    from core.bench.conditions.paired import run_pairs
    by_run: dict[str, set] = {}
    for c in cands:
        by_run.setdefault(c.run_id, set()).add((c.model, c.backend, c.concurrency))
    out = []
    for run_id, keys in by_run.items():
        if len(keys) < 2:
            continue
        for p in run_pairs(run_id):
            if {(p["a_model"], p["a_backend"], p["concurrency"]), (p["b_model"], p["b_backend"], p["concurrency"])} <= keys:
                out.append(p["sentence"])
    return out


def run_context(run_ids) -> dict:
    """What a decision record keeps about its runs: environment, prompt set and hash, rubric and judge template."""
    ids = parse_run_ids(run_ids)
    out = {}
    for r in bench_store.runs_by_id(ids):
        ctx = {
            "created_at": str(r["created_at"]) if r["created_at"] is not None else None,
            "status": r["status"],
            "prompt_set": r["prompt_set"],
            "prompt_set_hash": r["prompt_set_hash"],
            "settings": r["settings"],
            "environment": r["environment"],
            "rubrics": [],
            "judges": [],
        }
        try:
            from core.store import quality as qstore
            ctx["rubrics"] = list(qstore.rubrics_used(r["run_id"]))
            ctx["judges"] = [
                {k: j.get(k) for k in ("judge_run_id", "rubric", "judge_model", "judge_backend", "mode",
                                        "template_version", "status")}
                for j in qstore.judge_runs(r["run_id"])
            ]
        except (ImportError, AttributeError):
            pass
        out[r["run_id"]] = ctx
    return out
