"""The paper presets (``+experiment=...``) compose as the study needs and run offline on the toy pair.

Instruction residual and adapter transfer need a third checkpoint / a LoRA; both are built here from the toy
pair (a "continued pre-training" target = base + seeded noise; a LoRA = the rank-4 SVD of instruct - base on
q/v projections). Their points are checked against an independent route: the same weights merged by hand,
saved as a checkpoint and scored as a plain ``linear`` lam=1 point; per-sample log-likelihoods must agree.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from safetensors.torch import load_file, save_file

from mergesweep.app.cli import run_job
from mergesweep.paths import conf_dir

from .conftest import TOY
from .test_sweep import mergesweep

STUDY_LAMS = [round(0.1 * i, 1) for i in range(11)]
TINY = [
    "model=toy",
    "engine=hf",
    "tracking=none",
    "suite=toy",
    "suite.parts.icl.limit=4",
    "suite.parts.if.limit=1",
    "bootstrap=0",
]


def composed(*overrides: str, hydra_cfg: bool = False):
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides), return_hydra_config=hydra_cfg)


@pytest.mark.parametrize(
    "name,method",
    [("partial_adaptation", "linear"), ("instruction_residual", "residual"), ("adapter_transfer", "adapter_transfer")],
)
def test_presets_compose_with_the_study_grid(name, method):
    cfg = composed(f"+experiment={name}", hydra_cfg=True)
    params = cfg.hydra.sweeper.params
    assert cfg.merge.name == method and cfg.sweep.name == name
    assert [float(x) for x in params.strength.split(",")] == STUDY_LAMS
    assert cfg.hydra.sweeper._target_.endswith("BlockSweeper"), "presets run warm-engine blocks"
    assert set(cfg.suite.parts) == {"icl", "if"}


def test_partial_adaptation_covers_families_and_three_suites():
    cfg = composed("+experiment=partial_adaptation", hydra_cfg=True)
    families = cfg.hydra.sweeper.params.model.split(",")
    names = [composed("+experiment=partial_adaptation", f"model={f}").model.family for f in families]  # all exist
    assert len(names) >= 10 and len(set(names)) == len(names), "no family twice (e.g. under an alias)"
    residual = composed("+experiment=instruction_residual", hydra_cfg=True).hydra.sweeper.params.model.split(",")
    assert all(composed("+experiment=instruction_residual", f"model={f}").model.target for f in residual)
    assert not set(residual) & set(families)
    assert cfg.hydra.sweeper.params.suite.split(",") == ["icl_ifeval", "alpaca_judged"]
    tasks = [t for part in cfg.suite.parts.values() for t in part.tasks]
    assert "icl_sst2_mc" in tasks and "ifeval_local" in tasks
    judged = composed("+experiment=partial_adaptation", "suite=alpaca_judged", "judge_model=my-judge")
    assert judged.suite.parts["if"].judge.model == "my-judge"


@pytest.mark.slow
def test_partial_adaptation_runs_on_the_toy_pair(tmp_path):
    """The preset itself (icl_classic + ifeval suite, block sweeper) as a real multirun, tiny limits."""
    mergesweep(
        tmp_path,
        "+experiment=partial_adaptation",
        "model=toy",
        "suite=icl_ifeval",
        "strength=0,1",
        "engine=hf",
        "tracking=none",
        "suite.parts.icl.limit=2",
        "suite.parts.icl.num_fewshot=2",
        "suite.parts.if.limit=1",
        "+suite.parts.if.gen_kwargs={max_gen_toks:64}",
        "bootstrap=0",
    )
    recs = sorted(
        (json.loads(p.read_text()) for p in (tmp_path / "partial_adaptation" / "records").glob("*.json")),
        key=lambda r: r["lam"],
    )
    assert [(r["lam"], r["family"], r["method"]) for r in recs] == [(0.0, "toy", "linear"), (1.0, "toy", "linear")]
    assert [r["engine"]["reused"] for r in recs] == [False, True], "one block, one engine"
    for r in recs:
        assert len(r["metrics"]["icl"]["tasks"]) == 18 and set(r["metrics"]["if"]["tasks"]) == {"ifeval_local"}
        assert all(n == 2 for n in r["metrics"]["icl"]["n"].values())


@pytest.mark.slow
def test_partial_adaptation_judged_suite_on_the_toy_pair(tmp_path):
    """The alpaca_judged suite of the preset, judged in-process by the toy instruct model (numbers meaningless)."""
    cfg = composed(
        "+experiment=partial_adaptation",
        "model=toy",
        "engine=hf",
        "tracking=none",
        "suite=alpaca_judged",
        "suite.parts.if.limit=2",
        "+suite.parts.if.gen_kwargs={max_gen_toks:32}",
        "suite.parts.if.judge.kind=hf",
        "judge_model=${model.instruct}",
        "+suite.parts.if.judge.dtype=float32",
        "suite.parts.if.judge.agreement_limit=0",
        "bootstrap=0",
        "strength=1",
        f"results_dir={tmp_path}",
    )
    out = run_job(cfg)
    assert out["icl"] is None and 0.0 <= out["if"] <= 1.0
    rec = json.loads(next((tmp_path / "partial_adaptation" / "records").glob("*.json")).read_text())
    assert rec["metrics"]["if"]["n"] == {"alpaca_eval_local": 2} and "judge" in rec["metrics"]["if"]


# --- residual and adapter transfer: built from the toy pair, checked against hand-merged checkpoints ---------------
def _checkpoint_like(src: Path, dst: Path, tensors: dict[str, torch.Tensor]) -> Path:
    shutil.copytree(src, dst)
    save_file({k: v.contiguous() for k, v in tensors.items()}, dst / "model.safetensors", metadata={"format": "pt"})
    return dst


def _lora_from_pair(dst: Path, rank: int = 4) -> tuple[Path, dict[str, torch.Tensor]]:
    """A PEFT LoRA dir on q/v projections (rank-``rank`` SVD of instruct - base); returns it and its B@A deltas."""
    from peft import LoraConfig

    base, inst = load_file(TOY / "base" / "model.safetensors"), load_file(TOY / "instruct" / "model.safetensors")
    factors, deltas = {}, {}
    for name in base:
        if not name.endswith(("q_proj.weight", "v_proj.weight")):
            continue
        u, s, vh = torch.linalg.svd(inst[name] - base[name], full_matrices=False)
        b, a = u[:, :rank] * s[:rank], vh[:rank]
        module = name[: -len(".weight")]
        factors[f"base_model.model.{module}.lora_A.weight"] = a.contiguous()
        factors[f"base_model.model.{module}.lora_B.weight"] = b.contiguous()
        deltas[name] = b @ a  # lora_alpha == r: scale 1
    dst.mkdir()
    LoraConfig(r=rank, lora_alpha=rank, target_modules=["q_proj", "v_proj"]).save_pretrained(str(dst))
    save_file(factors, dst / "adapter_model.safetensors")
    return dst, deltas


def _icl_logliks(results: Path, rec_point: str) -> list[float]:
    rows = []
    for task in ("toy_recall_colors", "toy_recall_animals", "toy_recall_numbers"):
        path = results / "samples" / rec_point / f"{task}.jsonl"
        rows += [resp[0][0] for line in path.read_text().splitlines() for resp in json.loads(line)["resps"]]
    return rows


def _reference(tmp_path: Path, instruct: Path, name: str) -> list[float]:
    """The plain linear lam=1 point of (toy base, ``instruct``): just ``instruct``'s own weights, scored."""
    out = run_job(
        composed(
            *TINY,
            "merge=linear",
            "strength=1",
            f"model.instruct={instruct}",
            f"sweep.name={name}",
            f"results_dir={tmp_path}",
        )
    )
    return _icl_logliks(tmp_path / name, out["point_id"])


def _block(tmp_path: Path, *overrides: str) -> dict[float, list[float]]:
    """Run the preset's block job for lam 0 and 1 in this process; {lam: ICL log-likelihoods}."""
    cfg = composed(*overrides, *TINY, "strength=0", "++block_strengths=[0,1]", f"results_dir={tmp_path}")
    outs = run_job(cfg)
    assert [o["skipped"] for o in outs] == [False, False]
    return {lam: _icl_logliks(tmp_path / cfg.sweep.name, o["point_id"]) for lam, o in zip((0.0, 1.0), outs)}


def _close(a: list[float], b: list[float]) -> bool:
    return len(a) == len(b) > 0 and max(abs(x - y) for x, y in zip(a, b)) < 1e-4


@pytest.mark.slow
def test_instruction_residual_preset_on_a_toy_target(tmp_path):
    base, inst = load_file(TOY / "base" / "model.safetensors"), load_file(TOY / "instruct" / "model.safetensors")
    gen = torch.Generator().manual_seed(0)
    target_w = {k: v + 0.02 * v.std() * torch.randn(v.shape, generator=gen) for k, v in base.items()}
    target = _checkpoint_like(TOY / "base", tmp_path / "target", target_w)
    by_hand = _checkpoint_like(
        TOY / "instruct", tmp_path / "residual_by_hand", {k: target_w[k] + (inst[k] - base[k]) for k in base}
    )
    got = _block(tmp_path, "+experiment=instruction_residual", f"+model.target={target}")
    assert _close(got[0.0], _reference(tmp_path, target, "ref_target")), "lam=0 must be the target itself"
    assert _close(got[1.0], _reference(tmp_path, by_hand, "ref_residual")), "lam=1: target + (instruct - base)"
    assert not _close(got[0.0], got[1.0])


@pytest.mark.slow
def test_adapter_transfer_preset_on_a_toy_lora(tmp_path):
    adapter, deltas = _lora_from_pair(tmp_path / "lora")
    inst = load_file(TOY / "instruct" / "model.safetensors")
    by_hand = _checkpoint_like(
        TOY / "instruct", tmp_path / "adapter_by_hand", {k: v + deltas.get(k, 0) for k, v in inst.items()}
    )
    got = _block(tmp_path, "+experiment=adapter_transfer", f"+model.adapter={adapter}")
    assert _close(got[0.0], _reference(tmp_path, TOY / "instruct", "ref_instruct")), "lam=0 must be instruct"
    assert _close(got[1.0], _reference(tmp_path, by_hand, "ref_adapter")), "lam=1: instruct + B@A"
    assert not _close(got[0.0], got[1.0])


# --- Optuna over per-module strengths ------------------------------------------------------------------------------
def test_optuna_presets_compose():
    single = composed("+experiment=optuna_per_module", hydra_cfg=True)
    assert single.merge.name == "per_module" and single.objective.kind == "icl_if_floor"
    assert set(single.hydra.sweeper.params) == {
        "merge.knobs.scales.attn",
        "merge.knobs.scales.mlp",
        "merge.knobs.scales.embed",
    }
    pareto = composed("+experiment=optuna_pareto", hydra_cfg=True)
    assert list(pareto.hydra.sweeper.direction) == ["maximize", "maximize"] and pareto.objective.kind == "pareto"
    assert pareto.hydra.sweeper.sampler._target_.endswith("NSGAIISampler")


@pytest.mark.slow
def test_optuna_finds_the_best_feasible_trial_on_the_toy_pair(tmp_path):
    """2 trials; Optuna's reported best equals the best feasible point computed from the records themselves."""
    import yaml

    floor = 0.3
    mergesweep(
        tmp_path,
        "+experiment=optuna_per_module",
        "hydra.sweeper.n_trials=2",
        f"objective.if_floor={floor}",
        "model=toy",
        "engine=hf",
        "tracking=none",
        "suite.parts.icl.limit=4",
        "suite.parts.if.limit=2",
        "bootstrap=0",
    )
    recs = [json.loads(p.read_text()) for p in (tmp_path / "optuna_per_module" / "records").glob("*.json")]
    assert len(recs) == 2 and all(r["method"] == "per_module" for r in recs)

    def value(r):  # the floor rule, written out independently of mergesweep.app.objective
        icl, if_ = r["summary"]["icl"], r["summary"]["if"]
        return icl if if_ >= floor else if_ - floor

    top = max(value(r) for r in recs)
    found = next((tmp_path / "optuna_per_module" / "hydra").glob("*/optimization_results.yaml"))
    result = yaml.safe_load(found.read_text())
    assert result["best_value"] == pytest.approx(top)
    params = {part: result["best_params"][f"merge.knobs.scales.{part}"] for part in ("attn", "mlp", "embed")}
    assert any(
        value(r) == pytest.approx(top) and all(r["knobs"]["scales"][k] == pytest.approx(v) for k, v in params.items())
        for r in recs
    ), "the best parameters are those of a best record"


@pytest.mark.parametrize(
    "icl,if_,kind,expected",
    [(0.7, 0.6, "icl_if_floor", 0.7), (0.9, 0.4, "icl_if_floor", -0.1), (0.9, 0.4, "pareto", [0.9, 0.4])],
)
def test_objective_reads_the_record(tmp_path, icl, if_, kind, expected):
    from omegaconf import OmegaConf

    from mergesweep.app.objective import objective_value
    from mergesweep.store.records import RecordStore

    RecordStore(tmp_path / "s").write(
        {
            "point_id": "p",
            "family": "toy",
            "method": "per_module",
            "lam": 1.0,
            "summary": {"icl": icl, "if": if_},
            "metrics": {},
        }
    )
    cfg = OmegaConf.create(
        {"results_dir": str(tmp_path), "sweep": {"name": "s"}, "objective": {"kind": kind, "if_floor": 0.5}}
    )
    assert objective_value(cfg, {"point_id": "p", "skipped": True}) == pytest.approx(expected)
