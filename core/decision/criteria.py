"""The table of criteria and of the measures a constraint may test: the one place a criterion is defined.

The matrix (raw values, direction, normalisation), the fleet decision (aggregation across devices), the
report view and its writers (table, Markdown, HTML, CSV, JSON, the Present page), the charts, the CLI help
and the Decision page's sliders all walk `CRITERIA`; none of them names a criterion itself.

Adding a criterion is one `Criterion` record here plus the metric it reads in `Candidate.metrics()` (or in
`Candidate.extra_metrics`, filled by the candidate builder): a candidate without that metric shows
"unknown" and scores 0 on it, never a made-up number. Adding a constraint on a number that is no criterion
(context window, time to notes, energy) is one `Measure` record in `CONSTRAINT_ONLY`.
"""
from __future__ import annotations

from dataclasses import dataclass

UNKNOWN = "unknown"     # the one word every writer shows for a value that was not measured

AGGREGATIONS = ("worst", "mean")


def _plain(v: float) -> str:
    return f"{v:.1f}" if abs(v) < 100 else f"{v:,.0f}"


def _two(v: float) -> str:
    return f"{v:.2f}"


@dataclass(frozen=True)
class Measure:
    """A number of a candidate that a constraint can test (``key<=X``), as `Candidate.metrics()` names it."""

    key: str                       # key in Candidate.metrics() and in the --json "metrics"
    higher_is_better: bool
    unit: str
    aliases: tuple[str, ...] = ()  # other names accepted in a constraint
    # across devices it is aggregated the way this criterion is (None: the measure is a criterion's own)
    aggregate_with: str | None = None


@dataclass(frozen=True)
class Criterion:
    """One column of the decision matrix."""

    name: str                      # the weight's name: --weights NAME=W, the slider, the preset keys
    key: str                       # key in the --json "criteria", "normalized" and "contributions"
    metric: str                    # what it reads from Candidate.metrics() (the raw value; None = unknown)
    higher_is_better: bool
    unit: str                      # "" for none
    title: str                     # column heading without the unit
    help: str = ""                 # one phrase for the CLI help and the page
    aggregate: bool = True         # False: the same on every device (the license), no aggregation choice
    fixed_scale: bool = False      # True: the raw value is already a 0..1 score (kept as is by normalisation)
    shown: str | None = None       # the metric shown instead of the raw value (the license id, not its score)
    decimals: str = "plain"        # how a value is written: "plain" (1 decimal, thousands grouped) or "two"

    @property
    def heading(self) -> str:
        """Column heading with the unit: "Peak memory (MB)"."""
        return f"{self.title} ({self.unit})" if self.unit else self.title

    @property
    def direction(self) -> str:
        return "higher is better" if self.higher_is_better else "lower is better"

    def fmt(self, v) -> str:
        """A measured value as people read it: the same text in every writer; UNKNOWN when not measured."""
        if v is None:
            return UNKNOWN
        if isinstance(v, str):
            return v
        try:
            f = float(v)
        except (TypeError, ValueError):
            return str(v)
        if f != f:  # NaN
            return UNKNOWN
        return (_two if self.decimals == "two" else _plain)(f)

    def measure(self) -> Measure:
        return Measure(self.metric, self.higher_is_better, self.unit, (self.name,) if self.name != self.metric else ())


# The speed criterion is DECODE SPEED (1/TPOT per request, mean; core.metrics "decode_tokens_per_s"), never
# aggregate throughput (tokens / window, "throughput_tok_s"): the decision ranks on decode speed and says so.
# Latency reads "latency_ms": the p95 the user chose (E2E or TTFT), set by the engine's `prepare`.
CRITERIA: tuple[Criterion, ...] = (
    Criterion("latency", "latency_ms", "latency_ms", False, "ms", "Latency",
              help="p95 latency (E2E or TTFT, as chosen)"),
    Criterion("decode_speed", "decode_tokens_per_s", "decode_tokens_per_s", True, "tok/s per request",
              "Decode speed", help="1/TPOT per request, mean; not aggregate throughput"),
    Criterion("memory", "peak_rss_mb", "peak_rss_mb", False, "MB", "Peak memory", help="peak resident memory"),
    Criterion("quality", "quality", "quality", True, "0..1", "Quality", help="mean quality score", decimals="two"),
    Criterion("disk", "disk_mb", "disk_mb", False, "MB", "Disk", help="model size on disk"),
    Criterion("license", "license", "license_score", True, "", "License",
              help="1 commercial use, 0.5 with conditions, 0 none or unknown", aggregate=False, fixed_scale=True,
              shown="license"),
    Criterion("time_to_notes", "time_to_notes_ms", "time_to_notes_ms", False, "ms", "Time to notes",
              help="TTFT + (out - 1) x TPOT at the target meeting length, from the length sweep's fitted curves"),
    Criterion("energy", "energy_j", "energy_j", False, "J per summary", "Energy",
              help="joules per request (RAPL, or an estimate from CPU time, labelled)"),
)
NAMES: tuple[str, ...] = tuple(c.name for c in CRITERIA)
BY_NAME: dict[str, Criterion] = {c.name: c for c in CRITERIA}
INDEX: dict[str, int] = {c.name: i for i, c in enumerate(CRITERIA)}


def get(name: str) -> Criterion:
    return BY_NAME[name]


# Numbers a constraint may test that are no criterion of their own. Across devices each is aggregated the
# way the criterion it belongs with is (the latency p95s and the load time with latency, aggregate
# throughput with decode speed).
CONSTRAINT_ONLY: tuple[Measure, ...] = (
    Measure("e2e_p95_ms", False, "ms", aggregate_with="latency"),
    Measure("ttft_p95_ms", False, "ms", aggregate_with="latency"),
    Measure("load_s", False, "s", aggregate_with="latency"),
    Measure("throughput_tok_s", True, "tok/s", aggregate_with="decode_speed"),
    # the smallest window among the devices: a model's window is its own, the same everywhere
    Measure("context_window", True, "tokens", aggregate_with="time_to_notes"),
)


def _measures() -> dict[str, Measure]:
    out = {c.metric: c.measure() for c in CRITERIA if not c.fixed_scale}
    out.update({m.key: m for m in CONSTRAINT_ONLY})
    return out


MEASURES: dict[str, Measure] = _measures()
# what a constraint may name -> the metric key it tests (a criterion's name, its key and its metric all work)
CONSTRAINT_FIELDS: dict[str, str] = {
    **{alias: m.key for m in MEASURES.values() for alias in (m.key, *m.aliases)},
    **{c.key: c.metric for c in CRITERIA if not c.fixed_scale},
    "memory_mb": "peak_rss_mb",
}


def aggregated_by(key: str) -> str | None:
    """The criterion whose across-devices aggregation applies to a metric key (None: not aggregated)."""
    m = MEASURES.get(key)
    if m is None:
        return None
    if m.aggregate_with:
        return m.aggregate_with
    return next((c.name for c in CRITERIA if c.metric == key and c.aggregate), None)


AGGREGATED: tuple[Criterion, ...] = tuple(c for c in CRITERIA if c.aggregate)


def help_text() -> str:
    """The criteria for the CLI help: "latency (ms, lower is better), ..."."""
    return ", ".join(f"{c.name} ({(c.unit + ', ') if c.unit else ''}{c.direction})" for c in CRITERIA)
