"""How robust is the winner: win probability under random weights, flip points, ties inside noise.

All vectorised numpy; no I/O. Inputs are normalised matrices (candidates x criteria, 0..1, 1 best).
"""
from __future__ import annotations

import warnings

import numpy as np

# Dirichlet concentration: alpha_i = CONCENTRATION * w_i. With 20, a weight of 0.4 varies with a
# standard deviation of about 0.1 (sqrt(w (1 - w) / (c + 1))): "around the chosen weights".
DEFAULT_CONCENTRATION = 20.0
DEFAULT_SAMPLES = 10_000
DEFAULT_BOOT = 200
TIE_LEVEL = 0.95


def sample_weights(weights: np.ndarray, n: int = DEFAULT_SAMPLES, concentration: float = DEFAULT_CONCENTRATION,
                   rng: np.random.Generator | None = None) -> np.ndarray:
    """n x K weight vectors from Dirichlet(concentration * w) over the criteria with w > 0 (others stay 0)."""
    rng = rng or np.random.default_rng(0)
    w = np.asarray(weights, dtype=float)
    active = w > 0
    out = np.zeros((n, w.size))
    if active.sum() == 0:
        return out
    g = rng.standard_gamma(concentration * w[active], size=(n, int(active.sum())))
    s = g.sum(axis=1, keepdims=True)
    s[s == 0] = 1.0
    out[:, active] = g / s
    return out


def win_probability(norm: np.ndarray, weights: np.ndarray, *, n: int = DEFAULT_SAMPLES,
                    concentration: float = DEFAULT_CONCENTRATION, rng: np.random.Generator | None = None,
                    column_samples: tuple[int, np.ndarray] | None = None) -> np.ndarray:
    """Share of Dirichlet weight draws in which each row of `norm` (P x K) has the top score.

    ``column_samples`` = (k, S) with S a B x P array of draws of column k (e.g. each model's quality drawn
    from its interval, normalised): draw s uses S[s % B] in column k, so the uncertainty of that
    criterion counts too, not only the weights'."""
    norm = np.asarray(norm, dtype=float)
    p = norm.shape[0]
    if p == 0:
        return np.zeros(0)
    if p == 1:
        return np.ones(1)
    W = sample_weights(weights, n, concentration, rng)
    scores = W @ norm.T  # n x P
    if column_samples is not None:
        k, S = column_samples
        S = np.asarray(S, dtype=float)
        if S.ndim == 2 and S.shape[1] == p and S.shape[0] > 0:
            drawn = S[np.arange(n) % S.shape[0]]                  # n x P
            scores = scores + W[:, [k]] * (drawn - norm[:, k][None, :])
    winners = scores.argmax(axis=1)
    return np.bincount(winners, minlength=p) / float(n)


def flip_points(norm: np.ndarray, weights: np.ndarray, names, ids) -> dict:
    """For each criterion: where the top choice changes when its weight moves and the others rescale.

    Weight i set to t (0..1), the others become w_j * (1 - t) / (1 - w_i): every score is linear in t, so the
    crossing with the current winner is exact. Returns {name: {"value", "direction", "new_winner"} or None};
    the nearest change on either side of the current weight is reported; None when the winner never changes
    (or when the other weights are all 0 and cannot be rescaled).
    """
    norm = np.asarray(norm, dtype=float)
    w = np.asarray(weights, dtype=float)
    out = {}
    if norm.shape[0] < 2:
        return {n: None for n in names}
    scores = norm @ w
    top = int(np.argmax(scores))
    for i, name in enumerate(names):
        t0 = float(w[i])
        if t0 >= 1.0 - 1e-12:
            out[name] = None
            continue
        a = norm[:, i]
        b = (scores - t0 * a) / (1.0 - t0)
        da = a[top] - a  # winner minus others, at t = 1
        db = b[top] - b  # at t = 0
        slope = da - db
        best = None
        with np.errstate(divide="ignore", invalid="ignore"):
            roots = np.where(slope != 0, db / (db - da), np.nan)
        for d in range(norm.shape[0]):
            if d == top or not np.isfinite(roots[d]):
                continue
            t = float(roots[d])
            # only a strict overtaking counts: touching at t = 0 or t = 1 leaves the winner in place
            if slope[d] < 0 and t0 - 1e-12 <= t < 1.0 - 1e-9:
                direction = "up"
            elif slope[d] > 0 and 1e-9 < t <= t0 + 1e-12:
                direction = "down"
            else:
                continue
            t = min(max(t, 0.0), 1.0)
            if best is None or abs(t - t0) < abs(best[0] - t0):
                best = (t, direction)
        if best is None:
            out[name] = None
            continue
        t, direction = best
        eps = 1e-7 if direction == "up" else -1e-7
        te = min(max(t + eps, 0.0), 1.0)
        after = te * a + (1.0 - te) * b
        after[top] = -np.inf  # who is on top just past the flip point
        after_top = int(np.argmax(after))
        out[name] = {"value": t, "direction": direction, "new_winner": ids[after_top]}
    return out


def tie_matrix(boot_scores: np.ndarray, point_scores: np.ndarray, level: float = TIE_LEVEL) -> np.ndarray:
    """C x C booleans: True where the bootstrap interval of the score difference contains 0.

    boot_scores is B x C (scores recomputed on resampled measurements, weights fixed). The diagonal is False.
    """
    point = np.asarray(point_scores, dtype=float)
    c = point.size
    equal = np.abs(point[:, None] - point[None, :]) <= 1e-12
    if boot_scores is None or boot_scores.shape[0] < 2:
        ties = equal
    else:
        d = boot_scores[:, :, None] - boot_scores[:, None, :]
        alpha = (1.0 - level) / 2.0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            lo, hi = np.quantile(d, [alpha, 1.0 - alpha], axis=0)
        ties = ((lo <= 1e-12) & (hi >= -1e-12)) | equal
    ties[np.arange(c), np.arange(c)] = False
    return ties
