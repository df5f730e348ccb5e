"""Paper figures and the best-lam table from records: files, sizes, and numbers checked by brute force.

Records are synthetic (written through ``RecordStore.write``, read back through the real loaders) so that the
expected best lam and Pareto front are known: ICL falls and IF rises with lam, with family-specific curves.
"""

from __future__ import annotations

import itertools
import math
import struct
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mergesweep.evals import stats
from mergesweep.evals.compare import compare, load_record, per_sample
from mergesweep.report.figures import best_lam, pareto_front, write_figures
from mergesweep.report.report import load_table, write_report
from mergesweep.store.records import RecordStore

LAMS = [round(0.1 * i, 1) for i in range(11)]
TASKS = {"icl": ["sst2", "trec", "cb"], "if": ["ifeval"]}


def curve(family: str, method: str, lam: float) -> tuple[float, float]:
    """(ICL, IF): ICL falls, IF saturates; the second family and method shift both."""
    k = 1 if family == "fam_b" else 0
    m = 0.03 if method == "ties" else 0.0
    icl = 0.8 - 0.35 * lam ** (2 - k) + m
    if_ = 0.2 + 0.6 * (1 - math.exp(-(4 + 2 * k) * lam)) - m
    return icl, if_


def record(family: str, method: str, lam: float, suite: str = "icl_ifeval", parts=("icl", "if")) -> dict:
    icl, if_ = curve(family, method, lam)
    summary = {"icl": icl if "icl" in parts else None, "if": if_ if "if" in parts else None}
    metrics = {
        p: {
            "metric": "acc",
            "tasks": {t: {"acc": min(1.0, summary[p] + 0.05 * i - 0.05)} for i, t in enumerate(TASKS[p])},
        }
        for p in parts
    }
    return {
        "point_id": f"{family}__{method}__lam{lam:g}__{suite}",
        "sweep": "s",
        "family": family,
        "method": method,
        "lam": lam,
        "extrapolation": False,
        "summary": summary,
        "metrics": metrics,
        "ci": {p: {"low": summary[p] - 0.04, "high": summary[p] + 0.03} for p in parts},
        "config": {"suite": {"name": suite}},
    }


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("figs") / "study"
    store = RecordStore(d)
    for fam, meth, lam in itertools.product(("fam_a", "fam_b"), ("linear", "ties"), LAMS):
        store.write(record(fam, meth, lam))
    return d


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def test_every_figure_as_png_and_pdf_at_column_width(sweep):
    out = write_report(sweep)
    figs = sweep / "figures"
    stems = {p.stem for p in figs.glob("*.png")}
    assert stems == {
        "tradeoff__fam_a",
        "tradeoff__fam_b",
        "parts_vs_lam",
        "tasks__fam_a__linear",
        "tasks__fam_a__ties",
        "tasks__fam_b__linear",
        "tasks__fam_b__ties",
    }
    for stem in stems:
        assert (figs / f"{stem}.pdf").read_bytes()[:5] == b"%PDF-"
        w, h = png_size(figs / f"{stem}.png")
        assert 850 <= w <= 1150, f"{stem}: {w}px wide at 300 dpi is not one 3.3in column"
    report = out["markdown"].read_text()
    assert "figures/tradeoff__fam_a.png" in report and "(best_lam.md)" in report
    assert (sweep / "best_lam.csv").is_file()


def test_best_lam_is_the_highest_icl_within_the_if_tolerance(sweep):
    df = load_table(sweep)  # no suite column: one suite
    table = best_lam(df, if_tolerance=0.05).set_index(["family", "method"])
    for fam, meth in itertools.product(("fam_a", "fam_b"), ("linear", "ties")):
        ref_if = curve(fam, "linear", 1.0)[1]  # the instruct model: lam=1 of the linear merge
        feasible = [lam for lam in LAMS if curve(fam, meth, lam)[1] >= ref_if - 0.05]
        expected = max(feasible, key=lambda lam: (curve(fam, meth, lam)[0], -lam))
        row = table.loc[(fam, meth)]
        assert row["best_lam"] == pytest.approx(expected), (fam, meth)
        assert row["icl"] == pytest.approx(curve(fam, meth, expected)[0])
        assert row["icl_low"] == pytest.approx(row["icl"] - 0.04)
        assert row["icl_high"] == pytest.approx(row["icl"] + 0.03)
    # fam_b's IF saturates faster, so more ICL is kept there than in fam_a
    assert table.loc[("fam_b", "linear"), "best_lam"] < table.loc[("fam_a", "linear"), "best_lam"]


def test_pareto_front_matches_brute_force():
    rng = np.random.default_rng(0)
    x, y = rng.random(40), rng.random(40)
    x[3] = np.nan
    x[10], y[10], x[11], y[11] = 1.5, 0.9, 1.5, 0.8  # a tie on ICL: the lower-IF twin is dominated
    brute = [
        not np.isnan(x[i])
        and not any(
            x[j] >= x[i] and y[j] >= y[i] and (x[j] > x[i] or y[j] > y[i])
            for j in range(40)
            if j != i and not np.isnan(x[j])
        )
        for i in range(40)
    ]
    assert pareto_front(x, y).tolist() == brute and sum(brute) >= 2


def test_single_part_suites_do_not_break_figures(tmp_path):
    store = RecordStore(tmp_path / "icl_only")
    for lam in (0.0, 0.5, 1.0):
        store.write(record("fam_a", "linear", lam, suite="icl_classic", parts=("icl",)))
    made = write_figures([tmp_path / "icl_only"], load_table(tmp_path / "icl_only"), tmp_path / "icl_only")
    assert "parts_vs_lam" in made and not any(k.startswith("tradeoff") for k in made)
    assert (tmp_path / "icl_only" / "best_lam.csv").read_text().count("\n") == 1, "no IF: no best-lam rows"
    assert (tmp_path / "icl_only" / "figures" / "tasks__fam_a__linear.pdf").is_file()


def test_two_suites_are_two_curves_not_one(tmp_path):
    """partial_adaptation writes icl_ifeval and alpaca_judged records at the same lam: never mixed in one line."""
    store = RecordStore(tmp_path / "pa")
    for lam in LAMS:
        store.write(record("fam_a", "linear", lam))
        store.write(record("fam_a", "linear", lam, suite="alpaca_judged", parts=("if",)))
    write_figures([tmp_path / "pa"], load_table(tmp_path / "pa"), tmp_path / "pa")
    table = (tmp_path / "pa" / "best_lam.csv").read_text().splitlines()
    assert len(table) == 2 and ",icl_ifeval," in table[1]
    heatmaps = sorted(p.stem for p in (tmp_path / "pa" / "figures").glob("tasks__*.png"))
    assert heatmaps == ["tasks__fam_a__linear__alpaca_judged", "tasks__fam_a__linear__icl_ifeval"]


def test_wandb_summary_run_has_figures_tables_and_tags(sweep, tmp_path, monkeypatch):
    """A real offline W&B run: every figure as an image, the records and best-lam tables, family/method tags."""
    import wandb

    monkeypatch.setenv("WANDB_MODE", "offline")
    runs = []
    real_init = wandb.init
    monkeypatch.setattr(wandb, "init", lambda *a, **kw: runs.append(real_init(*a, **kw)) or runs[-1])
    out = write_report(sweep, tracking={"enabled": True, "mode": "offline", "project": "t"}, out=tmp_path / "rep")
    media = Path(out["wandb"]) / "files" / "media"
    images = {p.name.rsplit("_", 2)[0] for p in (media / "images" / "figures").glob("*.png")}
    assert images == {
        "tradeoff__fam_a",
        "tradeoff__fam_b",
        "parts_vs_lam",
        "tasks__fam_a__linear",
        "tasks__fam_a__ties",
        "tasks__fam_b__linear",
        "tasks__fam_b__ties",
    }
    tables = sorted(p.name.split("_")[0] for p in (media / "table").glob("*.table.json"))
    assert tables == ["best", "records"]
    assert sorted(runs[-1].tags) == ["fam_a", "fam_b", "linear", "ties"]


GAIN_LAMS = (0.0, 0.3, 0.6, 0.8, 1.0)


def scored_record(store: RecordStore, family: str, method: str, lam: float, if_: float, samples: bool = True) -> Path:
    """A record whose ICL comes from per-sample files (60 shared items per task, 0/1 scores drawn around the
    ``curve`` value of this lam; doc_ids and doc_hashes are the same for every point, as in a real sweep)."""
    pid = f"{family}__{method}__lam{lam:g}"
    rng = np.random.default_rng(int(1000 * lam) + 7 * len(family) + len(method))
    scores = {
        t: (rng.random(60) < curve(family, method, lam)[0] + 0.05 * i).astype(float).tolist()
        for i, t in enumerate(TASKS["icl"])
    }
    rel = {}
    for task, vals in scores.items():
        path = store.samples_dir(pid) / f"{task}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            "".join(f'{{"doc_id": {i}, "doc_hash": "{task}{i}", "acc": {v}}}\n' for i, v in enumerate(vals))
        )
        rel[task] = store.relative(path)
    icl = float(np.mean([np.mean(v) for v in scores.values()]))
    store.write(
        {
            "point_id": pid,
            "sweep": store.root.name,
            "family": family,
            "method": method,
            "lam": lam,
            "summary": {"icl": icl, "if": if_},
            "metrics": {
                "icl": {"metric": "acc", "tasks": {t: {"acc": float(np.mean(v))} for t, v in scores.items()}},
                "if": {"metric": "acc", "tasks": {"ifeval": {"acc": if_}}},
            },
            "ci": {"icl": {"low": icl - 0.04, "high": icl + 0.04}, "if": {"low": if_ - 0.03, "high": if_ + 0.03}},
            "samples": rel if samples else {},
            "config": {"suite": {"name": "icl_ifeval"}},
        }
    )
    return store.path(pid)


@pytest.fixture(scope="module")
def gain_sweep(tmp_path_factory) -> tuple[Path, dict[tuple[str, str, float], Path]]:
    """fam_a: linear and ties (IF saturates, so best lam < 1); fam_c: IF linear in lam, so only lam=1 reaches the
    floor (best lam is the instruct point); fam_d: old records without per-sample files; fam_e: one samples
    file gone."""
    d = tmp_path_factory.mktemp("gain") / "study"
    store, paths = RecordStore(d), {}
    for fam, meth in (
        ("fam_a", "linear"),
        ("fam_a", "ties"),
        ("fam_c", "linear"),
        ("fam_d", "linear"),
        ("fam_e", "linear"),
    ):
        for lam in GAIN_LAMS:
            if_ = 0.2 + 0.6 * lam if fam == "fam_c" else curve("fam_a", meth, lam)[1]
            paths[(fam, meth, lam)] = scored_record(store, fam, meth, lam, if_, samples=fam != "fam_d")
    (d / "samples" / "fam_e__linear__lam1" / "trec.jsonl").unlink()
    return d, paths


def test_best_lam_icl_gain_is_the_paired_bootstrap_of_best_vs_instruct(gain_sweep):
    sweep, paths = gain_sweep
    made = write_figures([sweep], load_table(sweep), sweep)
    table = pd.read_csv(sweep / "best_lam.csv").set_index(["family", "method"])
    assert list(table.columns[-4:]) == ["icl_gain", "icl_gain_low", "icl_gain_high", "icl_gain_p"]
    for meth in ("linear", "ties"):
        row = table.loc[("fam_a", meth)]
        best = paths[("fam_a", meth, row["best_lam"])]
        ref = paths[("fam_a", "linear", 1.0)]  # ties at lam=1 is not the instruct model: linear's lam=1 is
        assert row["best_lam"] < 1 and row["instruct_point"] == ref.stem and row["point_id"] == best.stem
        want = compare(best, ref, "icl", n_resamples=10000, seed=0)
        assert row["icl_gain"] == pytest.approx(want["diff"], abs=1e-12)
        assert row["icl_gain_low"] == pytest.approx(want["low"], abs=1e-12)
        assert row["icl_gain_high"] == pytest.approx(want["high"], abs=1e-12)
        assert row["icl_gain_p"] == pytest.approx(want["p_value"], abs=1e-12)
        # and from the raw samples, without compare: the same numbers
        (ra, root), (rb, _) = load_record(best), load_record(ref)
        sa, sb = per_sample(ra, root, "icl"), per_sample(rb, root, "icl")
        a = {t: [sa[t][i][0] for i in sorted(sa[t])] for t in sa}
        b = {t: [sb[t][i][0] for i in sorted(sb[t])] for t in sb}
        assert row["icl_gain"] == pytest.approx(row["icl"] - rb["summary"]["icl"], abs=1e-9)
        assert row["icl_gain"] == pytest.approx(np.mean([np.mean(a[t]) - np.mean(b[t]) for t in a]), abs=1e-12)
        direct = stats.paired_bootstrap(a, b, n_resamples=10000, seed=0)
        assert (row["icl_gain_low"], row["icl_gain_high"]) == pytest.approx((direct["low"], direct["high"]))
        assert row["icl_gain_low"] < row["icl_gain"] < row["icl_gain_high"] and row["icl_gain"] > 0
    same = table.loc[("fam_c", "linear")]
    assert same["best_lam"] == 1.0 and same["point_id"] == same["instruct_point"]
    assert (same["icl_gain"], same["icl_gain_low"], same["icl_gain_high"], same["icl_gain_p"]) == (0, 0, 0, 1)
    for fam, why in (("fam_d", "no per-sample file for 'sst2'"), ("fam_e", "evaluation data file not found")):
        row = table.loc[(fam, "linear")]
        assert row[["icl_gain", "icl_gain_low", "icl_gain_high", "icl_gain_p"]].isna().all(), fam
        assert why in row["note"] and row["best_lam"] < 1, (fam, row["note"])
    md = made["best_lam"].read_text().splitlines()
    assert md[2] == (
        "| family | method | suite | best λ | ICL [95% CI] | ICL gain vs instruct [95% CI] | IF [95% CI] | instruct IF "
        "| note |"
    )
    r = table.loc[("fam_a", "linear")]
    p = "p<0.001" if r["icl_gain_p"] < 0.001 else f"p={r['icl_gain_p']:.3f}"
    cell = f"+{r['icl_gain']:.3f} [{r['icl_gain_low']:.3f}, {r['icl_gain_high']:.3f}] ({p})"
    assert any(line.startswith("| fam_a | linear |") and f"| {cell} |" in line for line in md)
    assert "| +0.000 [0.000, 0.000] (p=1.000) |" in next(line for line in md if line.startswith("| fam_c |"))


def test_best_lam_without_records_has_no_gain_columns(gain_sweep):
    table = best_lam(load_table(gain_sweep[0]))
    assert not any(c.startswith("icl_gain") for c in table.columns) and "instruct_point" in table.columns


def test_an_instruct_only_family_is_a_reference_row(tmp_path):
    """A family whose base and instruct are one checkpoint (same file hashes in the record's provenance, as for
    SmolLM2-135M-Instruct here) is marked in the best-lam table; one whose hashes differ is not."""
    store = RecordStore(tmp_path / "s")
    same = {"base": {"model.safetensors": "a" * 64}, "instruct": {"model.safetensors": "a" * 64}}
    differ = {"base": {"model.safetensors": "a" * 64}, "instruct": {"model.safetensors": "b" * 64}}
    store.write({**record("fam_ref", "linear", 1.0), "provenance": {"checkpoints": same}})
    for lam in (0.0, 1.0):
        store.write({**record("fam_a", "linear", lam), "provenance": {"checkpoints": differ}})
    df = load_table(tmp_path / "s")
    assert dict(zip(df["family"], df["instruct_only"])) == {"fam_ref": True, "fam_a": False}
    notes = best_lam(df).set_index("family")["note"]
    assert notes["fam_ref"].startswith("instruct-only") and notes["fam_a"] == ""


@pytest.mark.parametrize(
    ("method", "xlabel"), [("linear", "strength λ (0 = base, 1 = instruct)"), ("ties", "strength λ")]
)
def test_parts_vs_lam_names_the_ends_only_where_they_are_base_and_instruct(tmp_path, monkeypatch, method, xlabel):
    """adapter_transfer's lam=0 is the instruct model, residual's the new base: the axis must not call it the base."""
    from mergesweep.report import figures

    store = RecordStore(tmp_path / "s")
    for lam in (0.0, 0.5, 1.0):
        store.write(record("fam_a", method, lam))
    seen = {}
    monkeypatch.setattr(figures, "_save", lambda fig, out, stem: seen.update(fig=fig, stem=stem) or [])
    figures.plot_parts_vs_lam(load_table(tmp_path / "s"), tmp_path, {"icl": "task accuracy (arith)"}, stem="x")
    top, bottom = seen["fig"].axes
    assert seen["stem"] == "x" and bottom.get_xlabel() == xlabel
    assert top.get_ylabel() == "task accuracy (arith)" and bottom.get_ylabel() == "instruction following"
    assert top.get_title() == "task accuracy and instruction following against λ (bands: 95% CI)"


def test_a_method_anchored_at_instruct_finds_its_instruct_model_at_lam_0(tmp_path):
    """Adapter transfer (instruct + lam x adapter, ``merge.anchor=instruct``): lam=0 is the instruct model, so the
    best-lam table measures the IF floor and the ICL gain against it; the same method anchored at the base has no
    instruct point at all."""
    store = RecordStore(tmp_path / "s")
    for fam, anchor in (("fam_t", "instruct"), ("fam_b", "base")):
        for lam in (0.0, 0.25, 0.5, 0.75, 1.0):
            r = record(fam, "adapter_transfer", lam)
            r["summary"] = {"icl": 0.1 + 0.3 * lam, "if": 0.4 - 0.2 * lam}  # the task rises, IF falls
            r["ci"] = {p: {"low": v - 0.02, "high": v + 0.02} for p, v in r["summary"].items()}
            r["config"] = {**r["config"], "merge": {"name": "adapter_transfer", "anchor": anchor}}
            store.write(r)
    write_figures([tmp_path / "s"], load_table(tmp_path / "s"), tmp_path / "s")
    table = pd.read_csv(tmp_path / "s" / "best_lam.csv").set_index("family")
    t = table.loc["fam_t"]
    assert t["instruct_if"] == pytest.approx(0.4) and t["instruct_point"] == "fam_t__adapter_transfer__lam0__icl_ifeval"
    assert t["best_lam"] == 0.25 and t["icl"] == pytest.approx(0.175), "highest task score with IF >= 0.4 - 0.05"
    b = table.loc["fam_b"]
    assert pd.isna(b["best_lam"]) and pd.isna(b["instruct_point"]) and "no instruct reference" in b["note"]
