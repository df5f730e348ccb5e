"""Issue 21: the summary rule (macro mean, groups, bootstrap CI) lives in ``evals.aggregate`` alone, and both the
suite (what a record says) and ``verify`` (what it recomputes) go through it; ``run_point`` returns the typed record.

No engine: a stub LM (prefers the shortest continuation) goes through the real ``suite.run`` on two shipped ICL
tasks; the record is built by the job's own ``runner._record`` and re-scored by ``verify.rescore``.
"""

from __future__ import annotations

import sys
from types import SimpleNamespace

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf, open_dict

from mergesweep.app import runner
from mergesweep.app.spec import RunSpec, SweepSpec
from mergesweep.evals import aggregate, stats
from mergesweep.evals import suite as suites
from mergesweep.merge.spec import merge_spec
from mergesweep.paths import conf_dir
from mergesweep.store.records import CI, PartMetrics, Record, RecordStore, Summary, Timings
from mergesweep.tools import verify
from tests.test_icl_classic import ShortestLM

TASKS = ["icl_cb_mc", "icl_copa_mc", "icl_cb_fmc"]
GROUPS = {"mc": "icl_*_mc", "fmc": "icl_*_fmc"}
SEED, BOOT = 7, 50


def test_the_rule_is_the_macro_mean_its_groups_and_the_seeded_bootstrap():
    per_sample = {"a_mc": [1.0, 0.0, 1.0, 1.0], "b_mc": [0.0, 1.0], "c_fmc": [1.0] * 3}
    got = aggregate.aggregate_part(per_sample, {"mc": "*_mc"}, aggregate.Bootstrap(n_resamples=200, seed=3))
    assert got.mean == pytest.approx((0.75 + 0.5 + 1.0) / 3)
    assert got.groups == {"mc": pytest.approx((0.75 + 0.5) / 2)}
    assert got.ci == CI(**stats.bootstrap_macro_ci(per_sample, n_resamples=200, seed=3))
    assert aggregate.bootstrap_ci(per_sample, aggregate.Bootstrap(n_resamples=0, seed=3)) is None
    assert aggregate.Bootstrap.of(got.ci) == aggregate.Bootstrap(n_resamples=200, seed=3, level=0.95)
    assert aggregate.summary({"if": got}) == Summary(icl=None, if_=got.mean)
    assert aggregate.cis({"icl": got, "if": aggregate.PartAggregate(mean=0.5)}) == {"icl": got.ci}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """(store, record as read back, suite result, [callers of aggregate_part]): one point through suite and job."""
    calls: list[str] = []
    real = aggregate.aggregate_part

    def spy(per_sample, groups, boot):
        calls.append(sys._getframe(1).f_globals["__name__"])
        return real(per_sample, groups, boot)

    mp = pytest.MonkeyPatch()
    mp.setattr(aggregate, "aggregate_part", spy)
    store = RecordStore(tmp_path_factory.mktemp("agg") / "s")
    suite = {"name": "t", "parts": {"icl": {"tasks": TASKS, "metric": "acc", "num_fewshot": 2, "limit": 12}}}
    suite["parts"]["icl"]["groups"] = GROUPS
    out = suites.run(ShortestLM(), suite, store.samples_dir("p"), seed=SEED, bootstrap=BOOT)
    cfg = OmegaConf.create(
        {"sweep": {"name": "s"}, "model": {"family": "toy"}, "merge": {"name": "linear"}, "seed": SEED}
    )
    run = runner._Evaluated(results=out, times=Timings(), engine={}, merge_inputs={})
    # what _record reads of the preflight: the strength, the run's sweep name and seed, and the typed merge
    merge = merge_spec({"name": "linear"})
    pre = SimpleNamespace(lam=0.5, run=RunSpec(seed=SEED, sweep=SweepSpec(name="s")), merge=merge)
    record = runner._record(cfg, {"merge": {"knobs": {}}, "suite": suite}, "p", pre, {}, store, run)  # type: ignore[arg-type]
    store.write(record)
    rec = store.read("p")
    checks, _, _ = verify.rescore(rec, store)
    mp.undo()
    return store, rec, out, checks, calls


def test_suite_record_and_verify_all_go_through_aggregate(recorded):
    store, rec, out, checks, calls = recorded
    assert calls == ["mergesweep.evals.suite", "mergesweep.tools.verify"], "both paths call aggregate.aggregate_part"
    per_sample = {t: [float(r["acc"]) for r in store.read_samples(rec, t)] for t in TASKS}
    want = aggregate.aggregate_part(per_sample, GROUPS, aggregate.Bootstrap(n_resamples=BOOT, seed=SEED))
    assert out.aggregates["icl"] == want
    assert rec.summary == Summary(icl=want.mean, if_=None) and rec.ci == {"icl": want.ci}
    assert rec.metrics["icl"].extra["groups"] == want.groups
    by_name = {c.name: c for c in checks}
    for name in ("summary.icl", "metrics.icl.groups.mc", "metrics.icl.groups.fmc", "ci.icl.low", "ci.icl.high"):
        assert by_name[name].ok and by_name[name].got == by_name[name].recorded, name
    assert all(c.ok for c in checks), [c for c in checks if not c.ok]


def test_a_perturbed_per_sample_list_is_a_summary_mismatch(recorded):
    store, rec, _, _, _ = recorded
    per_sample = {t: [float(r["acc"]) for r in store.read_samples(rec, t)] for t in TASKS}
    assert all(c.ok for c in verify._summary_checks(rec, "icl", per_sample))
    per_sample["icl_copa_mc"][0] = 1.0 - per_sample["icl_copa_mc"][0]
    bad = {c.name for c in verify._summary_checks(rec, "icl", per_sample) if not c.ok}
    assert {"summary.icl", "metrics.icl.groups.mc"} <= bad and "metrics.icl.groups.fmc" not in bad
    assert bad & {"ci.icl.low", "ci.icl.high"}


def test_run_point_returns_the_typed_record_and_jobs_derive_their_summary(tmp_path, monkeypatch):
    """A computed point returns the record it wrote; a recorded one returns the record on disk (skipped); the
    job's return value (and an objective) are derived from it."""
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"results_dir={tmp_path}", "sweep.name=s", "tracking=none"])
    made: list[Record] = []

    def evaluate(cfg, pre, pid, hashes, store, t0):
        metrics = {"icl": PartMetrics(metric="acc", tasks={"t": {"acc": 0.25}})}
        made.append(Record(pid, "s", "toy", "linear", pre.lam, summary=Summary(0.25, 0.75), metrics=metrics))
        return made[-1]

    monkeypatch.setattr(runner, "_evaluate", evaluate)
    first = runner.point_outcome(cfg)
    assert first.record is made[0] and not first.skipped
    assert first.job_result() == {"point_id": first.point_id, "skipped": False, "icl": 0.25, "if": 0.75}
    again = runner.run_point(cfg)
    assert len(made) == 1 and again == made[0], "skipped: the record on disk, not a recomputation"
    assert runner.point_outcome(cfg).job_result() == {"point_id": first.point_id, "skipped": True}
    from mergesweep.app.objective import objective_value

    with_objective = cfg.copy()
    with open_dict(with_objective):
        with_objective.objective = {"kind": "pareto", "if_floor": 0.5}
    assert objective_value(with_objective, again) == [0.25, 0.75]
    assert objective_value(with_objective, {"point_id": first.point_id}) == [0.25, 0.75]


def test_the_store_names_its_layout():
    store = RecordStore.holding("/x/sweep/records/p.json")
    assert store.root.name == "sweep" and store.path("p").parent == store.records
    rec = Record(point_id="p", sweep="s", family="f", method="m", lam=0.0, summary=Summary(), metrics={})
    rec.samples = {"t": store.relative(store.samples_dir("p") / "t.jsonl")}
    assert store.samples_file(rec, "t") == store.samples_dir("p") / "t.jsonl"
    assert Summary(icl=0.5, if_=0.25).get("if") == 0.25 and Summary(icl=0.5).get("icl") == 0.5
