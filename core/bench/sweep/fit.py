"""The length sweep's curves: TTFT(n) and TPOT(n) fitted by least squares on a + b n (+ c n^2 only where the data
support it) with b, c >= 0 over the sweep's requests, a case-bootstrap band that holds the curve's own uncertainty,
and the time to notes at a target (``core.metrics.time_to_notes_ms``), withheld beyond 1.5x the longest prompt."""
from __future__ import annotations

import numpy as np

from core import metrics

N_BOOT = 1000   # resamples; each refits both degrees of both curves


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


EXTRAPOLATE_MAX = 1.5   # beyond this many times the longest measured prompt a prediction is withheld


def withheld_reason(target_prompt: int, longest: int | None) -> str | None:
    """The one line that says why no time to notes is given at ``target_prompt``, or None when one is."""
    if longest is None:
        return "no successful request to fit the curves"
    if target_prompt > EXTRAPOLATE_MAX * longest:
        return f"measure at {target_prompt:,} tokens: the longest measured prompt is {longest:,}"
    return None


def fit_sweep(points: list[dict], target_prompt: int, target_output: int, *, n_boot: int = N_BOOT,
              seed: int = 0) -> dict:
    """Curves and the time to notes from the sweep's requests (those with ``fitted``).

    Each curve's degree is chosen by evidence (``_choose``): the quadratic term is kept only when its
    bootstrap 95% interval excludes 0, or when the lengths held out one at a time are predicted better with
    it. The band is a case bootstrap over the requests (each resample refitted) and holds the curve's own
    uncertainty: when the data do not settle the degree, it spans the resamples of both degrees. There is no
    band ("n/a") when the requests are no more than the curve's parameters. Beyond ``EXTRAPOLATE_MAX`` x the
    longest measured prompt the figures at the target are withheld (``withheld``: one line saying why)."""
    used = [p for p in points if p.get("fitted")]
    x = [p["prompt_tokens"] for p in used]
    tp = [(p["prompt_tokens"], p["tpot_ms"]) for p in used if p.get("tpot_ms") is not None]
    longest = max(x) if x else None
    boots = _bootstrap(used, target_prompt, target_output, n_boot, seed) if x else None
    d1 = _choose(x, [p["ttft_ms"] for p in used], (boots or {}).get("c_ttft"))
    d2 = _choose([a for a, _ in tp], [b for _, b in tp], (boots or {}).get("c_tpot"))
    ttft = fit_curve(x, [p["ttft_ms"] for p in used], d1["degree"]) if d1 else None
    tpot = fit_curve([a for a, _ in tp], [b for _, b in tp], d2["degree"]) if d2 else None
    for fit, why in ((ttft, d1), (tpot, d2)):
        if fit is not None:
            fit["degree_reason"] = why["reason"]
    withheld = withheld_reason(target_prompt, longest)
    out = {"ttft_ms": ttft, "tpot_ms": tpot, "target_prompt_tokens": int(target_prompt),
           "target_output_tokens": int(target_output), "max_measured_tokens": longest,
           "extrapolated": bool(longest is None or target_prompt > longest), "withheld": withheld,
           "ttft_at_target_ms": None, "tpot_at_target_ms": None,
           "time_to_notes_ms": None, "time_to_notes_low_ms": None, "time_to_notes_high_ms": None, "curve": []}
    if withheld is None:
        out["ttft_at_target_ms"], out["tpot_at_target_ms"] = predict(ttft, target_prompt), predict(tpot, target_prompt)
        if ttft is not None and tpot is not None:
            out["time_to_notes_ms"] = metrics.time_to_notes_ms(out["ttft_at_target_ms"], out["tpot_at_target_ms"],
                                                                target_output)
    if not x:
        return out
    top = max(longest, min(target_prompt, EXTRAPOLATE_MAX * longest))
    grid = np.unique(np.linspace(0, top, 41).round().astype(int))
    bands = _bands(boots, grid, target_prompt, target_output, d1, d2)
    for i, n in enumerate(grid):
        row = {"n": int(n), "ttft_ms": predict(ttft, n), "tpot_ms": predict(tpot, n),
               "ttft_low_ms": None, "ttft_high_ms": None, "tpot_low_ms": None, "tpot_high_ms": None}
        if bands is not None:
            if bands["ttft"] is not None:
                row.update(ttft_low_ms=bands["ttft"][0][i], ttft_high_ms=bands["ttft"][1][i])
            if bands["tpot"] is not None:
                row.update(tpot_low_ms=bands["tpot"][0][i], tpot_high_ms=bands["tpot"][1][i])
        out["curve"].append(row)
    if withheld is None and bands is not None and bands["notes"] is not None and out["time_to_notes_ms"] is not None:
        lo, hi = bands["notes"]   # the band holds the point estimate (a skewed bootstrap may not)
        out["time_to_notes_low_ms"] = min(lo, out["time_to_notes_ms"])
        out["time_to_notes_high_ms"] = max(hi, out["time_to_notes_ms"])
    return out


def _loo_lengths_better(x: np.ndarray, y: np.ndarray) -> bool:
    """With 4 or more lengths: does the quadratic predict each length held out (fitted on the others) better
    than the line does (mean squared error over the requests)?"""
    lengths = np.unique(x)
    if len(lengths) < 4:
        return False
    err = {1: 0.0, 2: 0.0}
    for n in lengths:
        train, test = x != n, x == n
        for degree in (1, 2):
            coef = _lsq(x[train], y[train], degree)
            err[degree] += float(np.sum((y[test] - np.polynomial.polynomial.polyval(x[test], coef)) ** 2))
    return err[2] < err[1]


def _choose(x, y, c_draws) -> dict | None:
    """{"degree", "reason", "settled"}: the curve's degree by evidence; None from fewer than 2 distinct lengths.
    ``c_draws``: the n^2 coefficient of each bootstrap resample (``_free_c``: fitted without the bounds, because
    a bounded fit whose slope sits at 0 carries a straight rise in its n^2 term; None: no bootstrap)."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    distinct = len(np.unique(x))
    if distinct < 2:
        return None
    if distinct < 3:
        return {"degree": 1, "reason": "straight line: 2 lengths", "settled": True}
    if c_draws is not None and len(c_draws) >= 100 and float(np.quantile(c_draws, 0.025)) > 0:
        return {"degree": 2, "reason": "quadratic: its n^2 term's 95% interval excludes 0", "settled": True}
    if _loo_lengths_better(x, y):
        return {"degree": 2, "reason": "quadratic: it predicts held-out lengths better than a line",
                "settled": True}
    if c_draws is None or len(c_draws) < 100:
        return {"degree": 1, "reason": "straight line: too few requests to support an n^2 term", "settled": False}
    return {"degree": 1, "reason": "straight line: the data do not support an n^2 term", "settled": False}


def _bootstrap(used: list[dict], target_prompt: int, target_output: int, n_boot: int, seed: int) -> dict | None:
    """Per resample of the requests, the coefficients of both degrees for both curves."""
    x = np.asarray([p["prompt_tokens"] for p in used], float)
    y1 = np.asarray([p["ttft_ms"] for p in used], float)
    y2 = np.asarray([np.nan if p.get("tpot_ms") is None else p["tpot_ms"] for p in used], float)
    top = min(2, len(np.unique(x)) - 1)
    if top < 1 or len(x) <= top + 1:
        return None
    rng = np.random.default_rng(seed)
    coefs = {("ttft", d): [] for d in (1, 2)} | {("tpot", d): [] for d in (1, 2)}
    free = {"ttft": [], "tpot": []}   # the n^2 coefficient of an unconstrained fit: what tests the degree
    scale = max(float(np.max(np.abs(x))), 1.0)
    for _ in range(n_boot):
        idx = rng.integers(0, len(x), len(x))
        xs = x[idx]
        ok = np.isfinite(y2[idx])
        if top == 2:
            for name, y in (("ttft", y1), ("tpot", y2)):
                c = _free_c(x, y, scale, rng)
                if c is not None:
                    free[name].append(c)
        for degree in range(1, top + 1):
            if len(np.unique(xs)) <= degree:
                continue
            coefs[("ttft", degree)].append(np.pad(_lsq(xs, y1[idx], degree), (0, 2 - degree)))
            if len(np.unique(xs[ok])) > degree:
                coefs[("tpot", degree)].append(np.pad(_lsq(xs[ok], y2[idx][ok], degree), (0, 2 - degree)))
    out = {k: np.asarray(v) for k, v in coefs.items()}
    out["c_ttft"] = np.asarray(free["ttft"]) if free["ttft"] else None
    out["c_tpot"] = np.asarray(free["tpot"]) if free["tpot"] else None
    return out


def _free_c(x: np.ndarray, y: np.ndarray, scale: float, rng) -> float | None:
    """The n^2 coefficient (scaled n) of an unbounded quadratic through the medians of one resample drawn
    within each length: medians, so that a few requests slowed by another program do not bend the curve."""
    keep = np.isfinite(y)
    x, y = x[keep], y[keep]
    lengths = np.unique(x)
    if len(lengths) < 3:
        return None
    med = [np.median(rng.choice(y[x == n], size=int(np.sum(x == n)))) for n in lengths]
    return float(np.polynomial.polynomial.polyfit(lengths / scale, med, 2)[2])


def _bands(boots: dict | None, grid, target_prompt: int, target_output: int, d1: dict | None, d2: dict | None):
    """95% bands of each curve on ``grid`` and of the time to notes: over the resamples of the chosen degree,
    or, for a curve whose degree the data do not settle, the hull of both degrees' bands."""
    if boots is None or d1 is None:
        return None

    def degrees(choice):
        if choice is None:
            return []
        return [choice["degree"]] if choice["settled"] else [1, 2]

    def hull(samples: list[np.ndarray]):
        samples = [v for v in samples if len(v) >= 100]
        if not samples:
            return None
        lo = np.min([np.quantile(v, 0.025, axis=0) for v in samples], axis=0)
        hi = np.max([np.quantile(v, 0.975, axis=0) for v in samples], axis=0)
        return [float(v) for v in np.atleast_1d(lo)], [float(v) for v in np.atleast_1d(hi)]

    def on_grid(curve, choice):
        return [np.polynomial.polynomial.polyval(grid, boots[(curve, d)].T) for d in degrees(choice)
                if len(boots[(curve, d)])]

    notes = []
    for a in degrees(d1):
        for b in degrees(d2):
            t1, t2 = boots[("ttft", a)], boots[("tpot", b)]
            m = min(len(t1), len(t2))
            if m:
                notes.append(np.polynomial.polynomial.polyval(target_prompt, t1[:m].T)
                             + (target_output - 1) * np.polynomial.polynomial.polyval(target_prompt, t2[:m].T))
    band = hull(notes)
    return {"ttft": hull(on_grid("ttft", d1)), "tpot": hull(on_grid("tpot", d2)),
            "notes": None if band is None else (band[0][0], band[1][0])}
