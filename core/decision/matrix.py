"""The weighted selection matrix: direction-aware normalisation, weights, hard constraints (the criteria
themselves, with direction and unit, are the table in core/decision/criteria.py).

Pure numpy, no I/O. A candidate is (run_id, model, backend) at the lowest concurrency level of that run.

Choices (shown to the user by `explanation()`):
- min-max: each criterion is rescaled over the candidates that pass the hard constraints (all candidates
  when none passes): best 1, worst 0, direction-aware; all equal -> 1 (a failing row worse than them -> 0).
  Failing rows are clipped to 0..1.
- rank: the candidate's rank among the same reference set, scaled to 0..1 (ties share the mean rank).
- license is on a fixed scale whatever the method: commercial use 1, with conditions 0.5, none or unknown 0.
- an unknown value (quality never scored, memory of a remote server, ...) normalises to 0 (the worst) and
  fails any constraint on it with the reason "<criterion> unknown". We never guess a number.
"""
from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass, field

import numpy as np

from core.decision.criteria import CONSTRAINT_FIELDS, CRITERIA, INDEX, NAMES
from core.errors import UserError
from core import stats

FIXED_COLS = tuple(j for j, c in enumerate(CRITERIA) if c.fixed_scale)
LATENCY_METRICS = ("e2e_p95", "ttft_p95")
METHODS = ("minmax", "rank")

# preset weights by criterion name; a criterion a preset does not name weighs 0 in it
PRESETS: dict[str, dict[str, float]] = {
    "balanced": {"latency": 0.25, "decode_speed": 0.15, "memory": 0.15, "quality": 0.25, "disk": 0.10, "license": 0.10},
    "latency first": {"latency": 0.50, "decode_speed": 0.20, "memory": 0.05, "quality": 0.15, "disk": 0.05, "license": 0.05},
    "quality first": {"latency": 0.15, "decode_speed": 0.05, "memory": 0.10, "quality": 0.55, "disk": 0.05, "license": 0.10},
    "smallest footprint": {"latency": 0.10, "decode_speed": 0.05, "memory": 0.40, "quality": 0.10, "disk": 0.30, "license": 0.05},
    # the team's job: notes of a whole meeting. Time to notes at the target meeting (the length sweep's fit) is
    # the latency that counts, and good notes count most.
    "meeting summariser": {"time_to_notes": 0.30, "quality": 0.40, "memory": 0.10, "disk": 0.05, "license": 0.10,
                           "decode_speed": 0.05},
}
_OPS = {
    "<=": lambda a, b: a <= b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    ">": lambda a, b: a > b,
    "==": lambda a, b: a == b,
    "=": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}
_CONSTRAINT_RE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=|==|!=|=|<|>)\s*(.+?)\s*$")
_LICENSE_IN_RE = re.compile(r"^\s*licen[cs]es?\s+in\s+(.+?)\s*$", re.IGNORECASE)


# ---------------------------------------------------------------- inputs

def decode_tok_s(tpot_ms) -> np.ndarray:
    """Decode speed (output tokens/s) = 1 / TPOT per request, with the benchmark's definition (core.metrics.per_s).

    NaN where unknown. The decode_speed criterion is the mean of these (the benchmark's decode_tokens_per_s mean).
    """
    from core.metrics import MS_PER_S

    arr = np.asarray(tpot_ms, dtype=float).ravel()
    ok = np.isfinite(arr) & (arr > 0)          # per_s: 1000 / v, unknown for a non-positive v (vectorised)
    out = np.full(arr.shape, np.nan)
    out[ok] = MS_PER_S / arr[ok]
    return out


@dataclass
class Candidate:
    """One row of the matrix: a model on an engine in one run, with its raw measurements."""

    run_id: str
    model: str
    backend: str
    concurrency: int | None = 1
    status: str = "ok"
    error: str | None = None
    peak_rss_mb: float | None = None
    throughput_tok_s: float | None = None   # aggregate throughput of the level (tokens / window): a constraint only
    disk_mb: float | None = None
    license: str | None = None
    load_s: float | None = None
    environment: dict | None = None
    # per successful, non-warm-up request (aligned arrays, NaN where unknown)
    e2e_ms: np.ndarray = field(default_factory=lambda: np.zeros(0))
    ttft_ms: np.ndarray = field(default_factory=lambda: np.zeros(0))
    tpot_ms: np.ndarray = field(default_factory=lambda: np.zeros(0))
    requests_failed: int = 0
    quality: dict | None = None  # {"mean","ci_low","ci_high","n","source"} on 0..1, or None
    notes: list[str] = field(default_factory=list)
    label: str | None = None     # for people: "display name · engine" (the id stays in `id`)
    device: str | None = None    # the machine measured (CPU model or host label), when known
    # metrics read by criteria or constraints beyond the benchmark's own (a length-sweep fit, energy): a key
    # missing here is unknown for this candidate
    extra_metrics: dict = field(default_factory=dict)

    def __post_init__(self):
        self.e2e_ms = np.asarray(self.e2e_ms, dtype=float)
        self.ttft_ms = np.asarray(self.ttft_ms, dtype=float)
        self.tpot_ms = np.asarray(self.tpot_ms, dtype=float)
        n = max(len(self.e2e_ms), len(self.ttft_ms), len(self.tpot_ms))
        for name in ("e2e_ms", "ttft_ms", "tpot_ms"):
            a = getattr(self, name)
            if len(a) != n:  # align: missing entries are unknown
                setattr(self, name, np.concatenate([a, np.full(n - len(a), np.nan)]))

    @property
    def id(self) -> str:
        return f"{self.model} | {self.backend} | {self.run_id}"

    @property
    def name(self) -> str:
        return self.label or self.id

    @property
    def requests_ok(self) -> int:
        return int(len(self.e2e_ms))

    def metrics(self, latency_metric: str = "e2e_p95") -> dict:
        """Point estimates of every number a criterion or a constraint can use (None = unknown).

        "latency_ms" is the p95 the decision ranks on (``latency_metric``)."""
        e2e = stats.summary(self.e2e_ms)
        ttft = stats.summary(self.ttft_ms)
        speed = stats.summary(decode_tok_s(self.tpot_ms))
        q = self.quality or {}
        out = {
            "e2e_p95_ms": e2e["p95"] if e2e else None,
            "ttft_p95_ms": ttft["p95"] if ttft else None,
            "decode_tokens_per_s": speed["mean"] if speed else None,
            "throughput_tok_s": _num(self.throughput_tok_s),
            "peak_rss_mb": _num(self.peak_rss_mb),
            "disk_mb": _num(self.disk_mb),
            "quality": _num(q.get("mean")),
            "load_s": _num(self.load_s),
        }
        out.update({k: _num(v) for k, v in self.extra_metrics.items()})
        out["latency_ms"] = out.get(f"{latency_metric}_ms")
        return out


def _num(v) -> float | None:
    if v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


# ---------------------------------------------------------------- weights and constraints

def preset(name: str) -> dict[str, float]:
    """A preset's weights over every criterion (the ones it does not name, time to notes and energy, get 0)."""
    return {c: 0.0 for c in NAMES} | PRESETS[name]


def parse_weights(spec: str | dict | None) -> dict[str, float]:
    """"latency=0.3,quality=0.4" (a subset is fine) -> weights for all criteria, summing to 1."""
    if spec is None or spec == "":
        return preset("balanced")
    if isinstance(spec, str):
        if spec.strip().lower() in PRESETS:
            return preset(spec.strip().lower())
        raw = {}
        for part in spec.split(","):
            if not part.strip():
                continue
            if "=" not in part:
                raise UserError(f"bad weight '{part.strip()}': expected NAME=NUMBER with NAME one of {', '.join(NAMES)}")
            name, value = (x.strip() for x in part.split("=", 1))
            raw[name.lower()] = value
    else:
        raw = dict(spec)
    out = {c: 0.0 for c in NAMES}
    for name, value in raw.items():
        if name in ("throughput", "throughput_tok_s"):
            raise UserError(f"weight '{name}': the decision ranks on decode speed (1/TPOT per request), not "
                            "aggregate throughput: use decode_speed=...")
        if name not in out:
            raise UserError(f"unknown weight '{name}': expected one of {', '.join(NAMES)}")
        try:
            v = float(value)
        except (TypeError, ValueError):
            raise UserError(f"weight {name}={value} is not a number") from None
        if not math.isfinite(v) or v < 0:
            raise UserError(f"weight {name}={value} must be a number >= 0")
        out[name] = v
    total = sum(out.values())
    if total <= 0:
        raise UserError("weights sum to 0: give at least one positive weight")
    return {c: v / total for c, v in out.items()}


@dataclass(frozen=True)
class Constraint:
    field: str          # metric key, or "license"
    op: str             # <=, >=, <, >, ==, !=, or "in" for licenses
    value: float | tuple
    text: str

    def check(self, metrics: dict, lic: dict) -> str | None:
        """None when satisfied, else the reason (one line)."""
        if self.field == "license":
            allowed = self.value
            if lic["id"] in allowed:
                return None
            shown = lic["raw"] or "unknown"
            return f"license {shown} not in allowed licenses ({', '.join(allowed)})"
        v = metrics.get(self.field)
        if v is None:
            return f"{self.field} unknown"
        if _OPS[self.op](v, self.value):
            return None
        return f"{self.field} {_fmt(v)} violates {self.text}"


def _fmt(v: float) -> str:
    return f"{v:.3g}" if abs(v) < 10 else f"{v:.0f}"


def parse_constraint(text: str) -> Constraint:
    """"peak_rss_mb<=2000", "e2e_p95_ms<=3000", "quality>=0.6", "disk_mb<=1000", "license in mit,apache-2.0"."""
    from core.decision.licenses import canonical_id

    m = _LICENSE_IN_RE.match(text)
    if m or re.match(r"^\s*licen[cs]es?\s*==?", text, re.IGNORECASE):
        items = (m.group(1) if m else text.split("=", 1)[1].lstrip("=")).split(",")
        ids = []
        for raw in items:
            if not raw.strip():
                continue
            lid = canonical_id(raw)
            if lid is None:
                raise UserError(f"unknown license '{raw.strip()}' in constraint '{text}': see data/licenses.json")
            ids.append(lid)
        if not ids:
            raise UserError(f"constraint '{text}' names no license")
        return Constraint("license", "in", tuple(dict.fromkeys(ids)), text.strip())
    m = _CONSTRAINT_RE.match(text)
    if not m:
        raise UserError(f"bad constraint '{text}': expected FIELD<=NUMBER (or >=, <, >), e.g. peak_rss_mb<=2000")
    name, op, value = m.group(1).lower(), m.group(2), m.group(3)
    if name not in CONSTRAINT_FIELDS:
        raise UserError(f"unknown constraint field '{name}': expected one of {', '.join(sorted(set(CONSTRAINT_FIELDS)))}")
    try:
        v = float(value)
    except ValueError:
        raise UserError(f"bad constraint '{text}': {value} is not a number") from None
    return Constraint(CONSTRAINT_FIELDS[name], op, v, text.strip())


def parse_constraints(texts) -> list[Constraint]:
    return [c if isinstance(c, Constraint) else parse_constraint(c) for c in (texts or [])]


# ---------------------------------------------------------------- normalisation

def normalize(raw: np.ndarray, ref: np.ndarray, method: str = "minmax") -> np.ndarray:
    """Direction-aware normalisation to 0..1 (1 best) of raw values (..., C, K) over reference rows `ref` (C,).

    NaN (unknown) -> 0. The license column is already a fixed 0..1 score and is kept as is.
    Leading dimensions (bootstrap samples) are normalised independently.
    """
    if method not in METHODS:
        raise UserError(f"unknown normalisation '{method}': expected one of {', '.join(METHODS)}")
    raw = np.asarray(raw, dtype=float)
    ref = np.asarray(ref, dtype=bool)
    if raw.shape[-2] == 0:
        return raw.copy()
    if not ref.any():
        ref = np.ones(raw.shape[-2], dtype=bool)
    sign = np.where([c.higher_is_better for c in CRITERIA], 1.0, -1.0)
    x = raw * sign  # higher is better everywhere now
    known = np.isfinite(x)
    r = x[..., ref, :]
    if method == "minmax":
        rr = np.where(np.isfinite(r), r, np.nan)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # an all-unknown criterion
            lo = np.nanmin(rr, axis=-2, keepdims=True)
            hi = np.nanmax(rr, axis=-2, keepdims=True)
            span = hi - lo
            # all reference values equal: 1 for them (and anything as good), 0 for anything worse
            out = np.where(span > 0, (x - lo) / np.where(span > 0, span, 1.0), np.where(x >= lo, 1.0, 0.0))
        out = np.where(np.isfinite(lo) & known, out, 0.0)
    else:
        rk = np.isfinite(r)
        m = rk.sum(axis=-2, keepdims=True)  # known reference values per criterion
        xe = x[..., :, None, :]  # (..., C, 1, K)
        re_ = r[..., None, :, :]  # (..., 1, R, K)
        valid = rk[..., None, :, :]
        worse = ((re_ < xe) & valid).sum(axis=-2)
        equal = ((re_ == xe) & valid).sum(axis=-2)
        in_ref = np.zeros(raw.shape[-2], dtype=bool)
        in_ref[ref] = True
        self_eq = (in_ref[:, None] & known).astype(float)  # a reference row equals itself once
        if raw.ndim > 2:
            self_eq = np.broadcast_to(self_eq, worse.shape)
        denom = (m - 1).astype(float)
        with np.errstate(all="ignore"):
            out = (worse + 0.5 * (equal - self_eq)) / np.where(denom > 0, denom, 1.0)
        out = np.where(denom > 0, out, np.where(worse + equal >= m, 1.0, 0.0))  # one reference value
        out = np.where(known & (m > 0), out, 0.0)
    out = np.clip(out, 0.0, 1.0)
    for j in FIXED_COLS:       # already a 0..1 score (the license): kept as is
        out[..., j] = np.where(np.isfinite(raw[..., j]), raw[..., j], 0.0)
    return out


def explanation(method: str = "minmax") -> str:
    """One sentence on how numbers become 0..1 scores (shown on the page and in reports)."""
    if method == "rank":
        how = ("Each criterion is replaced by the candidate's rank among the candidates that pass the constraints, "
               "scaled so the best is 1 and the worst 0 (ties share the mean rank)")
    else:
        how = ("Each criterion is rescaled between the worst and the best value among the candidates that pass the "
               "constraints, so the best gets 1 and the worst 0")
    lower = [c.title.lower() for c in CRITERIA if not c.higher_is_better and not c.fixed_scale]
    higher = [c.title.lower() + (f" ({c.help})" if c.name == "decode_speed" else "")
              for c in CRITERIA if c.higher_is_better and not c.fixed_scale]
    return (how + f" (lower is better for {', '.join(lower)}, higher for {', '.join(higher)}; license is "
            "1 for commercial use, 0.5 with conditions, 0 for none or unknown; an unknown value counts as 0, except quality: "
            "with quality weighted, a candidate without quality data is not ranked), and the score is the weighted "
            "sum, so it lies between 0 and 1.")
