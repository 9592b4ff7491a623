"""Charts of a length sweep (Altair specs; the page only draws them): TTFT and TPOT against prompt length with
the fitted curve and its bootstrap band, and memory against the context."""
from __future__ import annotations

import altair as alt
import pandas as pd


def _label(sw: dict) -> str:
    return f"{sw.get('label') or sw['model']} · {sw['backend']}"


def points_frame(sweeps: list[dict]) -> pd.DataFrame:
    rows = [dict(p, model=_label(sw)) for sw in sweeps for p in (sw.get("points") or [])]
    return pd.DataFrame(rows)


def curve_frame(sweeps: list[dict]) -> pd.DataFrame:
    rows = [dict(c, model=_label(sw)) for sw in sweeps for c in ((sw.get("fit") or {}).get("curve") or [])]
    return pd.DataFrame(rows)


def fit_chart(sweeps: list[dict], metric: str = "ttft_ms", title: str = "TTFT (ms)") -> alt.Chart | None:
    """Measured requests (points), the fitted a + b n + c n^2 (line) and its 95% bootstrap band (area)."""
    pts = points_frame(sweeps)
    if pts.empty or metric not in pts or pts[metric].dropna().empty:
        return None
    pts = pts[pts["ok"].astype(bool)]
    x = alt.X("prompt_tokens:Q", title="prompt tokens")
    color = alt.Color("model:N", title="model")
    layers = [alt.Chart(pts).mark_circle(size=70).encode(
        x=x, y=alt.Y(f"{metric}:Q", title=title), color=color,
        tooltip=["model", "prompt_tokens", alt.Tooltip(f"{metric}:Q", format=",.1f")])]
    curve = curve_frame(sweeps)
    if not curve.empty and curve[metric].notna().any():
        line = curve.rename(columns={"n": "prompt_tokens"})
        layers.append(alt.Chart(line).mark_line(strokeDash=[4, 3]).encode(x=x, y=f"{metric}:Q", color=color))
        low, high = metric.replace("_ms", "_low_ms"), metric.replace("_ms", "_high_ms")
        band = line.dropna(subset=[low, high])
        if not band.empty:
            layers.append(alt.Chart(band).mark_area(opacity=0.15).encode(
                x=x, y=f"{low}:Q", y2=f"{high}:Q", color=color))
    return alt.layer(*layers).properties(title=f"{title} against prompt length (dashed: fit, shaded: 95% band)")


def memory_chart(sweeps: list[dict]) -> alt.Chart | None:
    """Peak RSS after each request against its prompt tokens, and the KV cache the run's context setting
    allocates (bytes per token x context, on top of the lowest peak) as a rule."""
    pts = points_frame(sweeps)
    if pts.empty or pts.get("peak_rss_mb") is None or pts["peak_rss_mb"].dropna().empty:
        return None
    pts = pts.dropna(subset=["peak_rss_mb", "prompt_tokens"])
    color = alt.Color("model:N", title="model")
    layers = [alt.Chart(pts).mark_line(point=True).encode(
        x=alt.X("prompt_tokens:Q", title="prompt tokens (context used)"),
        y=alt.Y("peak_rss_mb:Q", title="peak RSS (MB)"), color=color,
        tooltip=["model", "prompt_tokens", alt.Tooltip("peak_rss_mb:Q", format=",.0f")])]
    rules = pd.DataFrame([{"model": _label(sw), "context": sw["context_setting"], "kv_cache_mb": sw.get("kv_cache_mb")}
                          for sw in sweeps if sw.get("context_setting")])
    if not rules.empty:
        layers.append(alt.Chart(rules).mark_rule(strokeDash=[2, 2]).encode(
            x="context:Q", color=color, tooltip=["model", "context", alt.Tooltip("kv_cache_mb:Q", format=",.0f")]))
    return alt.layer(*layers).properties(title="Memory against context (dotted: the context the run loaded)")
