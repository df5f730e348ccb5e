"""The classic ICL suite: shipped data, both scoring modes, seeded demonstrations, the suite's aggregation.

No engine here: a deterministic stub LM (prefers the shortest continuation) goes through ``suite.run`` so the
expected accuracies can be computed independently from the data files.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from lm_eval.api.model import LM
from omegaconf import OmegaConf

from mergesweep.evals import suite as suites
from mergesweep.evals.data import DataError, read_jsonl
from mergesweep.paths import conf_dir, data_dir

SETS = ("sst2", "mr", "cr", "subj", "agnews", "trec", "cb", "rte", "copa")
TASKS = [f"icl_{s}_{m}" for m in ("mc", "fmc") for s in SETS]


def suite_cfg(name: str) -> dict:
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"suite={name}"])
    return OmegaConf.to_container(cfg.suite, resolve=True)


def load(*tasks: str) -> dict:
    return suites.task_manager(False).load(list(tasks))["tasks"]


def test_suite_lists_every_set_in_both_modes_and_validates():
    cfg = suite_cfg("icl_classic")
    assert sorted(cfg["parts"]["icl"]["tasks"]) == sorted(TASKS)
    assert cfg["parts"]["icl"]["chat_template"] is False
    suites.validate(cfg)
    both = suite_cfg("icl_ifeval")
    assert both["parts"]["icl"] == cfg["parts"]["icl"] and both["parts"]["if"]["tasks"] == ["ifeval_local"]


@pytest.mark.parametrize("name", SETS)
def test_docs_match_the_shipped_files(name):
    tasks = load(f"icl_{name}_mc", f"icl_{name}_fmc")
    mc, fmc = tasks[f"icl_{name}_mc"], tasks[f"icl_{name}_fmc"]
    raw = read_jsonl(data_dir() / "icl" / f"{name}.test.jsonl")
    mdocs, fdocs = list(mc.test_docs()), list(fmc.test_docs())
    assert len(mdocs) == len(fdocs) == len(raw) and len(list(mc.training_docs())) <= 1000
    for d, f, r in zip(mdocs[:50], fdocs[:50], raw[:50]):
        assert d["src"] == r["src"] and d["label"] == f["label"]
        gold_letter = fmc.doc_to_choice(f)[fmc.doc_to_target(f)]
        assert f"\n{gold_letter}. " in fmc.doc_to_text(f) and fmc.doc_to_text(f).endswith("\nAnswer:")
        assert len(mc.doc_to_choice(d)) == len(fmc.doc_to_choice(f)) >= 2


def test_demonstrations_are_seeded_from_the_train_split():
    task = load("icl_sst2_mc")["icl_sst2_mc"]
    doc = list(task.test_docs())[0]
    train_texts = {d["mc_prompt"] for d in task.training_docs()}

    def context(seed: int) -> str:
        task.set_fewshot_seed(seed)
        return task.fewshot_context(doc, num_fewshot=8)

    a, b, c = context(1234), context(1234), context(99)
    assert a == b and a != c
    demos = a.split("\n\n")[:-1]
    assert len(demos) == 8 and a.split("\n\n")[-1] == doc["mc_prompt"]
    assert all(d.rsplit(" ", 1)[0] in train_texts for d in demos)


def test_unknown_label_names_file_and_row(tmp_path, monkeypatch):
    shutil.copytree(data_dir() / "icl", tmp_path / "icl")
    path = tmp_path / "icl" / "rte.test.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    rows[2]["label"] = "maybe"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    monkeypatch.setenv("MERGESWEEP_DATA", str(tmp_path))
    with pytest.raises(DataError, match=rf"{path}: row 3: label 'maybe'"):
        suites.validate({"name": "t", "parts": {"icl": {"tasks": ["icl_rte_mc"], "metric": "acc"}}})


class ShortestLM(LM):
    """Prefers the shortest continuation (ties: the first option): accuracies follow from the data alone."""

    def loglikelihood(self, requests, disable_tqdm: bool = False):
        return [(-float(len(r.args[1])), False) for r in requests]

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
        raise NotImplementedError

    def generate_until(self, requests, disable_tqdm: bool = False):
        raise NotImplementedError


def expected_acc(task, limit: int) -> float:
    docs = list(task.test_docs())[:limit]
    hits = 0
    for d in docs:
        lens = [len(" " + c) for c in task.doc_to_choice(d)]
        hits += lens.index(min(lens)) == task.doc_to_target(d)
    return hits / len(docs)


def test_suite_run_aggregates_per_task_groups_and_macro(tmp_path):
    tasks = ["icl_cb_mc", "icl_copa_mc", "icl_cb_fmc", "icl_trec_fmc"]
    part = {
        "tasks": tasks,
        "metric": "acc",
        "num_fewshot": 2,
        "limit": 20,
        "chat_template": False,
        "groups": {"mc": "icl_*_mc", "fmc": "icl_*_fmc"},
    }
    out = suites.run(ShortestLM(), {"name": "t", "parts": {"icl": part}}, tmp_path, seed=7, bootstrap=200)
    built = load(*tasks)
    want = {t: expected_acc(built[t], 20) for t in tasks}
    got = out.parts["icl"]
    for t in tasks:
        assert got["tasks"][t]["acc"] == pytest.approx(want[t]), t
        assert got["n"][t] == 20 and got["num_fewshot"][t] == 2
    assert got["fewshot_seed"] == 7 and got["limit"] == 20
    assert got["groups"]["mc"] == pytest.approx((want["icl_cb_mc"] + want["icl_copa_mc"]) / 2)
    assert got["groups"]["fmc"] == pytest.approx((want["icl_cb_fmc"] + want["icl_trec_fmc"]) / 2)
    assert out.summary["icl"] == pytest.approx(sum(want.values()) / 4)
    assert out.ci["icl"]["low"] <= out.summary["icl"] <= out.ci["icl"]["high"]
    rows = [json.loads(line) for line in Path(out.samples["icl_cb_fmc"]).read_text().splitlines()]
    assert [r["doc_id"] for r in rows] == list(range(20))
    context, letter = rows[0]["arguments"][0]
    assert context.endswith("\nA. True\nB. False\nC. Neither\nAnswer:") and letter == " A"


def test_hub_suite_offline_and_uncached_fails_before_any_engine(tmp_path):
    """suite=icl_hub with an empty datasets cache: one clear line naming the datasets, no traceback, no record."""
    env = {**os.environ, "MERGESWEEP_RESULTS": str(tmp_path), "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    env["HF_HOME"] = str(tmp_path / "hf")  # an empty Hugging Face cache
    env.pop("HF_DATASETS_CACHE", None)
    proc = subprocess.run(
        [sys.executable, "-m", "mergesweep.app.cli", "suite=icl_hub", "tracking=none"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode != 0
    assert "mergesweep: error: suite 'icl_hub', part 'icl': dataset not available offline" in proc.stderr
    for name in ("arc_easy (allenai/ai2_arc, ARC-Easy)", "hellaswag (Rowan/hellaswag)", "openbookqa"):
        assert name in proc.stderr
    assert "Traceback" not in proc.stderr and "vLLM" not in proc.stderr
    assert not list(tmp_path.rglob("records/*.json"))


def test_offline_check_passes_what_datasets_can_load_offline(tmp_path):
    """The check asks ``datasets`` itself: a packaged builder on local files resolves offline, a hub id does not."""
    from mergesweep.evals import hub

    (tmp_path / "d.jsonl").write_text('{"x": 1}\n')
    files = {"test": str(tmp_path / "d.jsonl")}
    cfgs = {
        "local_json": {"dataset_path": "json", "dataset_kwargs": {"data_files": files}},
        "shipped": {"custom_dataset": "utils.load"},
        "hub": {"dataset_path": "allenai/ai2_arc", "dataset_name": "ARC-Easy"},
    }
    missing = hub.missing_offline(cfgs, list(cfgs), cache_dir=str(tmp_path / "empty_cache"))
    assert list(missing) == ["hub (allenai/ai2_arc, ARC-Easy)"] and missing["hub (allenai/ai2_arc, ARC-Easy)"]


def test_a_subset_of_the_suites_tasks_drops_groups_it_has_no_task_of(tmp_path, caplog):
    """Issue 20 item 11: ``suite.parts.icl.tasks=[icl_sst2_mc,icl_rte_mc]`` of icl_classic runs; the ``fmc`` group
    matches none of them and is dropped, with a log line and ``groups_dropped`` in the part's record entry."""
    suite = suite_cfg("icl_classic")
    suite["parts"] = {"icl": {**suite["parts"]["icl"], "tasks": ["icl_sst2_mc", "icl_rte_mc"], "limit": 4}}
    with caplog.at_level("WARNING"):
        suites.validate(suite)
    assert any("group 'fmc'" in r.getMessage() and "dropped" in r.getMessage() for r in caplog.records)
    out = suites.run(ShortestLM(), suite, tmp_path, seed=7, bootstrap=0)
    assert set(out.parts["icl"]["groups"]) == {"mc"}
    assert out.parts["icl"]["groups_dropped"] == {"fmc": "icl_*_fmc"}
