"""Agreement between the judge and people: Spearman's rho and quadratic-weighted Cohen's kappa.

Items are (output, criterion, rater) triples that have both a human score and a judge score from
the same judge run; each rater's score is paired with the judge's (no averaging of raters, so the
values stay on the scale). Overall pools every criterion after mapping each score onto 0..1 with
its criterion's scale.

Quadratic-weighted kappa with weights w = (x - y)^2 is written here in its item form

    kappa_w = 1 - sum_i (x_i - y_i)^2 / ((1/n) * sum_i sum_j (x_i - y_j)^2)

which is Cohen's formula (1 - sum w*O / sum w*E, E from the marginals) with the constant
1/(k-1)^2 cancelled, so it holds for any equally spaced scale, including the 0..1 pooled one.
Undefined (None) when fewer than 2 items, or when the expected disagreement is 0.
Spearman's rho is Pearson's r of average ranks (ties get the mean rank); None when fewer than 2
items or when either side is constant.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def average_ranks(values: Sequence[float]) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    order = np.argsort(arr, kind="mergesort")
    ranks = np.empty(len(arr), dtype=float)
    sorted_vals = arr[order]
    i = 0
    while i < len(arr):
        j = i
        while j + 1 < len(arr) and sorted_vals[j + 1] == sorted_vals[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    if len(x) != len(y):
        raise ValueError("x and y differ in length")
    if len(x) < 2:
        return None
    rx, ry = average_ranks(x), average_ranks(y)
    dx, dy = rx - rx.mean(), ry - ry.mean()
    denom = float(np.sqrt((dx * dx).sum() * (dy * dy).sum()))
    if denom == 0.0:
        return None
    return float((dx * dy).sum() / denom)


def quadratic_weighted_kappa(x: Sequence[float], y: Sequence[float]) -> float | None:
    if len(x) != len(y):
        raise ValueError("x and y differ in length")
    n = len(x)
    if n < 2:
        return None
    a, b = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    observed = float(((a - b) ** 2).sum())
    expected = float(((a[:, None] - b[None, :]) ** 2).sum()) / n
    if expected == 0.0:
        return None
    return 1.0 - observed / expected


def agreement(pairs: dict[str, list[tuple[float, float]]], overall_pairs: list[tuple[float, float]]) -> dict:
    """{criterion or "overall": {"spearman", "kappa_weighted", "n"}} from (judge, human) pairs."""
    out = {}
    for name, items in list(pairs.items()) + [("overall", overall_pairs)]:
        xs = [p[0] for p in items]
        ys = [p[1] for p in items]
        out[name] = {"spearman": spearman(xs, ys), "kappa_weighted": quadratic_weighted_kappa(xs, ys), "n": len(items)}
    return out
