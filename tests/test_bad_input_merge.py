"""Pairs whose vocabularies differ (issue 10): slerp's angle over the rows both models have, and a note in the
record (plan notes, export metadata) when base rows are dropped."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file

from mergesweep.merge import METHODS
from mergesweep.merge.sources import build_plan
from mergesweep.tools.export import export_point

HIDDEN = 16


def checkpoint(path: Path, vocab: int, seed: int, like: dict | None = None) -> dict[str, torch.Tensor]:
    """A one-layer Qwen2-named checkpoint folder; ``like``: its shared rows = ``like``'s + noise."""
    g = torch.Generator().manual_seed(seed)
    t = {
        "model.embed_tokens.weight": torch.randn(vocab, HIDDEN, generator=g),
        "model.layers.0.mlp.up_proj.weight": torch.randn(HIDDEN, HIDDEN, generator=g),
        "lm_head.weight": torch.randn(vocab, HIDDEN, generator=g),
    }
    if like is not None:
        for k, v in like.items():
            n = min(v.shape[0], t[k].shape[0])
            t[k][:n] = v[:n] + 0.5 * t[k][:n]
    path.mkdir(parents=True)
    save_file(t, str(path / "model.safetensors"))
    (path / "config.json").write_text(
        json.dumps(
            {
                "architectures": ["Qwen2ForCausalLM"],
                "model_type": "qwen2",
                "num_hidden_layers": 1,
                "vocab_size": vocab,
                "tie_word_embeddings": False,
            }
        )
    )
    return t


def reference_slerp(v0: torch.Tensor, v1: torch.Tensor, lam: float) -> np.ndarray:
    """Shoemake's slerp of two whole tensors, in float64 numpy (independent of mergesweep)."""
    a, b = v0.double().numpy(), v1.double().numpy()
    cos = float((a * b).sum() / (np.linalg.norm(a) * np.linalg.norm(b)))
    om = math.acos(cos)
    return (math.sin((1 - lam) * om) * a + math.sin(lam * om) * b) / math.sin(om)


def merged(base: Path, inst: Path, lam: float) -> tuple[dict[str, torch.Tensor], dict]:
    plan = build_plan(
        {"base": str(base), "instruct": str(inst)},
        {"name": "slerp", "knobs": {}},
        device="cpu",
        storage_device=None,
        storage_dtype=torch.float32,
        progress=False,
    )
    return {n: t.clone() for n, t in plan.build(METHODS["slerp"], lam, torch.float32)}, plan.notes


@pytest.mark.parametrize("lam", [0.3, 0.7])
def test_slerp_angle_uses_only_shared_rows(tmp_path, lam):
    b = checkpoint(tmp_path / "base", vocab=40, seed=0)
    i = checkpoint(tmp_path / "inst", vocab=48, seed=1, like=b)  # 8 added rows (new chat tokens)
    out, notes = merged(tmp_path / "base", tmp_path / "inst", lam)
    for name in ("model.embed_tokens.weight", "lm_head.weight"):
        want = reference_slerp(b[name], i[name][:40], lam)
        np.testing.assert_allclose(out[name][:40].double().numpy(), want, rtol=0, atol=2e-5)
        assert torch.equal(out[name][40:], i[name][40:]), "added rows are instruct's at every lam"
        # the angle over all 48 rows gives visibly different shared rows: the check above can fail
        padded = torch.cat([b[name], i[name][40:]])
        wrong = reference_slerp(padded, i[name], lam)[:40]
        assert np.abs(wrong - want).max() > 1e-3
    assert notes["vocab_rows_from_instruct"]["lm_head.weight"] == {"base_rows": 40, "instruct_rows": 48}
    np.testing.assert_allclose(
        out["model.layers.0.mlp.up_proj.weight"].double().numpy(),
        reference_slerp(b["model.layers.0.mlp.up_proj.weight"], i["model.layers.0.mlp.up_proj.weight"], lam),
        rtol=0,
        atol=2e-5,
    )


def test_base_with_more_rows_is_cut_with_a_note(tmp_path):
    b = checkpoint(tmp_path / "base", vocab=48, seed=0)
    i = checkpoint(tmp_path / "inst", vocab=40, seed=1, like=b)
    out, notes = merged(tmp_path / "base", tmp_path / "inst", 0.5)
    assert notes["vocab_rows_dropped"] == {
        n: {"base_rows": 48, "instruct_rows": 40} for n in ("model.embed_tokens.weight", "lm_head.weight")
    }
    name = "model.embed_tokens.weight"
    np.testing.assert_allclose(
        out[name].double().numpy(), reference_slerp(b[name][:40], i[name], 0.5), rtol=0, atol=2e-5
    )
    # the same note lands in what a user keeps: the export's metadata (and the sweep record's merge_inputs)
    exp = export_point(
        {"base": str(tmp_path / "base"), "instruct": str(tmp_path / "inst")}, {"name": "linear"}, 0.5, tmp_path / "out"
    )
    point = json.loads((exp / "mergesweep_point.json").read_text())
    assert point["notes"]["vocab_rows_dropped"][name] == {"base_rows": 48, "instruct_rows": 40}
