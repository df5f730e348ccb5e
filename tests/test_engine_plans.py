"""An engine's merge inputs: reloaded exactly when the family or the merge's resolved roles change, and the same
points whatever device the inputs are stored on.

Runs the transformers engine (the same ``Engine.prepare`` cache as vLLM's) on the tiny tied Qwen2 pair; expected
weights are computed here from the safetensors files, not through mergesweep.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from mergesweep.engines.spec import HFEngineSpec

ENGINE = HFEngineSpec(dtype="float32", device="cpu")


def _weights(engine) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in engine.model.state_dict().items()}


def _second_finetune(base_dir: Path, out: Path) -> Path:
    """Another fine-tune of the same base: base + seeded noise (config copied; no tokenizer needed)."""
    out.mkdir()
    shutil.copy(base_dir / "config.json", out / "config.json")
    g = torch.Generator().manual_seed(11)
    sd = {k: v + 0.2 * torch.randn(v.shape, generator=g) for k, v in load_file(base_dir / "model.safetensors").items()}
    save_file(sd, out / "model.safetensors")
    return out


def test_plan_cache_follows_family_and_resolved_roles(pairs, tmp_path):
    from mergesweep.engines.hf_engine import HFEngine

    base_dir, inst_dir = pairs["qwen2_tied"]
    ft2 = _second_finetune(base_dir, tmp_path / "ft2")
    b, i, f = (load_file(d / "model.safetensors") for d in (base_dir, inst_dir, ft2))
    family = {"base": str(base_dir), "instruct": str(inst_dir), "finetuned": [str(ft2)]}
    engine = HFEngine(str(inst_dir), ENGINE)
    try:
        assert engine.prepare(family, {"name": "linear"}, None, "float32")["reused"] is False
        assert len(engine.plan.finetuned) == 1
        # another method over the same roles keeps the resident inputs
        assert engine.prepare(family, {"name": "slerp"}, None, "float32")["reused"] is True
        # task_arithmetic spells no roles, yet its default is every fine-tune: the plan must be rebuilt with both
        assert engine.prepare(family, {"name": "task_arithmetic"}, None, "float32")["reused"] is False
        assert len(engine.plan.finetuned) == 2
        explicit = {"name": "ties", "anchor": "base", "deltas": "all"}
        assert engine.prepare(family, explicit, None, "float32")["reused"] is True  # same resolved roles
        engine.prepare(family, {"name": "task_arithmetic"}, None, "float32")
        engine.set_point("task_arithmetic", 1.0, {})
        got = _weights(engine)
        for k in b:
            torch.testing.assert_close(got[k], b[k] + (i[k] - b[k]) + (f[k] - b[k]), atol=1e-6, rtol=0)
        # another family (the pair read the other way round): reloaded, and lam=0 is its base (our instruct)
        swapped = {"base": str(inst_dir), "instruct": str(base_dir)}
        assert engine.prepare(swapped, {"name": "linear"}, None, "float32")["reused"] is False
        engine.set_point("linear", 0.0, {})
        got = _weights(engine)
        assert all(torch.equal(got[k], i[k]) for k in i)
    finally:
        engine.close()


def _devices(engine_dev: str, storage: str | None) -> None:
    if "cuda" in (engine_dev, storage) and not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")


@pytest.mark.parametrize(
    ("engine_dev", "storage"), [("cpu", "disk"), ("cpu", "cuda"), ("cuda", "cpu"), ("cuda", "disk")]
)
def test_storage_device_other_than_engine_device(pairs, engine_dev, storage):
    """Inputs kept elsewhere (CPU beside a GPU engine, a GPU beside a CPU engine, or re-read from disk per point)
    give the same weights as an independent merge, at every point."""
    from mergesweep.engines.hf_engine import HFEngine

    _devices(engine_dev, storage)
    base_dir, inst_dir = pairs["llama_untied"]
    b, i = (load_file(d / "model.safetensors") for d in (base_dir, inst_dir))
    engine = HFEngine(str(inst_dir), replace(ENGINE, device=engine_dev))
    try:
        info = engine.prepare(
            {"base": str(base_dir), "instruct": str(inst_dir)}, {"name": "linear"}, storage, "float32"
        )
        if storage == "disk":
            assert info["resident_bytes"] == 0
        for lam in (0.25, 1.0, 0.5):
            engine.set_point("linear", lam, {})
            got = _weights(engine)
            for k in b:
                want = b[k] + lam * (i[k] - b[k])
                torch.testing.assert_close(got[k].cpu(), want, atol=1e-6, rtol=0, msg=lambda m, k=k: f"{k}: {m}")
    finally:
        engine.close()
