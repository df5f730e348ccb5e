"""The statistics in every record, checked against independent computations (normal approximations)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from mergesweep.evals import stats
from mergesweep.evals.compare import compare

Z975 = 1.959963984540054


def phi(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


def bernoulli(n: int, k: int, seed: int) -> list[float]:
    """Exactly ``k`` ones among ``n`` items, shuffled: the sample mean is known, not drawn."""
    v = np.array([1.0] * k + [0.0] * (n - k))
    np.random.default_rng(seed).shuffle(v)
    return v.tolist()


def test_ci_of_a_bernoulli_sample_matches_the_normal_approximation():
    n, k = 600, 420  # p = 0.7
    ci = stats.bootstrap_macro_ci({"t": bernoulli(n, k, 0)}, n_resamples=8000, seed=1)
    half = Z975 * math.sqrt(0.7 * 0.3 / n)
    assert ci["low"] == pytest.approx(0.7 - half, abs=0.006)
    assert ci["high"] == pytest.approx(0.7 + half, abs=0.006)
    assert ci["level"] == 0.95 and ci["seed"] == 1 and ci["n_resamples"] == 8000


def test_macro_ci_keeps_task_weights_fixed():
    """Mean of two task means: variance (v1/n1 + v2/n2) / 4, whatever the task sizes."""
    a, b = bernoulli(200, 180, 2), bernoulli(1000, 500, 3)
    ci = stats.bootstrap_macro_ci({"a": a, "b": b}, n_resamples=8000, seed=4)
    mean = (0.9 + 0.5) / 2
    half = Z975 * math.sqrt((0.9 * 0.1 / 200 + 0.25 / 1000) / 4)
    assert stats.macro_mean({"a": a, "b": b}) == pytest.approx(mean)
    assert ci["low"] == pytest.approx(mean - half, abs=0.006) and ci["high"] == pytest.approx(mean + half, abs=0.006)


def test_bootstrap_is_reproducible_with_a_seed():
    data = {"a": bernoulli(300, 100, 5), "b": bernoulli(50, 30, 6)}
    assert stats.bootstrap_macro_ci(data, 500, seed=3) == stats.bootstrap_macro_ci(data, 500, seed=3)
    assert stats.bootstrap_macro_ci(data, 500, seed=3) != stats.bootstrap_macro_ci(data, 500, seed=4)
    b = {k: list(reversed(v)) for k, v in data.items()}
    assert stats.paired_bootstrap(data, b, 2000, seed=9) == stats.paired_bootstrap(data, b, 2000, seed=9)
    assert stats.bootstrap_macro_ci(data, 0) == {}


def paired(n: int, a_only: int, b_only: int, both: int, seed: int) -> tuple[list[float], list[float]]:
    """Items where only A is right, only B is right, both are right; the rest neither (shuffled)."""
    a = [1.0] * a_only + [0.0] * b_only + [1.0] * both + [0.0] * (n - a_only - b_only - both)
    b = [0.0] * a_only + [1.0] * b_only + [1.0] * both + [0.0] * (n - a_only - b_only - both)
    idx = np.random.default_rng(seed).permutation(n)
    return [a[i] for i in idx], [b[i] for i in idx]


def normal_p(a: list[float], b: list[float]) -> float:
    d = np.asarray(a) - np.asarray(b)
    return 1 - phi(d.mean() / (d.std(ddof=0) / math.sqrt(len(d))))


def test_paired_p_value_small_when_a_is_clearly_better():
    a, b = paired(500, a_only=60, b_only=20, both=200, seed=0)
    res = stats.paired_bootstrap({"t": a}, {"t": b}, n_resamples=20000, seed=0)
    assert res["diff"] == pytest.approx(40 / 500)
    assert res["p_value"] < 0.001 and normal_p(a, b) < 0.001


def test_paired_p_value_about_half_when_equal_and_one_when_a_is_worse():
    a, b = paired(500, a_only=40, b_only=40, both=200, seed=1)
    res = stats.paired_bootstrap({"t": a}, {"t": b}, n_resamples=20000, seed=2)
    assert res["diff"] == 0 and 0.4 < res["p_value"] < 0.6
    swapped = stats.paired_bootstrap({"t": b}, {"t": a}, n_resamples=20000, seed=2)
    assert 0.4 < swapped["p_value"] < 0.6
    a2, b2 = paired(500, a_only=10, b_only=50, both=200, seed=3)
    assert stats.paired_bootstrap({"t": a2}, {"t": b2}, 5000, seed=0)["p_value"] > 0.99


@pytest.mark.parametrize("a_only,b_only", [(45, 30), (52, 35), (38, 30)])
def test_paired_p_value_matches_the_normal_approximation(a_only, b_only):
    a, b = paired(800, a_only, b_only, both=300, seed=a_only)
    res = stats.paired_bootstrap({"t": a}, {"t": b}, n_resamples=40000, seed=5)
    assert res["p_value"] == pytest.approx(normal_p(a, b), abs=0.025)


def test_paired_ci_is_the_percentile_interval_of_the_same_resampled_differences():
    """Hand-rolled: the same generator draws the same index matrices, task by task in sorted order."""
    a = {"y": bernoulli(90, 50, 1), "x": bernoulli(200, 120, 2)}
    b = {"y": bernoulli(90, 40, 3), "x": bernoulli(200, 130, 4)}
    res = stats.paired_bootstrap(a, b, n_resamples=4000, seed=6)
    rng = np.random.default_rng(6)
    means = []
    for t in ("x", "y"):
        d = np.subtract(a[t], b[t])
        idx = rng.integers(0, len(d), size=(4000, len(d)))
        means.append(np.array([d[row].mean() for row in idx]))
    dist = (means[0] + means[1]) / 2
    assert res["low"] == pytest.approx(np.percentile(dist, 2.5), abs=1e-12)
    assert res["high"] == pytest.approx(np.percentile(dist, 97.5), abs=1e-12)
    assert res["p_value"] == (np.count_nonzero(dist <= 0) + 1) / 4001 and res["level"] == 0.95
    assert res["low"] < res["diff"] < res["high"]
    narrow = stats.paired_bootstrap(a, b, n_resamples=4000, seed=6, level=0.5)
    assert res["low"] < narrow["low"] < narrow["high"] < res["high"] and narrow["p_value"] == res["p_value"]


def test_paired_ci_of_known_differences():
    a = {"t": bernoulli(50, 20, 0), "u": bernoulli(30, 10, 1)}
    same = stats.paired_bootstrap(a, a, n_resamples=500, seed=0)
    assert (same["diff"], same["low"], same["high"], same["p_value"]) == (0.0, 0.0, 0.0, 1.0)
    plus_one = stats.paired_bootstrap({t: [v + 1 for v in vs] for t, vs in a.items()}, a, n_resamples=500, seed=0)
    assert (plus_one["diff"], plus_one["low"], plus_one["high"]) == (1.0, 1.0, 1.0)
    assert plus_one["p_value"] == 1 / 501


def test_paired_ci_width_matches_the_normal_approximation():
    a, b = paired(800, 52, 35, both=300, seed=52)
    res = stats.paired_bootstrap({"t": a}, {"t": b}, n_resamples=40000, seed=5)
    d = np.asarray(a) - np.asarray(b)
    half = Z975 * d.std(ddof=0) / math.sqrt(len(d))
    assert res["low"] == pytest.approx(d.mean() - half, abs=0.004)
    assert res["high"] == pytest.approx(d.mean() + half, abs=0.004)


def test_paired_needs_the_same_items():
    with pytest.raises(ValueError, match="same tasks and items"):
        stats.paired_bootstrap({"t": [1, 0]}, {"t": [1, 0, 1]})
    with pytest.raises(ValueError, match="same tasks and items"):
        stats.paired_bootstrap({"t": [1, 0]}, {"u": [1, 0]})


def write_record(
    sweep: Path,
    pid: str,
    scores: dict[str, list[float]],
    metric: str = "acc",
    hashes: dict[str, list[str]] | None = None,
) -> Path:
    """A record + per-sample files in the layout the CLI writes (``samples`` relative to the sweep folder)."""
    samples = {}
    for task, vals in scores.items():
        rel = Path("samples") / pid / f"{task}.jsonl"
        (sweep / rel).parent.mkdir(parents=True, exist_ok=True)
        hs = (hashes or {}).get(task) or [f"h{i}" for i in range(len(vals))]
        rows = [{"doc_id": i, "doc_hash": hs[i], metric: v, "resps": []} for i, v in enumerate(vals)]
        rows.reverse()  # compare pairs by doc_id, not by line order
        (sweep / rel).write_text("".join(json.dumps(r) + "\n" for r in rows))
        samples[task] = str(rel)
    rec = {
        "point_id": pid,
        "samples": samples,
        "metrics": {"icl": {"metric": metric, "tasks": {t: {metric: float(np.mean(v))} for t, v in scores.items()}}},
    }
    path = sweep / "records" / f"{pid}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rec))
    return path


def test_compare_two_records_is_the_paired_bootstrap_on_their_samples(tmp_path):
    a1, b1 = paired(300, 40, 10, 100, seed=7)
    a2, b2 = paired(120, 5, 15, 50, seed=8)
    ra = write_record(tmp_path / "s1", "A", {"x": a1, "y": a2})
    rb = write_record(tmp_path / "s2", "B", {"x": b1, "y": b2})
    got = compare(ra, rb, "icl", n_resamples=3000, seed=11)
    want = stats.paired_bootstrap({"x": a1, "y": a2}, {"x": b1, "y": b2}, n_resamples=3000, seed=11)
    assert got["diff"] == pytest.approx(want["diff"]) and got["p_value"] == want["p_value"]
    assert got["a"] == "A" and got["tasks"]["y"]["n"] == 120 and got["metric"] == "acc"
    assert compare(rb, ra, "icl", n_resamples=3000, seed=11)["p_value"] > 0.5


def test_compare_refuses_different_items(tmp_path):
    ra = write_record(tmp_path / "s", "A", {"x": [1, 0, 1]})
    rb = write_record(tmp_path / "s", "B", {"x": [1, 0]})
    with pytest.raises(ValueError, match="different doc_ids"):
        compare(ra, rb, "icl")
    rc = write_record(tmp_path / "s", "C", {"x": [1, 1, 1]}, hashes={"x": ["h0", "zz", "h2"]})
    with pytest.raises(ValueError, match="doc_id 1 is a different document"):
        compare(ra, rc, "icl")
    with pytest.raises(ValueError, match="no part 'if'"):
        compare(ra, ra, "if")
