"""``mergesweep check``: configs and safetensors headers only, the same code path hub ids take after download.

Figures are checked against independent computations on the real files (``load_file`` tensor counts and bytes),
and every kind of difference between two checkpoints gets its verdict.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file, save_file

from mergesweep.checks.check import check_model, compose_config, describe, estimate_memory

from .random_pair import build_pair, tiny_config


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    root = tmp_path_factory.mktemp("check")
    return {a: build_pair(tiny_config(a), root / a, seed=0, delta=0.1) for a in ("qwen2_tied", "llama_untied")}


def cfg_for(base, inst, *extra: str) -> dict:
    return compose_config([f"model.base={base}", f"model.instruct={inst}", *extra])


def test_report_matches_the_files(pairs):
    base, inst = pairs["qwen2_tied"]
    report = check_model(cfg_for(base, inst, "engine.dtype=float32", "engine.max_model_len=512"))
    tensors = load_file(inst / "model.safetensors")
    meta = report["checkpoints"]["instruct"]
    assert report["problems"] == [] and meta.tied and meta.arch == "Qwen2ForCausalLM"
    assert meta.params == sum(t.numel() for t in tensors.values())
    assert meta.nbytes == sum(t.numel() * t.element_size() for t in tensors.values())
    mem = report["memory"]
    assert mem["engine_weights_gb"] == pytest.approx(meta.params * 4 / 1e9)
    assert mem["inputs_on_gpu_gb"] == pytest.approx(2 * meta.nbytes / 1e9)  # fp32 base + instruct, resident
    c = json.loads((inst / "config.json").read_text())
    kv = 2 * c["num_hidden_layers"] * c["num_key_value_heads"] * c["head_dim"] * 4 * 512 * 16 / 1e9
    assert mem["kv_cache_gb"] == pytest.approx(kv)
    assert "verdict: mergeable" in describe(report)


def test_storage_choices_move_the_inputs():
    on_gpu = estimate_memory(8_000_000_000, 2, 32, 8, 128)
    on_cpu = estimate_memory(8_000_000_000, 2, 32, 8, 128, storage_device="cpu")
    narrowed = estimate_memory(8_000_000_000, 4, 32, 8, 128, storage_dtype="bfloat16")
    assert on_gpu["inputs_on_gpu_gb"] == pytest.approx(32.0) and on_cpu["inputs_on_gpu_gb"] == 0
    assert on_cpu["host_gb"] == pytest.approx(32.0) and narrowed["inputs_gb"] == pytest.approx(32.0)
    assert on_gpu["gpu_gb"] - on_cpu["gpu_gb"] == pytest.approx(32.0)


def test_added_vocabulary_rows_are_explained(pairs, tmp_path):
    base, inst = pairs["qwen2_tied"]
    grown = shutil.copytree(inst, tmp_path / "grown")
    state = load_file(grown / "model.safetensors")
    emb = state["model.embed_tokens.weight"]
    state["model.embed_tokens.weight"] = torch.cat([emb, torch.zeros(16, emb.shape[1])])
    save_file(state, str(grown / "model.safetensors"), metadata={"format": "pt"})
    report = check_model(cfg_for(base, grown))
    assert report["problems"] == []
    assert any(
        "embed_tokens" in n and f"rows {emb.shape[0]}..{emb.shape[0] + 15} come from instruct" in n
        for n in report["notes"]
    ), report["notes"]


def test_differences_that_stop_a_merge(pairs):
    (qb, _), (_, li) = pairs["qwen2_tied"], pairs["llama_untied"]
    problems = check_model(cfg_for(qb, li))["problems"]
    assert any("architectures differ" in p for p in problems)
    assert any("tied but instruct is untied" in p for p in problems)
    declared = check_model(cfg_for(*pairs["qwen2_tied"], "+model.tied=false"))["problems"]
    assert declared and "model.tied is False" in declared[0]


def test_cli_one_line_errors_and_preflight_hook(pairs):
    base, inst = pairs["llama_untied"]
    ok = subprocess.run(
        [sys.executable, "-m", "mergesweep.checks.check", f"model.base={base}", f"model.instruct={inst}"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert ok.returncode == 0 and "LlamaForCausalLM, untied" in ok.stdout, ok.stderr[-2000:]
    hub = subprocess.run(
        [sys.executable, "-m", "mergesweep.checks.check", "model=qwen2_5_0_5b"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**__import__("os").environ, "HF_HOME": str(base.parent / "hf")},
    )
    assert hub.returncode != 0 and "set offline=false" in hub.stderr and hub.stderr.strip().count("\n") == 0, hub.stderr

    from omegaconf import OmegaConf

    from mergesweep.app.cli import preflight
    from mergesweep.weights.checkpoints import CheckpointError

    cfg = OmegaConf.create(cfg_for(base, inst, "offline=false", "+model.tied=true"))
    with pytest.raises(CheckpointError, match="model.tied"):
        preflight(cfg)  # the header check runs before any engine when offline=false


def test_offline_hub_id_stops_in_preflight_with_one_line():
    from omegaconf import OmegaConf

    from mergesweep.app.cli import preflight
    from mergesweep.weights.checkpoints import CheckpointError

    with pytest.raises(CheckpointError) as err:
        preflight(OmegaConf.create(compose_config(["model=qwen2_5_0_5b", "tracking=none"])))
    assert "set offline=false" in str(err.value) and "warm the HF cache" in str(err.value)
    assert "\n" not in str(err.value)


def test_different_architectures_lead_with_the_fatal_reason(pairs, tmp_path):
    """Issue 20 item 10: per-tensor shape differences are summarised after the fatal line; ``--all`` lists each."""
    base, _ = pairs["qwen2_tied"]
    _, other = build_pair(tiny_config("llama_untied", intermediate_size=96), tmp_path / "wide", seed=1, delta=0.1)

    def check(*extra: str) -> subprocess.CompletedProcess:
        args = [
            sys.executable,
            "-m",
            "mergesweep.checks.check",
            *extra,
            f"model.base={base}",
            f"model.instruct={other}",
        ]
        return subprocess.run(args, capture_output=True, text=True, timeout=120)

    short, full = check(), check("--all")
    assert short.returncode != 0 and full.returncode != 0
    assert short.stdout.splitlines()[0].startswith("cannot merge: architectures differ"), short.stdout
    problems = [x for x in short.stdout.splitlines() if x.startswith("PROBLEM:")]
    assert problems[0].startswith("PROBLEM: architectures differ") and len(problems) <= 4, problems
    assert any("tensors differ in shape (first 5:" in x and "--all" in x for x in problems), problems
    per_tensor = [x for x in full.stdout.splitlines() if x.startswith("PROBLEM:") and ": shapes (" in x]
    n = int(next(x for x in problems if "tensors differ in shape" in x).split()[1])
    assert len(per_tensor) == n > 5
    assert short.stderr.strip().splitlines() == ["mergesweep check: error: " + problems[0][len("PROBLEM: ") :]]
