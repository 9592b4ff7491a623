"""Candidates and their context, read from the store (benchmark runs) and the quality helper."""
from __future__ import annotations

import math

from core.decision.matrix import Candidate
from core.errors import UserError
from core.store import decisions as store


def _f(v):
    if v is None:
        return math.nan
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


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
    diffs = differences(store.runs(parse_run_ids(run_ids)))
    if not diffs:
        return []
    line = "runs differ in " + ", ".join(diffs)
    if not allow_mixed:
        raise UserError(line + ": their numbers are not comparable; choose comparable runs or allow mixing "
                               "(--allow-mixed)")
    return [line + ": mixed on purpose, numbers are not strictly comparable"]


def load_candidates(run_ids, *, prefer: str = "human", gate=None, allow_mixed: bool = False,
                    warnings: list[str] | None = None) -> list[Candidate]:
    """One Candidate per model x engine (x device), at the lowest concurrency level.

    When several chosen runs measured the same model on the same engine and device, the newest run is used
    and the candidate says so. Runs that differ in settings are refused unless `allow_mixed`; the warnings
    (differences, newest-run choices) are appended to `warnings` when a list is given.
    ``gate`` (core.quality.calibration.Gate): when the judge is below it, quality resting on the judge
    is marked unverified (a flag with the reason, in the matrix, the record and the exports).
    """
    ids = parse_run_ids(run_ids)
    run_rows = store.runs(ids)
    known = {r["run_id"] for r in run_rows}
    missing = [r for r in ids if r not in known]
    if missing:
        raise UserError(f"unknown run id {', '.join(missing)}")
    found = check_comparable(ids, allow_mixed=allow_mixed)
    order = {r["run_id"]: i for i, r in enumerate(run_rows)}  # oldest first
    device = {r["run_id"]: device_of(r["environment"]) for r in run_rows}
    rows = store.candidate_rows(ids)
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["model"], r["backend"], device[r["run_id"]]), []).append(r)
    chosen, superseded = [], {}
    for key, group in groups.items():
        group.sort(key=lambda r: order[r["run_id"]])
        chosen.append(group[-1])
        if len(group) > 1:
            older = [r["run_id"] for r in group[:-1]]
            superseded[(group[-1]["run_id"],) + key[:2]] = older
            found.append(f"{key[0]} on {key[1]} was measured in runs {', '.join(older + [group[-1]['run_id']])}: "
                         f"the newest ({group[-1]['run_id']}) is used")
    chosen.sort(key=lambda r: (order[r["run_id"]], r["model"], r["backend"]))
    used = {r["run_id"] for r in chosen}
    reqs: dict[tuple, list[dict]] = {}
    for q in store.measured_requests(sorted(used)):
        reqs.setdefault((q["run_id"], q["model"], q["backend"]), []).append(q)
    quality: dict[str, tuple[dict, str | None]] = {rid: model_quality(rid, prefer, gate) for rid in ids if rid in used}
    from core.catalog.models import display_names, presentable_name
    names = display_names()
    out = []
    for r in chosen:
        key = (r["run_id"], r["model"], r["backend"])
        ok = [q for q in reqs.get(key, []) if q["ok"]]
        q_by_model, q_problem = quality[r["run_id"]]
        # the quality helper labels a model "MODEL (BACKEND)" when it ran on two engines in one run
        q = q_by_model.get(f"{r['model']} ({r['backend']})") or q_by_model.get(r["model"])
        if q is not None and q.get("mean") is None:
            q = None
        notes = [f"benchmark: {n}" for n in (r["notes"] if isinstance(r["notes"], list) else [r["notes"]])]
        if q_problem:
            notes.append(f"quality unavailable: {q_problem}")
        if q is not None and q.get("verified") is False:
            notes.append(f"quality unverified: {q.get('reason') or 'judge below the trust gate'}")
        if key in superseded:
            notes.append(f"newest of runs {', '.join(superseded[key] + [r['run_id']])}: {r['run_id']} used")
        out.append(Candidate(
            run_id=r["run_id"], model=r["model"], backend=r["backend"], concurrency=r["concurrency"],
            status=r["status"], error=r["error"], peak_rss_mb=r["peak_rss_mb"], disk_mb=r["disk_mb"],
            throughput_tok_s=r.get("throughput_tok_s"),
            license=r["license"], load_s=r["load_s"], environment=r["environment"],
            e2e_ms=[_f(x["e2e_ms"]) for x in ok], ttft_ms=[_f(x["ttft_ms"]) for x in ok],
            tpot_ms=[_f(x["tpot_ms"]) for x in ok],
            requests_failed=len(reqs.get(key, [])) - len(ok), quality=q, notes=notes,
            label=presentable_name(r["model"], r["backend"], label=r.get("label"), names=names),
            device=device[r["run_id"]],
        ))
    # two candidates with one label (the same model on two devices, mixed on purpose): say which device
    seen: dict[str, int] = {}
    for c in out:
        seen[c.label] = seen.get(c.label, 0) + 1
    for c in out:
        if seen[c.label] > 1:
            c.label = f"{c.label} ({c.device or c.run_id})"
    if warnings is not None:
        warnings.extend(found)
    return out


def run_context(run_ids) -> dict:
    """What a decision record keeps about its runs: environment, prompt set and hash, rubric and judge template."""
    ids = parse_run_ids(run_ids)
    out = {}
    for r in store.runs(ids):
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
