"""Statistics every suite reports: macro means, seeded bootstrap confidence intervals, paired tests.

Why bootstrap over samples: a sweep point's accuracy on a few hundred items moves by several points from
sampling alone, and trade-off curves are read by comparing neighbouring points. A macro average over tasks
is resampled task by task (each task's items with replacement), which keeps every task's weight fixed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def macro_mean(per_task: Mapping[str, Sequence[float]]) -> float:
    """Mean over tasks of each task's mean score (tasks weigh the same whatever their size)."""
    return float(np.mean([np.mean(v) for v in per_task.values()]))


def _resampled_means(values: Sequence[float], n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    idx = rng.integers(0, len(arr), size=(n_resamples, len(arr)))
    return arr[idx].mean(axis=1)


def bootstrap_macro_ci(
    per_task: Mapping[str, Sequence[float]], n_resamples: int = 1000, seed: int = 0, level: float = 0.95
) -> dict[str, float]:
    """Percentile bootstrap CI of the macro mean: ``{"low", "high", "level", "n_resamples", "seed"}``."""
    if n_resamples <= 0:
        return {}
    rng = np.random.default_rng(seed)
    dist = np.mean([_resampled_means(v, n_resamples, rng) for _, v in sorted(per_task.items())], axis=0)
    a = (1 - level) / 2
    return {
        "low": float(np.quantile(dist, a)),
        "high": float(np.quantile(dist, 1 - a)),
        "level": level,
        "n_resamples": n_resamples,
        "seed": seed,
    }


def paired_bootstrap(
    a: Mapping[str, Sequence[float]],
    b: Mapping[str, Sequence[float]],
    n_resamples: int = 10000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, float]:
    """Is point A better than point B on the same items? One-sided paired bootstrap p-value for mean(A) > mean(B).

    Items are resampled jointly (the same indices for A and B), so item difficulty cancels out. Returns
    ``{"diff", "p_value", "low", "high", "level", "n_resamples", "seed"}``: ``diff`` is the observed macro
    difference A - B, ``low``/``high`` the percentile ``level`` CI of that difference, read from the same
    resampled distribution as the p-value (so one seed gives both, and they agree).
    """
    if sorted(a) != sorted(b) or any(len(a[t]) != len(b[t]) for t in a):
        raise ValueError("paired comparison needs the same tasks and items for both points")
    rng = np.random.default_rng(seed)
    diffs = []
    for t in sorted(a):
        d = np.asarray(a[t], dtype=np.float64) - np.asarray(b[t], dtype=np.float64)
        idx = rng.integers(0, len(d), size=(n_resamples, len(d)))
        diffs.append(d[idx].mean(axis=1))
    dist = np.mean(diffs, axis=0)
    observed = float(np.mean([np.mean(np.asarray(a[t]) - np.asarray(b[t])) for t in sorted(a)]))
    return {
        "diff": observed,
        "p_value": float((np.sum(dist <= 0) + 1) / (n_resamples + 1)),
        "low": float(np.quantile(dist, (1 - level) / 2)),
        "high": float(np.quantile(dist, 1 - (1 - level) / 2)),
        "level": level,
        "n_resamples": n_resamples,
        "seed": seed,
    }
