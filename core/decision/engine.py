"""From candidates to a decision: `prepare` (weight-independent work, done once) and `evaluate` (per weights).

The page recomputes `evaluate` on every slider move; `prepare` holds the normalised matrix and the
bootstrap resamples (normalised too), so a new set of weights costs a few matrix products.
"""
from __future__ import annotations

import functools
import warnings
from dataclasses import asdict, dataclass, field, fields

import numpy as np

from core.decision import robustness
from core.decision.criteria import CRITERIA, INDEX, NAMES
from core.decision.licenses import commercial_problem, license_info
from core.decision.matrix import (
    LATENCY_METRICS,
    Candidate,
    Constraint,
    decode_tok_s,
    explanation,
    normalize,
    parse_constraints,
    parse_weights,
)
from core.errors import UserError
from core.stats import TAIL_MIN_SAMPLES


@dataclass
class Prepared:
    candidates: list[Candidate]
    latency_metric: str
    method: str
    constraints: list[Constraint]
    require_commercial: bool
    metrics: list[dict]
    licenses: list[dict]
    raw: np.ndarray          # C x K, NaN unknown (license column: fixed 0..1 score)
    norm: np.ndarray         # C x K in 0..1
    passes: np.ndarray       # C bools
    failed: list[list[str]]
    flags: list[list[str]]
    boot_norm: np.ndarray | None  # B x C x K
    warnings: list[str]       # what the user must know about the selection (mixed runs, newest run used)
    findings: list[str] = field(default_factory=list)   # paired speed comparisons measured round by round

    @property
    def ids(self) -> list[str]:
        return [c.id for c in self.candidates]


def raw_row(m: dict) -> list[float]:
    """The matrix row of one candidate: each criterion's metric, NaN where unknown."""
    return [np.nan if m.get(c.metric) is None else float(m[c.metric]) for c in CRITERIA]


def prepare(
    candidates: list[Candidate],
    *,
    latency_metric: str = "e2e_p95",
    constraints=(),
    require_commercial: bool = False,
    method: str = "minmax",
    n_boot: int = robustness.DEFAULT_BOOT,
    seed: int = 0,
    warnings: list[str] | tuple = (),
    findings: list[str] | tuple = (),
) -> Prepared:
    if latency_metric not in LATENCY_METRICS:
        raise UserError(f"unknown latency metric '{latency_metric}': expected one of {', '.join(LATENCY_METRICS)}")
    cons = parse_constraints(constraints)
    metrics, lics, raw, failed, flags = [], [], [], [], []
    for c in candidates:
        m = c.metrics(latency_metric)
        lic = license_info(c.license)
        m["license"], m["license_score"] = lic["id"], lic["score"]
        reasons, notes = [], list(c.notes)
        if c.status == "failed":
            reasons.append(f"benchmark failed: {c.error or 'no error recorded'}")
        elif c.requests_ok == 0:
            reasons.append("no successful requests")
        for con in cons:
            why = con.check(m, lic)
            if why:
                reasons.append(why)
        if require_commercial:
            why = commercial_problem(lic)
            if why:
                reasons.append(why)
        if lic["flag"]:
            notes.append(lic["flag"])
        elif lic["commercial_use"] == "conditional":
            notes.append(f"license {lic['id']}: commercial use with conditions")
        if c.status not in ("ok", "failed"):
            notes.append(f"benchmark {c.status}: numbers from the requests that finished")
        if m["quality"] is None:
            notes.append("quality unknown (not scored)")
        if m["quality"] is not None and (c.quality or {}).get("ci_low") is None:
            notes.append(f"quality from {(c.quality or {}).get('n', 0)} output(s): interval unknown, "
                         "not a certainty")
        if c.requests_ok == 1:
            notes.append("1 request: interval of latency and decode speed unknown")
        if 0 < c.requests_ok < TAIL_MIN_SAMPLES:
            notes.append(f"{c.requests_ok} requests: p95 is indicative only (fewer than {TAIL_MIN_SAMPLES})")
        if c.requests_failed:
            notes.append(f"{c.requests_failed} failed requests")
        metrics.append(m)
        lics.append(lic)
        raw.append(raw_row(m))
        failed.append(reasons)
        flags.append(notes)
    k = len(CRITERIA)
    raw_arr = np.asarray(raw, dtype=float).reshape(len(candidates), k)
    passes = np.asarray([not f for f in failed], dtype=bool)
    norm = normalize(raw_arr, passes, method)
    boot = _bootstrap(candidates, raw_arr, latency_metric, n_boot, seed) if n_boot > 1 and candidates else None
    boot_norm = normalize(boot, passes, method) if boot is not None else None
    return Prepared(candidates, latency_metric, method, cons, require_commercial, metrics, lics, raw_arr, norm,
                    passes, failed, flags, boot_norm, list(warnings), list(findings))


def _bootstrap(candidates, raw: np.ndarray, latency_metric: str, n_boot: int, seed: int) -> np.ndarray:
    """B x C x K raw values on resampled requests (latency, decode speed) and scores (quality).

    Memory, disk and license are single measurements: they do not vary. Quality varies as a normal draw
    with the spread of its own bootstrap 95% interval (the quality helper's), clipped to 0..1; time to notes
    likewise with its length sweep's band.
    """
    rng = np.random.default_rng(seed)
    out = np.broadcast_to(raw, (n_boot,) + raw.shape).copy()
    li, ti, qi, ni = INDEX["latency"], INDEX["decode_speed"], INDEX["quality"], INDEX["time_to_notes"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for j, c in enumerate(candidates):
            lat = c.e2e_ms if latency_metric == "e2e_p95" else c.ttft_ms
            lat = lat[np.isfinite(lat)]
            if lat.size > 1 and np.isfinite(raw[j, li]):
                out[:, j, li] = np.percentile(lat[rng.integers(0, lat.size, size=(n_boot, lat.size))], 95, axis=1)
            speed = decode_tok_s(c.tpot_ms)
            speed = speed[np.isfinite(speed)]
            if speed.size > 1 and np.isfinite(raw[j, ti]):
                out[:, j, ti] = speed[rng.integers(0, speed.size, size=(n_boot, speed.size))].mean(axis=1)
            q = c.quality or {}
            if np.isfinite(raw[j, qi]) and q.get("ci_low") is not None and q.get("ci_high") is not None:
                sd = max(float(q["ci_high"]) - float(q["ci_low"]), 0.0) / 3.92
                if sd > 0:
                    out[:, j, qi] = np.clip(raw[j, qi] + rng.normal(0.0, sd, n_boot), 0.0, 1.0)
            # time to notes: drawn from its own 95% band (the length sweep's), so overlapping bands tie
            lo, hi = (c.extra_metrics.get(k) for k in ("time_to_notes_low_ms", "time_to_notes_high_ms"))
            if np.isfinite(raw[j, ni]) and lo is not None and hi is not None and hi > lo:
                out[:, j, ni] = np.maximum(raw[j, ni] + rng.normal(0.0, (float(hi) - float(lo)) / 3.92, n_boot), 0.0)
    return out


def weight_vector(weights) -> np.ndarray:
    """Weights (a "name=value,..." string, a dict, a preset name or an array) as a K-vector summing to 1."""
    if isinstance(weights, np.ndarray):
        weights = {c: float(v) for c, v in zip(NAMES, weights)}
    w = parse_weights(weights)
    return np.asarray([w[c] for c in NAMES], dtype=float)


def pareto_front(latency: np.ndarray, quality: np.ndarray) -> np.ndarray:
    """True for the rows no other row beats on both (lower latency, higher quality); unknown -> False."""
    lat, q = np.asarray(latency, float), np.asarray(quality, float)
    ok = np.isfinite(lat) & np.isfinite(q)
    out = np.zeros(lat.size, dtype=bool)
    for i in np.flatnonzero(ok):
        dom = ok & (lat <= lat[i]) & (q >= q[i]) & ((lat < lat[i]) | (q > q[i]))
        out[i] = not dom.any()
    return out


@dataclass
class CandidateResult:
    """One candidate of a decision: its values per criterion (by criterion key), rank, failures and flags."""

    candidate: str                      # the id: "model | backend | run"
    label: str
    device: str | None
    model: str
    backend: str
    run_id: str
    concurrency: int | None
    criteria: dict                      # criterion key -> measured value (None: unknown; the license id)
    normalized: dict                    # criterion key -> 0..1 (1 best)
    contributions: dict                 # criterion key -> weight x normalised value
    score: float
    rank: int | None                    # None: not ranked (see failed_constraints)
    tie_with: list[str]
    win_probability: float
    passes: bool
    failed_constraints: list[str]
    flags: list[str]
    license_info: dict
    quality_detail: dict | None
    metrics: dict
    requests_ok: int
    requests_failed: int
    pareto: bool
    status: str
    environment: dict | None
    # a fleet decision only: each device's values, which device gave each aggregated value, and per constraint
    devices: dict | None = None
    decided_by: dict | None = None
    constraint_devices: dict | None = None


@dataclass
class Robustness:
    samples: int
    concentration: float
    bootstrap: int
    tie_level: float
    flip_details: dict = field(default_factory=dict)   # criterion -> {"value","direction","new_winner"} or None


@dataclass
class Decision:
    """What `evaluate` returns: a typed record, read as fields. `to_dict()` (`doc`, computed once) is the
    `decide --json` document that a saved record holds and the writers read (`as_document`)."""

    winner: str | None
    winner_label: str | None
    candidates: list[CandidateResult]
    warnings: list[str]
    weights: dict[str, float]           # in use (the quality weight may have been left out)
    weights_asked: dict[str, float]
    latency_metric: str
    normalization: str
    constraints: list[str]
    require_commercial: bool
    explanation: str
    robustness: Robustness
    devices: list[str] | None = None    # a fleet decision: its target devices and aggregation
    aggregation: dict | None = None
    findings: list[str] = field(default_factory=list)   # "A decodes 1.32x faster than B (1.25-1.40)"

    @property
    def ranks(self) -> dict[str, int]:
        return {c.candidate: c.rank for c in self.candidates if c.rank is not None}

    @property
    def flags(self) -> dict[str, list[str]]:
        return {c.candidate: list(c.flags) for c in self.candidates if c.flags}

    def to_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["candidates"] = [_candidate_dict(c) for c in self.candidates]
        rob = asdict(self.robustness)
        flips = rob.pop("flip_details")
        out["robustness"] = rob
        out["flip_details"] = flips
        out["flip_points"] = {k: (None if v is None else v["value"]) for k, v in flips.items()}
        if self.devices is None:
            del out["devices"], out["aggregation"]
        return out

    @functools.cached_property
    def doc(self) -> dict:
        return self.to_dict()


def as_document(result: Decision | dict) -> dict:
    """A decision's `--json` document: a Decision's, or a saved record's dict as it is (what writers read)."""
    return result.to_dict() if isinstance(result, Decision) else result


_FLEET_FIELDS = ("devices", "decided_by", "constraint_devices")


def _candidate_dict(c: CandidateResult) -> dict:
    d = {f.name: getattr(c, f.name) for f in fields(c)}
    for k in _FLEET_FIELDS:
        if d[k] is None:
            del d[k]
    return d


def evaluate(prep: Prepared, weights, *, n_samples: int = robustness.DEFAULT_SAMPLES,
             concentration: float = robustness.DEFAULT_CONCENTRATION, seed: int = 0) -> Decision:
    """The decision for one set of weights (its `to_dict()` is the `--json` shape of `python -m core decide`)."""
    w_asked = weight_vector(weights)
    w = w_asked.copy()
    ids = prep.ids
    n = len(ids)
    k = len(CRITERIA)
    warnings_out = list(prep.warnings)
    # quality never counts as 0: a weighted quality without data makes that candidate not comparable;
    # when no candidate has quality data at all, the quality weight carries no information and is left out
    qi = INDEX["quality"]
    no_quality = ~np.isfinite(prep.raw[:, qi]) if n else np.zeros(0, dtype=bool)
    comparable = prep.passes.copy()
    not_comparable = [[] for _ in range(n)]
    if n and w[qi] > 0 and no_quality.all():
        warnings_out.append(f"no candidate has quality data: the quality weight ({100 * w[qi]:.0f}%) is left out "
                            "and the other weights rescaled")
        w[qi] = 0.0
        w = w / w.sum() if w.sum() > 0 else w
    elif n and w[qi] > 0:
        for i in np.flatnonzero(no_quality & prep.passes):
            comparable[i] = False
            not_comparable[i].append("not comparable on quality: no quality data (score it or set the quality "
                                     "weight to 0)")
    scores = prep.norm @ w if n else np.zeros(0)
    contrib = prep.norm * w if n else np.zeros((0, k))
    passing = np.flatnonzero(comparable)
    # rank passing candidates by score (ties in the point score broken by id, for a stable order)
    order = sorted(passing, key=lambda i: (-scores[i], ids[i]))
    rank = {int(i): r + 1 for r, i in enumerate(order)}
    winner = ids[order[0]] if order else None

    rng = np.random.default_rng(seed)
    winp = np.zeros(n)
    if len(passing):
        # each model's quality drawn from its interval, with the weights
        qs = (qi, prep.boot_norm[:, passing, qi]) if prep.boot_norm is not None else None
        winp[passing] = robustness.win_probability(prep.norm[passing], w, n=n_samples,
                                                   concentration=concentration, rng=rng, column_samples=qs)
    flips = {c: None for c in NAMES}
    if len(order) >= 2:
        sub = np.asarray(order)
        flips = robustness.flip_points(prep.norm[sub], w, NAMES, [ids[i] for i in sub])

    ties = np.zeros((n, n), dtype=bool)
    if len(passing) >= 2:
        boot_scores = prep.boot_norm[:, passing, :] @ w if prep.boot_norm is not None else None
        ties[np.ix_(passing, passing)] = robustness.tie_matrix(boot_scores, scores[passing])
    pareto = pareto_front(prep.raw[:, INDEX["latency"]], prep.raw[:, qi])

    rows = []
    for i, c in enumerate(prep.candidates):
        m, lic = prep.metrics[i], prep.licenses[i]
        criteria = {}
        for j, crit in enumerate(CRITERIA):
            if crit.shown:
                criteria[crit.key] = m.get(crit.shown)
            else:
                criteria[crit.key] = None if not np.isfinite(prep.raw[i, j]) else float(prep.raw[i, j])
        rows.append(CandidateResult(
            candidate=ids[i], label=c.name, device=c.device, model=c.model, backend=c.backend, run_id=c.run_id,
            concurrency=c.concurrency, criteria=criteria,
            normalized={crit.key: float(prep.norm[i, j]) for j, crit in enumerate(CRITERIA)},
            contributions={crit.key: float(contrib[i, j]) for j, crit in enumerate(CRITERIA)},
            score=float(scores[i]), rank=rank.get(i), tie_with=[ids[t] for t in np.flatnonzero(ties[i])],
            win_probability=float(winp[i]), passes=bool(comparable[i]),
            failed_constraints=list(prep.failed[i]) + not_comparable[i], flags=list(prep.flags[i]),
            license_info={x: lic[x] for x in ("id", "raw", "known", "name", "commercial_use", "attribution",
                                              "restrictions", "flag")},
            quality_detail=dict(c.quality) if c.quality else None, metrics=m, requests_ok=c.requests_ok,
            requests_failed=c.requests_failed, pareto=bool(pareto[i]), status=c.status, environment=c.environment))
    rows.sort(key=lambda r: (r.rank is None, r.rank or 0, -r.score, r.candidate))
    return Decision(
        winner=winner, winner_label=next((r.label for r in rows if r.candidate == winner), None),
        candidates=rows, warnings=warnings_out, findings=list(prep.findings),
        weights={name: float(w[j]) for j, name in enumerate(NAMES)},
        weights_asked={name: float(w_asked[j]) for j, name in enumerate(NAMES)},
        latency_metric=prep.latency_metric, normalization=prep.method,
        constraints=[con.text for con in prep.constraints], require_commercial=prep.require_commercial,
        explanation=explanation(prep.method),
        robustness=Robustness(samples=n_samples, concentration=concentration,
                              bootstrap=0 if prep.boot_norm is None else int(prep.boot_norm.shape[0]),
                              tie_level=robustness.TIE_LEVEL, flip_details=flips))


def decide(candidates: list[Candidate], weights, *, latency_metric: str = "e2e_p95", constraints=(),
           require_commercial: bool = False, method: str = "minmax", n_samples: int = robustness.DEFAULT_SAMPLES,
           n_boot: int = robustness.DEFAULT_BOOT, seed: int = 0, warnings=()) -> Decision:
    prep = prepare(candidates, latency_metric=latency_metric, constraints=constraints,
                   require_commercial=require_commercial, method=method, n_boot=n_boot, seed=seed,
                   warnings=warnings)
    return evaluate(prep, weights, n_samples=n_samples, seed=seed)
