"""The report view of a decision: every value formatted once, for every writer.

`build(result)` takes a decision (an `engine.Decision`, or its dict as a saved record holds it) and gives
the texts people read: the verdict and summary sentences, each candidate's rank, status, score, win
probability and one cell per criterion (from the criterion table: heading, unit, formatter, "unknown",
the "unverified" mark on quality), the weights and the flip points. The writers (Markdown, HTML, CSV, the
page tables, the Present page, the terminal) only lay these texts out; none formats a value itself.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from core.decision.criteria import CRITERIA, UNKNOWN, Criterion
from core.decision.engine import as_document

LATENCY_LABEL = {"e2e_p95": "E2E p95", "ttft_p95": "TTFT p95"}
UNVERIFIED = "unverified"
NOT_RANKED = "not ranked"

CLEAR, LIKELY, CLOSE = "Clear winner", "Likely", "Too close to call"
LIKELY_AT, CLEAR_AT = 0.6, 0.9    # win probability from which a winner is "likely" / "clear" (no tie)
FLIP_RANGE = 0.2                   # flip points further than 20 points from the chosen weight are not told


def pct(v) -> str:
    return UNKNOWN if v is None else f"{100 * v:.0f}%"


def name_of(row) -> str:
    """What people read for a candidate: its display name and engine (the id in older records)."""
    return row.get("label") or row["candidate"]


def names(res, ids) -> str:
    by_id = {r["candidate"]: name_of(r) for r in res.get("candidates", [])}
    return ", ".join(by_id.get(i, i) for i in ids)


def heading(c: Criterion, latency_metric: str | None) -> str:
    """The column heading of a criterion; latency names the p95 in use."""
    if c.name == "latency" and latency_metric in LATENCY_LABEL:
        return f"{c.title}, {LATENCY_LABEL[latency_metric]} ({c.unit})"
    return c.heading


def quality_status(row) -> str:
    """"unverified" when the quality rests on a judge below the trust gate, "verified", or UNKNOWN."""
    q = row.get("quality_detail") or {}
    if not q:
        return UNKNOWN
    return UNVERIFIED if q.get("verified") is False else "verified"


def status_text(row, res=None) -> str:
    if not row["passes"]:
        return "not ranked: " + "; ".join(row["failed_constraints"])
    ties = names(res, row["tie_with"]) if res else ", ".join(row["tie_with"])
    return f"rank {row['rank']}" + (f" (too close to call with {ties})" if row["tie_with"] else "")


def certainty(result) -> str | None:
    """One word for how sure the recommendation is: Clear winner, Likely, Too close to call (None: no winner)."""
    rows = result.get("candidates", [])
    top = next((r for r in rows if r["candidate"] == result.get("winner")), None)
    if top is None:
        return None
    if not [r for r in rows if r["passes"] and r is not top]:
        return CLEAR
    if top["tie_with"] or top["win_probability"] < LIKELY_AT:
        return CLOSE
    return CLEAR if top["win_probability"] >= CLEAR_AT else LIKELY


def quality_trust(result) -> str | None:
    """A sentence when quality weighs in the decision but no candidate's quality is verified (by people or a
    rater that passed the trust gate): that it is not yet trusted, what it rests on, and what to score."""
    w = (result.get("weights") or {}).get("quality") or 0.0
    rows = [r for r in result.get("candidates", []) if r.get("quality_detail") and r.get("passes", True)]
    if w <= 0 or not rows or any(quality_status(r) != UNVERIFIED for r in rows):
        return None
    q = rows[0]["quality_detail"]
    rater = q.get("rater") or "a rater"
    todo = q.get("to_verify") or "score outputs by hand (Score by hand) to check the rater against people"
    return (f"Quality ({pct(w)} of the weight) is not yet trusted: it rests on {rater}, not verified against "
            f"people; to change that, {todo}.")


def verdict(result) -> str:
    """How sure, in one plain sentence with one consistent word (see `certainty`); when quality weighs in but
    nothing verifies it, the sentence that says so follows (see `quality_trust`)."""
    base = _verdict(result)
    trust = quality_trust(result) if result.get("winner") is not None else None
    return f"{base} {trust}" if trust else base


def _verdict(result) -> str:
    rows = result.get("candidates", [])
    word = certainty(result)
    if word is None:
        return "No recommendation: no candidate meets the constraints."
    top = next(r for r in rows if r["candidate"] == result["winner"])
    others = [r for r in rows if r["passes"] and r is not top]
    if not others:
        return f"{CLEAR}: {name_of(top)}, the only candidate that meets the constraints."
    runner = others[0]
    p = pct(top["win_probability"])
    if word == CLOSE and top["tie_with"]:
        return (f"{CLOSE}: {name_of(top)} and {names(result, top['tie_with'])} are within measurement noise of "
                f"each other; {name_of(top)} is ahead only on these numbers and weights.")
    if word == CLOSE:
        return (f"{CLOSE}: {name_of(top)} leads on the chosen weights, but comes first in only {p} of plausible "
                f"weightings ({name_of(runner)} is next).")
    if word == CLEAR:
        return (f"{CLEAR}: {name_of(top)}, ahead of {name_of(runner)} beyond measurement noise and first in {p} "
                "of plausible weightings.")
    return (f"{LIKELY}: {name_of(top)}, ahead of {name_of(runner)} beyond measurement noise and first in {p} of "
            "plausible weightings; the weights matter.")


def summary_lines(res, *, with_warnings: bool = True) -> list[str]:
    """Plain sentences about the outcome: the verdict, the nearby flip points, what cannot win, the warnings."""
    res = as_document(res)
    rows = res["candidates"]
    out = [verdict(res)]
    if res["winner"] is not None:
        near = {k: v for k, v in (res.get("flip_details") or {}).items()
                if v and abs(v["value"] - res["weights"][k]) <= FLIP_RANGE}
        for name, f in near.items():
            out.append(f"If the {name} weight went {'up' if f['direction'] == 'up' else 'down'} from "
                       f"{pct(res['weights'][name])} to {pct(f['value'])}, {names(res, [f['new_winner']])} would "
                       "come first.")
        if not near:
            out.append(f"No single weight moved by up to {100 * FLIP_RANGE:.0f} points changes the recommendation.")
    failing = [r for r in rows if not r["passes"]]
    for r in failing[:5]:
        out.append(f"Not ranked: {name_of(r)}: {'; '.join(r['failed_constraints'])}.")
    if len(failing) > 5:
        out.append(f"{len(failing) - 5} more candidate(s) are not ranked: see the reasons in the table.")
    out += list(res.get("findings") or [])
    if with_warnings:
        out += [f"Warning: {w}" for w in res.get("warnings", [])]
    return out


@dataclass
class Cell:
    criterion: Criterion
    value: str               # the measured value as read ("unknown" when not measured), with "(unverified)"
    norm: str                # the normalised 0..1 value, two decimals
    raw: object              # the value itself (None: unknown), for CSV and JSON
    unverified: bool = False


@dataclass
class Row:
    id: str
    name: str
    rank: str                # "1", or "not ranked"
    status: str
    score: str
    win: str
    passes: bool
    winner: bool
    cells: list[Cell]
    flags: list[str]
    failed: str
    ties: str
    quality_status: str
    source: dict = field(repr=False, default_factory=dict)

    def cell(self, name: str) -> Cell:
        return next(c for c in self.cells if c.criterion.name == name)


@dataclass
class Flip:
    criterion: str
    now: str
    at: str                  # "never" when no weight change flips the top choice
    direction: str
    new_winner: str


@dataclass
class ReportView:
    latency_metric: str
    latency_label: str
    headings: list[str]      # one per criterion, in table order
    rows: list[Row]
    weights: list[tuple[str, str]]
    flips: list[Flip]
    summary: list[str]
    verdict: str
    winner: str | None
    winner_label: str | None
    constraints: str         # "none" when there are none
    commercial: bool
    explanation: str
    warnings: list[str]

    def row(self, candidate_id: str) -> Row:
        return next(r for r in self.rows if r.id == candidate_id)


def _cells(r, latency_metric) -> list[Cell]:
    out = []
    qs = quality_status(r)
    for c in CRITERIA:
        raw = (r.get("criteria") or {}).get(c.key)
        unverified = c.name == "quality" and raw is not None and qs == UNVERIFIED
        text = c.fmt(raw) + (f" ({UNVERIFIED})" if unverified else "")
        norm = (r.get("normalized") or {}).get(c.key)
        out.append(Cell(c, text, UNKNOWN if norm is None else f"{norm:.2f}", raw, unverified))
    return out


def build(result) -> ReportView:
    """The view of a decision (a Decision or its dict)."""
    res = as_document(result)
    lm = res.get("latency_metric") or "e2e_p95"
    rows = []
    for r in res.get("candidates", []):
        rows.append(Row(
            id=r["candidate"], name=name_of(r), rank=NOT_RANKED if r.get("rank") is None else str(r["rank"]),
            status=status_text(r, res), score=f"{r['score']:.3f}", win=pct(r.get("win_probability")),
            passes=bool(r["passes"]), winner=r["candidate"] == res.get("winner"), cells=_cells(r, lm),
            flags=list(r.get("flags") or []), failed="; ".join(r.get("failed_constraints") or []),
            ties=names(res, r.get("tie_with") or []), quality_status=quality_status(r), source=r))
    flips = []
    for c in CRITERIA:
        f = (res.get("flip_details") or {}).get(c.name)
        flips.append(Flip(c.name, pct((res.get("weights") or {}).get(c.name)), pct(f["value"]) if f else "never",
                          f["direction"] if f else "", names(res, [f["new_winner"]]) if f else ""))
    return ReportView(
        latency_metric=lm, latency_label=LATENCY_LABEL.get(lm, lm), headings=[heading(c, lm) for c in CRITERIA],
        rows=rows, weights=[(c.name, pct((res.get("weights") or {}).get(c.name))) for c in CRITERIA], flips=flips,
        summary=summary_lines(res), verdict=verdict(res), winner=res.get("winner"),
        winner_label=res.get("winner_label") or res.get("winner"),
        constraints=", ".join(res.get("constraints") or []) or "none", commercial=bool(res.get("require_commercial")),
        explanation=res.get("explanation") or "", warnings=list(res.get("warnings") or []))


TOKENS_PER_MINUTE = 170   # a meeting transcript: about 4,000-6,000 tokens for 30 minutes of talk


def _seconds(ms: float) -> str:
    s = ms / 1000
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min"


def wait_sentence(candidate: dict) -> str | None:
    """How long a user waits for the notes of the target meeting, in words, from the length sweep's fit:
    "First words after 9 s, whole notes after 21 s for a 6,000-token meeting (about 35 minutes of talk)."
    None when the candidate has no length sweep."""
    m = candidate.get("metrics") or {}
    total, first, n = m.get("time_to_notes_ms"), m.get("ttft_at_target_ms"), m.get("target_prompt_tokens")
    if total is None or n is None:
        return None
    head = f"First words after {_seconds(first)}, whole" if first is not None else "Whole"
    return (f"{head} notes after {_seconds(total)} for a {int(n):,}-token meeting "
            f"(about {max(1, round(n / TOKENS_PER_MINUTE))} minutes of talk).")
