"""The length sweep's curves: TTFT(n) and TPOT(n) fitted by least squares on a + b n + c n^2 (b, c >= 0) over
the sweep's requests, a case-bootstrap band, and the time to notes at a target (``core.metrics.time_to_notes_ms``)."""
from __future__ import annotations

import numpy as np

from core import metrics

N_BOOT = 2000


def _lsq(x: np.ndarray, y: np.ndarray, degree: int) -> np.ndarray:
    """Least squares of y on 1, n, n^2 (up to `degree`) with b, c >= 0: a longer prompt never takes less time
    to read, and attention's share only grows (scipy's bounded linear least squares; n scaled for conditioning)."""
    from scipy.optimize import lsq_linear
    scale = max(float(np.max(np.abs(x))), 1.0)
    design = np.vander(x / scale, degree + 1, increasing=True)
    lower = [-np.inf] + [0.0] * degree
    sol = lsq_linear(design, y, bounds=(lower, [np.inf] * (degree + 1)), method="bvls").x
    return sol / scale ** np.arange(degree + 1)


def fit_curve(x, y, degree: int = 2) -> dict | None:
    """Least squares of y on a + b n + c n^2 with b, c >= 0 (lower degree when fewer distinct lengths):
    {"coef": [a, b, c], "degree", "n_points", "rmse"}; None from fewer than 2 distinct lengths."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    degree = min(degree, len(np.unique(x)) - 1)
    if degree < 1:
        return None
    coef = _lsq(x, y, degree)
    resid = y - np.polynomial.polynomial.polyval(x, coef)
    coef = list(map(float, coef)) + [0.0] * (2 - degree)
    return {"coef": coef, "degree": int(degree), "n_points": int(len(x)),
            "rmse": float(np.sqrt(np.mean(resid ** 2)))}


def predict(fit: dict | None, n) -> float | None:
    if fit is None:
        return None
    a, b, c = fit["coef"]
    return float(a + b * n + c * n * n)


def slope_at(fit: dict | None, n: float) -> float | None:
    """d/dn of the fitted curve at n (ms per prompt token)."""
    if fit is None:
        return None
    return float(fit["coef"][1] + 2 * fit["coef"][2] * n)


def fit_sweep(points: list[dict], target_prompt: int, target_output: int, *, n_boot: int = N_BOOT,
              seed: int = 0) -> dict:
    """Curves and the time to notes from the sweep's requests (those with ``fitted``).

    The band is a case bootstrap over the requests (each resample refitted); there is none ("n/a") when the
    requests are no more than the curve's parameters: a curve through every point says nothing of its spread."""
    used = [p for p in points if p.get("fitted")]
    x = [p["prompt_tokens"] for p in used]
    ttft = fit_curve(x, [p["ttft_ms"] for p in used])
    tp = [(p["prompt_tokens"], p["tpot_ms"]) for p in used if p.get("tpot_ms") is not None]
    tpot = fit_curve([a for a, _ in tp], [b for _, b in tp])
    longest = max(x) if x else None
    out = {"ttft_ms": ttft, "tpot_ms": tpot, "target_prompt_tokens": int(target_prompt),
           "target_output_tokens": int(target_output), "max_measured_tokens": longest,
           "extrapolated": bool(longest is None or target_prompt > longest),
           "ttft_at_target_ms": predict(ttft, target_prompt), "tpot_at_target_ms": predict(tpot, target_prompt),
           "time_to_notes_ms": None, "time_to_notes_low_ms": None, "time_to_notes_high_ms": None, "curve": []}
    if ttft is not None and tpot is not None:
        out["time_to_notes_ms"] = metrics.time_to_notes_ms(out["ttft_at_target_ms"], out["tpot_at_target_ms"], target_output)
    if not x:
        return out
    top = max(longest, target_prompt)
    grid = np.unique(np.linspace(0, top, 41).round().astype(int))
    boots = _bootstrap(used, grid, target_prompt, target_output, n_boot, seed)
    for i, n in enumerate(grid):
        row = {"n": int(n), "ttft_ms": predict(ttft, n), "tpot_ms": predict(tpot, n),
               "ttft_low_ms": None, "ttft_high_ms": None, "tpot_low_ms": None, "tpot_high_ms": None}
        if boots is not None:
            row.update(ttft_low_ms=boots["ttft"][0][i], ttft_high_ms=boots["ttft"][1][i])
            if boots["tpot"] is not None:
                row.update(tpot_low_ms=boots["tpot"][0][i], tpot_high_ms=boots["tpot"][1][i])
        out["curve"].append(row)
    if boots is not None and boots["notes"] is not None:
        out["time_to_notes_low_ms"], out["time_to_notes_high_ms"] = boots["notes"]
    return out


def _bootstrap(used: list[dict], grid, target_prompt: int, target_output: int, n_boot: int, seed: int):
    x = np.asarray([p["prompt_tokens"] for p in used], float)
    y1 = np.asarray([p["ttft_ms"] for p in used], float)
    y2 = np.asarray([np.nan if p.get("tpot_ms") is None else p["tpot_ms"] for p in used], float)
    degree = min(2, len(np.unique(x)) - 1)
    if degree < 1 or len(x) <= degree + 1:
        return None
    rng = np.random.default_rng(seed)
    ttft_pred, tpot_pred, notes = [], [], []
    for _ in range(n_boot):
        idx = rng.integers(0, len(x), len(x))
        xs = x[idx]
        if len(np.unique(xs)) <= degree:
            continue
        c1 = _lsq(xs, y1[idx], degree)
        ttft_pred.append(np.polynomial.polynomial.polyval(grid, c1))
        ok = np.isfinite(y2[idx])
        if len(np.unique(xs[ok])) > degree:
            c2 = _lsq(xs[ok], y2[idx][ok], degree)
            tpot_pred.append(np.polynomial.polynomial.polyval(grid, c2))
            notes.append(np.polynomial.polynomial.polyval(target_prompt, c1)
                         + (target_output - 1) * np.polynomial.polynomial.polyval(target_prompt, c2))
    if len(ttft_pred) < 100:
        return None

    def band(rows):
        lo, hi = np.quantile(np.asarray(rows), [0.025, 0.975], axis=0)
        return [float(v) for v in np.atleast_1d(lo)], [float(v) for v in np.atleast_1d(hi)]
    notes_band = None
    if len(notes) >= 100:
        lo, hi = np.quantile(np.asarray(notes), [0.025, 0.975])
        notes_band = (float(lo), float(hi))
    return {"ttft": band(ttft_pred), "tpot": band(tpot_pred) if len(tpot_pred) >= 100 else None, "notes": notes_band}
