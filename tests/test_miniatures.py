"""The scaffolding of the three miniature studies on the real base (issue 22), checked on the toy pair.

* The training scripts (``scripts/make_domain_lora.py``, ``scripts/make_task_lora.py``, through
  ``scripts/lora_train.py``) give byte-identical adapters for a seed, in two processes with different hash seeds.
* GIFT's guided loss is the plain loss when every confidence is 1, a confidence-weighted mean otherwise.
* The arithmetic task's test facts never occur in training, and lm-eval builds its task from the YAML.
* ``setup-real``'s derived folders: base + LoRA equals PEFT's own merge; a folder whose adapter is not committed
  is skipped with a log line.
* The committed task adapters (plain and GIFT-guided) share seed, data and budget.
* The presets compose as the study needs, and run on the toy pair (``slow``: they start an engine); the
  adapter-transfer run also feeds ``scripts/transfer_summary.py``, whose cells are checked against the records.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

from mergesweep.evals import arith
from mergesweep.paths import REPO, data_dir, models_dir
from mergesweep.tools import real_models

from .conftest import TOY
from .test_experiments import composed

sys.path.insert(0, str(REPO / "scripts"))
import lora_train

SCRIPTS = REPO / "scripts"
DOMAIN_ARGS = ["--steps", "2", "--batch", "2", "--max-len", "48", "--eval-chunks", "2"]
TASK_ARGS = ["--steps", "2", "--batch", "8", "--examples", "24", "--guided", "--instruct", str(TOY / "instruct")]


def _train(script: str, out: Path, args: list[str], hash_seed: str) -> Path:
    """Run a training script on the toy base in its own process (``PYTHONHASHSEED`` as given)."""
    cmd = [sys.executable, str(SCRIPTS / script), "--base", str(TOY / "base"), "--out", str(out), *args]
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    return out


def _digests(folder: Path) -> dict[str, str]:
    return {
        f: hashlib.sha256((folder / f).read_bytes()).hexdigest()
        for f in ("adapter_model.safetensors", "adapter_config.json")
    }


@pytest.fixture(scope="module")
def toy_adapters(tmp_path_factory) -> dict[str, Path]:
    """A domain LoRA and a GIFT-guided task LoRA, 2 steps each on the toy base."""
    root = tmp_path_factory.mktemp("toy_adapters")
    return {
        "domain": _train("make_domain_lora.py", root / "domain", DOMAIN_ARGS, "1"),
        "task": _train("make_task_lora.py", root / "task", TASK_ARGS, "1"),
    }


@pytest.mark.parametrize(
    "kind,script,args", [("domain", "make_domain_lora.py", DOMAIN_ARGS), ("task", "make_task_lora.py", TASK_ARGS)]
)
def test_training_scripts_are_deterministic_for_a_seed(toy_adapters, tmp_path, kind, script, args):
    again = _train(script, tmp_path / kind, args, "2")
    assert _digests(again) == _digests(toy_adapters[kind])
    info = json.loads((again / "training.json").read_text())
    assert len(info["losses"]) == 2 and info["seed"] == 0
    cfg = json.loads((again / "adapter_config.json").read_text())
    assert cfg["base_model_name_or_path"] == "base", "the base is named by its folder, never this machine's path"
    if kind == "domain":
        assert info["heldout_loss_before"] > 0 and info["heldout_loss_after"] > 0
    else:
        assert info["guided"] and 0 < info["mean_confidence"] <= 1


def test_held_out_loss_of_a_folder_is_the_base_loss_training_starts_from(toy_adapters, capsys):
    """``make_domain_lora.py --eval`` (for points of a sweep) scores the same chunks as training's before/after."""
    import make_domain_lora

    make_domain_lora.main(["--eval", str(TOY / "base"), *DOMAIN_ARGS[2:]])
    loss = float(capsys.readouterr().out.split("heldout_loss")[-1])
    info = json.loads((toy_adapters["domain"] / "training.json").read_text())
    assert loss == pytest.approx(info["heldout_loss_before"], abs=2e-4)
    assert info["heldout_chunks"] == 2 and info["train_chunks"] > 100


def test_guided_loss_is_the_plain_loss_when_confidences_are_one():
    gen = torch.Generator().manual_seed(0)
    logits, targets = torch.randn(37, 50, generator=gen), torch.randint(0, 50, (37,), generator=gen)
    plain = torch.nn.functional.cross_entropy(logits, targets)
    torch.testing.assert_close(lora_train.guided_loss(logits, targets, torch.ones(37)), plain)
    torch.testing.assert_close(lora_train.guided_loss(logits, targets, torch.full((37,), 0.25)), plain)
    conf = torch.rand(37, generator=gen)
    ce = torch.nn.functional.cross_entropy(logits, targets, reduction="none")
    torch.testing.assert_close(lora_train.guided_loss(logits, targets, conf), (conf * ce).sum() / conf.sum())
    assert not torch.isclose(lora_train.guided_loss(logits, targets, conf), plain)


def test_guided_answer_loss_with_unit_weights_is_the_plain_answer_loss():
    """Through the training path itself: weights aligned with labels, padding, only trained tokens counted."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(TOY / "base", dtype=torch.float32)
    rows = [([5, 6, 7, 8, 9, 10], 3), ([11, 12, 13, 14], 1), ([15, 16, 17, 18, 19], 4)]
    ones = [[1.0] * (len(ids) - start) for ids, start in rows]
    ids, mask, labels, w = lora_train.collate(rows, [0, 1, 2], 0, ones)
    assert w is not None and int(w.sum()) == sum(len(o) for o in ones)
    with torch.no_grad():
        plain = lora_train.answer_loss(model, ids, mask, labels)
        guided = lora_train.answer_loss(model, ids, mask, labels, w)
    torch.testing.assert_close(guided, plain)
    conf = lora_train.token_confidence(model, rows, 2, 0)
    assert [len(c) for c in conf] == [len(o) for o in ones]
    assert all(0 < p <= 1 for c in conf for p in c)


def test_arithmetic_test_facts_never_occur_in_training():
    test = arith.test_split()
    assert len(test) == arith.TEST_SIZE and test == arith.test_split(), "the test split is fixed"
    train_facts = {p["fact"] for p in arith.problems(5000, 0, "train")}
    assert not train_facts & {p["fact"] for p in test}
    for p in test:
        op, a, b = p["fact"].split(":")
        assert int(p["answer"]) == (int(a) + int(b) if op == "add" else int(a) - int(b)) >= 0


def test_arith_task_builds_from_its_yaml():
    from mergesweep.evals.suite import task_manager

    task = task_manager().load(["arith_word"])["tasks"]["arith_word"]
    docs = list(task.test_docs())
    assert [d["question"] for d in docs] == [p["question"] for p in arith.test_split()]
    assert docs[0]["prompt"] == arith.prompt(docs[0]["question"]) and task.doc_to_target(docs[0]) == docs[0]["answer"]


# --- setup-real: derived folders ----------------------------------------------------------------------------------
def test_a_derived_folder_is_base_plus_the_lora_as_peft_merges_it(toy_adapters, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    out = real_models.apply_lora(TOY / "base", toy_adapters["domain"], tmp_path / "target")
    base = AutoModelForCausalLM.from_pretrained(TOY / "base", dtype=torch.float32)
    merged = PeftModel.from_pretrained(base, toy_adapters["domain"]).merge_and_unload().state_dict()
    ours = load_file(out / "model.safetensors")
    changed = [k for k in ours if not torch.equal(ours[k], load_file(TOY / "base" / "model.safetensors")[k])]
    assert changed and all("proj" in k for k in changed)
    for k, v in ours.items():
        torch.testing.assert_close(v, merged[k], atol=1e-6, rtol=1e-5)


def test_setup_skips_a_derived_folder_whose_adapter_is_not_committed(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("MERGESWEEP_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("MERGESWEEP_MODELS", str(tmp_path / "models"))
    with caplog.at_level(logging.INFO, logger="mergesweep.tools.real_models"):
        assert real_models.setup([real_models.DOMAIN]) == {}
    assert "not committed yet" in caplog.text and "make_domain_lora.py" in caplog.text
    assert real_models.DOMAIN not in real_models.buildable()
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())


def test_derived_rows_name_committed_or_trainable_adapters():
    for d in real_models.DERIVED.values():
        assert d.base in real_models.SOURCES and (REPO / d.script).is_file()
    assert real_models.adapter_committed(real_models.DERIVED[real_models.SIBLING])
    assert real_models.sibling_adapter() == data_dir() / "real" / "gemma3_270m_if_v8_lora"
    assert real_models.adapter_committed(real_models.DERIVED[real_models.SIBLING_V6])


def test_the_committed_task_adapters_differ_only_in_guidance():
    """Study 2 compares guided and plain at the same seed, data, steps and budget: their recipes say so."""
    info = {
        name: json.loads((data_dir() / "real" / name / "training.json").read_text())
        for name in ("gemma3_270m_arith_lora", "gemma3_270m_arith_gift_lora")
    }
    plain, guided = info.values()
    assert (plain["guided"], guided["guided"]) == (False, True) and 0 < guided["mean_confidence"] < 1
    same = ("seed", "steps", "batch", "lr", "examples", "examples_used", "data_sha256", "max_len", "first_layer")
    assert {k: plain[k] for k in same} == {k: guided[k] for k in same}
    assert len(plain["losses"]) == len(guided["losses"]) == plain["steps"]


# --- presets ------------------------------------------------------------------------------------------------------
def test_miniature_presets_compose_with_the_study_grids():
    from mergesweep.paths import register_resolvers

    register_resolvers()
    res = composed("+experiment=mini_residual", hydra_cfg=True)
    assert res.merge.name == "residual" and res.sweep.name == "mini_residual"
    assert res.model.target == str(models_dir() / real_models.DOMAIN)
    assert res.model.instruct == str(models_dir() / real_models.SIBLING_V6), "the studies were measured on v6"
    assert [float(x) for x in res.hydra.sweeper.params.strength.split(",")] == [0, 0.25, 0.5, 0.75, 1, 1.25]
    assert res.suite.name == "real_cpu" and res.hydra.sweeper._target_.endswith("BlockSweeper")
    assert str(res.results_dir).endswith("/miniatures"), "the studies' records live in results/miniatures/"

    ada = composed("+experiment=mini_adapter_transfer", hydra_cfg=True)
    assert ada.merge.name == "adapter_transfer" and ada.suite.name == "arith_ifeval"
    assert [float(x) for x in ada.hydra.sweeper.params.strength.split(",")] == [0, 0.25, 0.5, 0.75, 1, 1.25, 1.5]
    assert list(ada.suite.parts.icl.tasks) == ["arith_word"] and list(ada.suite.parts["if"].tasks) == [
        "ifeval_sample200"
    ]
    families = ada.hydra.sweeper.params.model.split(",")
    models = [composed("+experiment=mini_adapter_transfer", f"model={m}").model for m in families]
    assert [Path(m.adapter).name for m in models] == ["gemma3_270m_arith_lora", "gemma3_270m_arith_gift_lora"]
    assert len({m.family for m in models}) == 2, "plain and guided are two families of one sweep"
    assert {m.instruct for m in models} == {str(models_dir() / real_models.SIBLING_V6)}, "the guide of the GIFT run"
    assert {k: v for k, v in models[0].items() if k not in ("family", "adapter")} == {
        k: v for k, v in models[1].items() if k not in ("family", "adapter")
    }


TOY_RUN = [
    "model=toy",
    "engine=hf",
    "tracking=none",
    "bootstrap=0",
    "storage.device=null",
    "suite.parts.icl.limit=2",
    "suite.parts.if.limit=1",
    "suite.parts.if.gen_kwargs.max_gen_toks=16",
    "strength=0",
]


def _records(tmp_path: Path, *overrides: str, lams: str) -> list[dict]:
    from mergesweep.app.cli import run_job

    cfg = composed(*TOY_RUN, f"results_dir={tmp_path}", *overrides, f"++block_strengths=[{lams}]")
    outs = run_job(cfg)
    assert [o["skipped"] for o in outs] == [False, False]
    recs = [json.loads(p.read_text()) for p in (tmp_path / cfg.sweep.name / "records").glob("*.json")]
    return sorted((r for r in recs if r["family"] == cfg.model.family), key=lambda r: r["lam"])


@pytest.mark.slow
def test_mini_residual_runs_on_the_toy_pair(toy_adapters, tmp_path):
    target = real_models.apply_lora(TOY / "base", toy_adapters["domain"], tmp_path / "target")
    recs = _records(
        tmp_path, "+experiment=mini_residual", f"+model.target={target}", "suite.parts.icl.num_fewshot=2", lams="0,1.25"
    )
    assert [(r["lam"], r["method"]) for r in recs] == [(0.0, "residual"), (1.25, "residual")]
    assert all(len(r["metrics"]["icl"]["tasks"]) == 18 for r in recs)

    import domain_loss_curve  # the study's second figure, from these records

    sweep = tmp_path / "mini_residual"  # results_dir given on the command line wins over the preset's
    domain_loss_curve.main([str(sweep), "--max-len", "48", "--eval-chunks", "2", "--batch", "2"])
    df = pd.read_csv(sweep / "domain_loss.csv").set_index("label", drop=False)
    info = json.loads((toy_adapters["domain"] / "training.json").read_text())
    assert df.loc["base", "heldout_loss"] == pytest.approx(info["heldout_loss_before"], abs=2e-4)  # training's own
    assert df.loc["new base", "heldout_loss"] == pytest.approx(info["heldout_loss_after"], abs=2e-4)
    pts = df[df["lam"].notna()].sort_values("lam")
    assert list(pts["lam"]) == [0.0, 1.25]
    assert pts["heldout_loss"].iloc[0] == pytest.approx(df.loc["new base", "heldout_loss"], abs=1e-4), "lam=0: target"
    assert abs(pts["minus_new_base"].iloc[0]) < 1e-4 and pts["minus_new_base"].iloc[1] != 0
    assert (pts["low"] <= pts["heldout_loss"]).all() and (pts["heldout_loss"] <= pts["high"]).all()
    figs = sweep / "figures"
    assert (figs / "domain_loss.png").stat().st_size > 0 and (figs / "domain_loss.pdf").stat().st_size > 0


@pytest.mark.slow
def test_mini_adapter_transfer_runs_on_the_toy_pair(toy_adapters, tmp_path):
    """Both adapters' families into one sweep folder, then the study's table and figure (``transfer_summary``)."""
    import transfer_summary

    recs = []
    for fam in (transfer_summary.PLAIN, transfer_summary.GUIDED):
        recs += _records(
            tmp_path,
            "+experiment=mini_adapter_transfer",
            f"+model.adapter={toy_adapters['task']}",
            f"model.family={fam}",
            lams="0,1.5",
        )
    assert [(r["lam"], r["method"]) for r in recs[:2]] == [(0.0, "adapter_transfer"), (1.5, "adapter_transfer")]
    for r in recs:
        assert set(r["metrics"]["icl"]["tasks"]) == {"arith_word"} and r["metrics"]["icl"]["metric"] == "exact_match"
        assert set(r["metrics"]["if"]["tasks"]) == {"ifeval_sample200"}

    sweep = tmp_path / "mini_adapter_transfer"
    transfer_summary.main([str(sweep)])
    rows = (sweep / "summary.md").read_text().splitlines()
    plain = {r["lam"]: r["summary"] for r in recs if r["family"] == transfer_summary.PLAIN}
    at15 = next(r for r in rows if r.startswith("| instruct + 1.5 x adapter |"))
    assert at15.split("|")[1:3] == [" instruct + 1.5 x adapter ", f" {plain[1.5]['icl']:.3f} "]
    # one adapter in both families here: the same model at every lam, so guided - plain is exactly 0
    assert "| lam=1.5: guided - plain | task | +0.000 | [+0.000, +0.000] |" in "\n".join(rows)
    gain = next(r for r in rows if r.startswith("| plain lam=1.5 - instruct | task |"))
    assert gain.split("|")[3].strip() == f"{plain[1.5]['icl'] - plain[0.0]['icl']:+.3f}"  # the records' own means
    assert (sweep / "figures" / "transfer_vs_lam.png").stat().st_size > 0


def test_the_real_sweep_summary_runs_each_paired_test_once():
    """A best lam at an end of the sweep is that end: lam 1 - lam 0 and lam 0 - lam 1 are one test, listed once."""
    import real_cpu_summary

    assert real_cpu_summary.tested_pairs(0.8) == [(0.8, 0.0), (0.8, 1.0), (0.0, 1.0)]
    assert real_cpu_summary.tested_pairs(1.0) == [(1.0, 0.0)]
    assert real_cpu_summary.tested_pairs(0.0) == [(0.0, 1.0)]
