"""What a run says of the conditions it was measured in, as lines of text for the CLI, the page and the
report: the order it ran in, its noisy levels, its energy per level and its paired comparisons.

``esc`` is the escaping of the place the lines go (``core.output.md_text`` for Markdown and the page,
``term_text`` for a terminal): model names are untrusted text.
"""
from __future__ import annotations

from typing import Callable


def order_line(schedule: dict | None) -> str | None:
    if not schedule:
        return None
    kept = "models kept loaded between turns" if schedule.get("keep_loaded") else "one model loaded at a time"
    return f"Order: {schedule.get('order')} ({kept}; {schedule.get('reason')})"


def noisy_lines(results: list[dict], esc: Callable[[str], str]) -> list[str]:
    """One line per noisy level: "model [engine] at concurrency N: measured while other programs used ..."."""
    return [f"{esc(r['model'])} [{r['backend']}] at concurrency {r['concurrency']}: {(r.get('noise') or {}).get('reason')}"
            for r in results if r.get("noisy")]


def energy_lines(results: list[dict], esc: Callable[[str], str]) -> list[str]:
    out = []
    for r in results:
        e = r.get("energy") or {}
        if not e:
            continue
        head = f"{esc(r['model'])} [{r['backend']}] at concurrency {r['concurrency']}: "
        if e.get("joules") is None:
            out.append(head + f"no energy figure ({e.get('reason')})")
            continue
        per_req = "unknown J per request" if e.get("j_per_request") is None else f"{e['j_per_request']:.3g} J per request"
        per_tok = "unknown J per output token" if e.get("j_per_token") is None else f"{e['j_per_token']:.3g} J per output token"
        why = f"; {e['reason']}" if e.get("reason") else ""
        out.append(head + f"{per_req}, {per_tok} — {e.get('source')}{why}")
    return out


def pair_lines(pairs: list[dict], esc: Callable[[str], str]) -> list[str]:
    """The decode-speed sentence of each pair, and its TTFT and E2E ratios (A over B) with intervals."""
    def ci(m):
        return "no interval" if m["ci_low"] is None else f"{m['ci_low']:.2f}-{m['ci_high']:.2f}"

    out = []
    for p in pairs:
        t, e = p["ttft_ms"], p["e2e_ms"]
        ratios = "" if t["ratio"] is None else (f"; TTFT {esc(p['a'])} / {esc(p['b'])} {t['ratio']:.2f} ({ci(t)}), "
                                                f"E2E {e['ratio']:.2f} ({ci(e)}), over {t['rounds']} rounds")
        out.append(f"concurrency {p['concurrency']}: {esc(p['sentence'])}{ratios}")
    return out
