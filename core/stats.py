"""Statistics shared by every feature: one definition of a distribution summary, a bootstrap
interval and an IQR outlier test. Pure numpy, no I/O."""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

PERCENTILES = (50, 90, 95, 99)
TAIL_MIN_SAMPLES = 20  # below this, p90/p95/p99 are indicative only (metrics.md)
MIN_CI_SAMPLES = 2     # below this, no interval at all ("n/a"), never a zero-width one


def _clean(values: Iterable[float | None]) -> np.ndarray:
    if isinstance(values, np.ndarray) and values.dtype.kind in "fiu":   # no Python loop over a numeric array
        arr = values.astype(float, copy=False).ravel()
        return arr[np.isfinite(arr)]
    arr = np.asarray([v for v in values if v is not None], dtype=float)
    return arr[np.isfinite(arr)]


def summary(values: Iterable[float | None]) -> dict | None:
    """{"mean","p50","p90","p95","p99"} of the finite values (linear interpolation), or None if empty."""
    arr = _clean(values)
    if arr.size == 0:
        return None
    out = {"mean": float(arr.mean())}
    for p, v in zip(PERCENTILES, np.percentile(arr, PERCENTILES)):
        out[f"p{p}"] = float(v)
    return out


def bootstrap_ci(
    values: Sequence[float],
    stat=np.mean,
    *,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> tuple[float, float] | None:
    """Percentile bootstrap interval of `stat` over `values` (resampled with replacement).

    None ("n/a") from fewer than 2 samples: one sample says nothing of the spread, and a zero-width
    interval would read as certainty."""
    arr = _clean(values)
    if arr.size < MIN_CI_SAMPLES:
        return None
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, arr.size, size=(n_boot, arr.size))
    samples = arr[idx]
    stats = np.asarray(stat(samples, axis=1)) if stat in (np.mean, np.median) else np.apply_along_axis(stat, 1, samples)
    alpha = (1 - level) / 2
    lo, hi = np.quantile(stats, [alpha, 1 - alpha])
    return float(lo), float(hi)


def iqr_outliers(values: Sequence[float | None], k: float = 1.5) -> list[bool]:
    """True for each value beyond k*IQR outside the quartiles (None is never an outlier)."""
    arr = _clean(values)
    if arr.size < 4:
        return [False] * len(values)
    q1, q3 = np.percentile(arr, [25, 75])
    spread = q3 - q1
    lo, hi = q1 - k * spread, q3 + k * spread
    return [v is not None and np.isfinite(v) and (v < lo or v > hi) for v in values]
