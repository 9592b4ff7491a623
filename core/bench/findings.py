"""A run's findings, the lines a reader needs first: who is fastest by each measure (with the paired ratio
and its interval where the run has one), what failed and why, which levels were noisy.

Lines of text for the Benchmark page (above its tables) and the CLI; the detail stays in the tables and
the expanders. ``esc`` is the escaping of the place the lines go (``core.output.md_text`` for the page):
model names and error messages are untrusted text.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Callable

# (result key, statistic, what the measure is called, unit, higher is better, pair metric, pair verb)
MEASURES = (
    ("ttft_ms", "p50", "first token (TTFT p50)", "ms", False, "ttft_ms", "reaches its first token"),
    ("decode_tokens_per_s", "p50", "decode (p50)", "tok/s per request", True, "decode_tok_s", "decodes"),
    ("e2e_ms", "p50", "whole answer (E2E p50)", "ms", False, "e2e_ms", "finishes its answer"),
    ("peak_rss_mb", None, "least memory (peak RSS)", "MB", False, None, None),
)

# the same measures, as one model's line names them
SHORT = (("ttft_ms", "p50", "TTFT p50", "ms"), ("decode_tokens_per_s", "p50", "decode p50", "tok/s per request"),
         ("e2e_ms", "p50", "E2E p50", "ms"), ("peak_rss_mb", None, "peak RSS", "MB"))


@dataclass(frozen=True)
class Finding:
    kind: str     # "best", "failed", "noisy", "note"
    text: str


def _value(result: dict, key: str, stat: str | None):
    v = result.get(key)
    if stat is not None:
        v = (v or {}).get(stat) if isinstance(v, dict) else None
    return v if isinstance(v, (int, float)) and v == v else None


def _num(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.1f}"


def _pair_ratio(pairs: list[dict], level: int, best: tuple, other: tuple, metric: str,
                higher_is_better: bool) -> tuple[float, float | None, float | None] | None:
    """How many times better `best` is than `other` on a paired metric (>1 = better), with its interval."""
    for p in pairs:
        if p.get("concurrency") != level:
            continue
        a, b = (p["a_model"], p["a_backend"]), (p["b_model"], p["b_backend"])
        if {a, b} != {best, other}:
            continue
        m = p.get(metric) or {}
        if m.get("ratio") is None:
            return None
        r, lo, hi = m["ratio"], m.get("ci_low"), m.get("ci_high")
        if a != best:           # the pair is other over best: invert
            r, lo, hi = 1 / r, (1 / hi if hi else None), (1 / lo if lo else None)
        if not higher_is_better:  # a time: best/other < 1 means best is quicker; say "x times quicker"
            r, lo, hi = 1 / r, (1 / hi if hi else None), (1 / lo if lo else None)
        return r, lo, hi
    return None


def best_lines(results: list[dict], pairs: list[dict], names: dict[tuple, str],
               esc: Callable[[str], str]) -> list[str]:
    """Per concurrency level with at least one model: the best by each measure, and by how much (paired)."""
    out = []
    levels = sorted({int(r["concurrency"]) for r in results})
    for level in levels:
        rows = [r for r in results if int(r["concurrency"]) == level and (r.get("requests_ok") or 0) > 0]
        if not rows:
            continue
        where = f" at concurrency {level}" if len(levels) > 1 else ""
        if len(rows) == 1:          # one model: its figures in one line, nothing to rank
            r = rows[0]
            figures = [f"{short} {_num(v)} {unit}" for key, stat, short, unit in SHORT
                       if (v := _value(r, key, stat)) is not None]
            out.append(f"{esc(names.get((r['model'], r['backend']), r['model']))}{where}: "
                       + (", ".join(figures) or "no figure measured") + " (one model: add another to compare)")
            continue
        for key, stat, what, unit, higher, metric, verb in MEASURES:
            have = [(r, _value(r, key, stat)) for r in rows]
            have = [(r, v) for r, v in have if v is not None]
            if not have:
                continue
            best, bv = (max if higher else min)(have, key=lambda x: x[1])
            bkey = (best["model"], best["backend"])
            name = esc(names.get(bkey, best["model"]))
            if len(have) == 1:
                out.append(f"{what[:1].upper() + what[1:]}{where}: {name}, {_num(bv)} {unit} (the only model "
                           "measured)")
                continue
            title = what[:1].upper() + what[1:] if key == "peak_rss_mb" else f"Fastest {what}"
            head = f"{title}{where}: {name}, {_num(bv)} {unit}"
            others = []
            for r, v in have:
                okey = (r["model"], r["backend"])
                if okey == bkey:
                    continue
                oname = esc(names.get(okey, r["model"]))
                paired = _pair_ratio(pairs, level, bkey, okey, metric, higher) if metric else None
                if paired is not None:
                    ratio, lo, hi = paired
                    ci = (f"{lo:.2f}-{hi:.2f}" if lo is not None and hi is not None else "no interval: one round")
                    close = lo is not None and hi is not None and lo <= 1.0 <= hi
                    others.append(f"{verb} {ratio:.2f}x {'faster' if verb == 'decodes' else 'sooner'} than {oname} "
                                  f"({ci}, paired by round)" + ("; too close to call" if close else ""))
                else:
                    others.append(f"{oname} {_num(v)} {unit}")
            out.append(head + ("; " + "; ".join(others) if others else ""))
    return out


def failure_lines(results: list[dict], requests, names: dict[tuple, str], esc: Callable[[str], str]) -> list[str]:
    """One line per level with failed requests or an error: how many, and the reasons counted."""
    out = []
    reqs = requests if requests is not None and len(requests) else None
    for r in results:
        failed = int(r.get("requests_failed") or 0)
        if not failed and not r.get("error"):
            continue
        key = (r["model"], r["backend"])
        head = f"{esc(names.get(key, r['model']))} [{esc(str(r['backend']))}] at concurrency {r['concurrency']}: "
        reasons = Counter()
        if reqs is not None:
            mine = reqs[(reqs["model"] == r["model"]) & (reqs["backend"] == r["backend"])
                        & (reqs["concurrency"] == r["concurrency"]) & ~reqs["ok"].astype(bool)]
            if "warmup" in mine:
                mine = mine[~mine["warmup"].astype(bool)]
            reasons.update(str(e).splitlines()[0][:160] if e else "no error message" for e in mine["error"])
        why = "; ".join(f"{esc(e)} (x{n})" if n > 1 else esc(e) for e, n in reasons.most_common(3))
        total = failed + int(r.get("requests_ok") or 0)
        if failed:
            out.append(head + f"{failed} of {total} requests failed" + (f": {why}" if why else ""))
        else:
            out.append(head + f"did not run: {esc(str(r['error']))}")
    return out


def findings(results: list[dict], pairs: list[dict], requests, names: dict[tuple, str],
             esc: Callable[[str], str]) -> list[Finding]:
    """The run's findings in reading order: failures first (they change what the rest means), then the best
    by each measure, then the noisy levels."""
    from core.bench.conditions.lines import noisy_lines
    out = [Finding("failed", line) for line in failure_lines(results, requests, names, esc)]
    out += [Finding("best", line) for line in best_lines(results, pairs, names, esc)]
    named = [dict(r, model=names.get((r["model"], r["backend"]), r["model"])) for r in results]
    out += [Finding("noisy", "Noisy: " + line) for line in noisy_lines(named, esc)]
    if not any(f.kind == "best" for f in out):
        out.append(Finding("note", "No successful request: nothing to compare."))
    return out


def run_names(run: dict) -> dict[tuple, str]:
    """(model, backend) -> the name people read (the run's label for the model, else its id)."""
    return {(m["model"], m["backend"]): m.get("label") or m["model"] for m in (run or {}).get("models", [])}
