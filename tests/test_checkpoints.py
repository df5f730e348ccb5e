"""Checkpoint handling: shards, dtypes, vocabulary growth, tied heads, passthrough, pickle policy, corruption.

Checkpoints here are hand-written safetensors files with a minimal config.json (no transformers needed), so
each case can be exactly the oddity it tests.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from mergesweep.merge import get_method
from mergesweep.merge.plan import MergePlan
from mergesweep.merge.sources import build_plan
from mergesweep.weights.checkpoints import Checkpoint, CheckpointError, check_compatible

from .helpers import save_interleaved_shards

H, V, L = 16, 32, 2


def tensors(seed: int, vocab: int = V, tied: bool = False, dtype=torch.float32) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: (torch.randn(*s, generator=g) * 0.02).to(dtype)  # noqa: E731
    sd = {"model.embed_tokens.weight": r(vocab, H), "model.norm.weight": (1 + r(H).float()).to(dtype)}
    for i in range(L):
        sd[f"model.layers.{i}.self_attn.q_proj.weight"] = r(H, H)
        sd[f"model.layers.{i}.mlp.up_proj.weight"] = r(2 * H, H)
        sd[f"model.layers.{i}.input_layernorm.weight"] = (1 + r(H).float()).to(dtype)
    if not tied:
        sd["lm_head.weight"] = r(vocab, H)
    return sd


def write(path: Path, sd: dict, shards: int = 1, tied: bool = False, vocab: int = V) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(
        json.dumps(
            {
                "architectures": ["LlamaForCausalLM"],
                "model_type": "llama",
                "num_hidden_layers": L,
                "hidden_size": H,
                "vocab_size": vocab,
                "tie_word_embeddings": tied,
            }
        )
    )
    if shards == 1:
        save_file(sd, str(path / "model.safetensors"))
        return path
    return save_interleaved_shards(sd, path, shards)


def run(plan: MergePlan, lam: float, method: str = "linear", dtype=torch.float32, **knobs) -> dict:
    return dict(plan.build(get_method(method), lam, dtype, **knobs))


def plan_of(base: Path, inst: Path, **kw) -> MergePlan:
    return MergePlan(anchor=Checkpoint(base), finetuned=[Checkpoint(inst)], progress=False, **kw)


def test_two_shards_lazy_index(tmp_path):
    b, i = tensors(0), tensors(1)
    base = write(tmp_path / "base", b, shards=2)
    ck = Checkpoint(base)
    assert {f.name for f in ck.weight_files()} == {
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
    }
    assert set(ck.names) == set(b) and ck.shapes["lm_head.weight"] == (V, H)
    assert torch.equal(ck.get("model.layers.1.mlp.up_proj.weight"), b["model.layers.1.mlp.up_proj.weight"])
    plan = plan_of(base, write(tmp_path / "inst", i))
    out = run(plan, 0.25)
    for k in b:
        torch.testing.assert_close(out[k], b[k] + 0.25 * (i[k] - b[k]), atol=1e-7, rtol=0)
    assert plan.resident_bytes() == 2 * sum(t.numel() * 4 for t in b.values())


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("out_dtype", [torch.float32, torch.bfloat16])
def test_half_inputs_fp32_math(tmp_path, dtype, out_dtype):
    b, i = tensors(0, dtype=dtype), tensors(1, dtype=dtype)
    plan = plan_of(write(tmp_path / "b", b), write(tmp_path / "i", i))
    out = run(plan, 0.3, dtype=out_dtype)
    for k in b:
        want = (b[k].float() + 0.3 * (i[k].float() - b[k].float())).to(out_dtype)
        assert out[k].dtype == out_dtype
        tol = 1e-7 if out_dtype == torch.float32 else 2**-8 * want.abs().max().item()
        torch.testing.assert_close(out[k], want, atol=tol, rtol=0)
    # stored in the checkpoint's own dtype (lossless), not widened to fp32
    assert plan.resident_bytes() == 2 * sum(t.numel() * 2 for t in b.values())
    assert all(torch.equal(run(plan, 1.0)[k], i[k].float()) for k in i)


def test_storage_dtype_narrows_and_notes(tmp_path):
    b, i = tensors(0), tensors(1)
    plan = plan_of(write(tmp_path / "b", b), write(tmp_path / "i", i), storage_dtype=torch.bfloat16)
    assert plan.notes["stored_in"]["dtype"] == "bfloat16"
    assert plan.resident_bytes() == 2 * sum(t.numel() * 2 for t in b.values())


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("block", [-1, 40])  # 40 elements: big tensors go through in blocks of rows
def test_streaming_and_blocks_equal_whole_resident(tmp_path, dtype, block):
    base = write(tmp_path / "b", tensors(0, dtype=dtype), shards=2)
    inst = write(tmp_path / "i", tensors(1, vocab=V + 3, dtype=dtype), vocab=V + 3)
    res = plan_of(base, inst, block_elems=-1)
    other = [
        plan_of(base, inst, storage_device="disk", block_elems=block),
        plan_of(base, inst, block_elems=block),
        plan_of(base, inst, storage_device="disk", block_elems=block, reuse_outputs=True),
        plan_of(base, inst, block_elems=block, reuse_outputs=True),
    ]
    assert other[0].resident_bytes() == 0
    for method, knobs in (("linear", {}), ("lines", {}), ("ties", {"density": 0.3}), ("slerp", {})):
        for out_dtype in (torch.float32, torch.bfloat16):
            a = run(res, 0.6, method, out_dtype, **knobs)
            for plan in other:
                for lam in (0.6, 0.6):  # twice: the second point writes into recycled buffers
                    d = {k: t.clone() for k, t in plan.build(get_method(method), lam, out_dtype, **knobs)}
                    assert all(torch.equal(a[k], d[k]) for k in a), (method, out_dtype, plan.streaming)


def test_reuse_outputs_recycles_buffers(tmp_path):
    plan = plan_of(write(tmp_path / "b", tensors(0)), write(tmp_path / "i", tensors(1)), reuse_outputs=True)
    ptrs = [{k: t.data_ptr() for k, t in plan.build(get_method("linear"), lam, torch.float32)} for lam in (0, 1)]
    assert ptrs[0]["lm_head.weight"] == ptrs[1]["lm_head.weight"]


def test_streamed_reads_recycle_their_buffers(tmp_path, monkeypatch):
    """A streamed point reads every block into one kept buffer per input (a fresh buffer per block let glibc's
    heaps grow by GBs on the 0.5B bench), and the values stay those of fresh reads (test above)."""
    from mergesweep.weights.tensor_stores import SafetensorsStore

    storages, read = set(), SafetensorsStore.read_rows

    def spy(self, name, start=None, stop=None, scratch=None):
        t = read(self, name, start, stop, scratch)
        storages.add(t.untyped_storage().data_ptr())
        return t

    monkeypatch.setattr(SafetensorsStore, "read_rows", spy)
    plan = plan_of(write(tmp_path / "b", tensors(0)), write(tmp_path / "i", tensors(1)), storage_device="disk",
                   block_elems=40)  # fmt: skip
    for lam in (0.2, 0.7):
        list(plan.build(get_method("linear"), lam, torch.float32))
    assert len(storages) == 2, "reads went to fresh memory instead of the anchor's and instruct's buffers"


@pytest.mark.parametrize("tied", [False, True])
@pytest.mark.parametrize("method", ["linear", "slerp", "ties"])
def test_added_vocab_rows_come_from_instruct(tmp_path, tied, method):
    b, i = tensors(0, tied=tied), tensors(1, vocab=V + 4, tied=tied)
    plan = plan_of(write(tmp_path / "b", b, tied=tied), write(tmp_path / "i", i, tied=tied, vocab=V + 4))
    notes = plan.notes["vocab_rows_from_instruct"]
    assert notes["model.embed_tokens.weight"] == {"base_rows": V, "instruct_rows": V + 4}
    assert ("lm_head.weight" in notes) == (not tied)
    for lam in (0.0, 0.5, 1.0, 1.7):
        out = run(plan, lam, method)
        for k in notes:
            assert out[k].shape == (V + 4, H)
            assert torch.equal(out[k][V:], i[k][V:]), (k, lam)
            if method == "linear":
                torch.testing.assert_close(out[k][:V], b[k] + lam * (i[k][:V] - b[k]), atol=1e-7, rtol=0)


def test_other_shape_mismatch_names_tensor(tmp_path):
    i = tensors(1)
    i["model.layers.1.mlp.up_proj.weight"] = torch.zeros(3 * H, H)
    with pytest.raises(CheckpointError, match=r"model\.layers\.1\.mlp\.up_proj\.weight: \(32, 16\) vs \(48, 16\)"):
        plan_of(write(tmp_path / "b", tensors(0)), write(tmp_path / "i", i))
    j = tensors(1)
    j["model.layers.0.extra.weight"] = torch.zeros(2)
    with pytest.raises(CheckpointError, match=r"only in instruct: \['model\.layers\.0\.extra\.weight'\]"):
        check_compatible(Checkpoint(write(tmp_path / "b2", tensors(0))), Checkpoint(write(tmp_path / "j", j)))


def test_tied_head_copy_ignored(tmp_path):
    b = tensors(0, tied=True)
    i = tensors(1, tied=True)
    i["lm_head.weight"] = i["model.embed_tokens.weight"].clone()  # an exporter that saved the tied copy
    plan = plan_of(write(tmp_path / "b", b, tied=True), write(tmp_path / "i", i, tied=True))
    out = run(plan, 0.5)
    assert "lm_head.weight" not in out and plan.notes["tied_head_copies_ignored"] == ["lm_head.weight"]
    # an untied model keeps its head even when config is silent about tying
    u = write(tmp_path / "u", tensors(2))
    cfg = json.loads((u / "config.json").read_text())
    del cfg["tie_word_embeddings"]
    (u / "config.json").write_text(json.dumps(cfg))
    assert "lm_head.weight" in Checkpoint(u).names


def test_non_float_tensors_pass_through(tmp_path):
    b, i = tensors(0), tensors(1)
    b["model.rotary.inv_idx"] = torch.arange(7, dtype=torch.int64)
    i["model.rotary.inv_idx"] = torch.arange(7, dtype=torch.int64) * 2
    b["model.flags"] = torch.tensor([True, False])
    i["model.flags"] = torch.tensor([True, False])
    for mode in (None, "disk"):
        out = run(plan_of(write(tmp_path / "b", b), write(tmp_path / "i", i), storage_device=mode), 0.5)
        assert torch.equal(out["model.rotary.inv_idx"], b["model.rotary.inv_idx"])
        assert out["model.flags"].dtype == torch.bool


def test_pickle_refused_unless_allowed(tmp_path):
    b = tensors(0)
    d = tmp_path / "binmodel"
    write(d, b)
    (d / "model.safetensors").unlink()
    torch.save(b, d / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="allow_pickle"):
        Checkpoint(d)
    ck = Checkpoint(d, allow_pickle=True)
    assert torch.equal(ck.get("lm_head.weight"), b["lm_head.weight"])
    with pytest.raises(CheckpointError, match="allow_pickle"):
        build_plan({"base": str(d), "instruct": str(d)}, {"name": "linear"}, "cpu", None, torch.float32, False)
    plan = build_plan(
        {"base": str(d), "instruct": str(write(tmp_path / "i", tensors(1))), "allow_pickle": True},
        {"name": "linear"},
        "cpu",
        None,
        torch.float32,
        False,
    )
    assert torch.equal(run(plan, 0.0)["lm_head.weight"], b["lm_head.weight"])
    # weights_only=True: a pickle carrying an arbitrary object is refused even when pickles are allowed
    evil = tmp_path / "evil"
    write(evil, b)
    (evil / "model.safetensors").unlink()
    torch.save({"x": torch.zeros(1), "obj": _Evil()}, evil / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="pytorch_model.bin"):
        Checkpoint(evil, allow_pickle=True)


class _Evil:
    pass


def test_corrupt_safetensors_names_file(tmp_path):
    d = write(tmp_path / "b", tensors(0), shards=2)
    shard = d / "model-00002-of-00002.safetensors"
    shard.write_bytes(shard.read_bytes()[:-100])  # truncated
    with pytest.raises(CheckpointError, match="model-00002-of-00002.safetensors"):
        Checkpoint(d)
    shard.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    with pytest.raises(CheckpointError, match="model-00002-of-00002.safetensors"):
        Checkpoint(d)


def test_corrupt_index_names_file(tmp_path):
    d = write(tmp_path / "b", tensors(0), shards=2)
    idx = d / "model.safetensors.index.json"
    idx.write_text('{"weight_map": {"a": ')
    with pytest.raises(CheckpointError, match="model.safetensors.index.json"):
        Checkpoint(d)
    idx.write_text(json.dumps({"weight_map": {"a": "model-00009-of-00009.safetensors"}}))
    with pytest.raises(CheckpointError, match="missing files"):
        Checkpoint(d)
    (d / "config.json").write_text("{")
    with pytest.raises(CheckpointError, match="config.json"):
        Checkpoint(d)


def test_missing_weights_and_dirs(tmp_path):
    d = tmp_path / "empty"
    d.mkdir()
    (d / "config.json").write_text("{}")
    with pytest.raises(CheckpointError, match="no \\*.safetensors"):
        Checkpoint(d)
    with pytest.raises(CheckpointError, match="not found"):
        build_plan(
            {"base": str(tmp_path / "nope"), "instruct": str(write(tmp_path / "i", tensors(1)))},
            {"name": "linear"},
            "cpu",
            None,
            torch.float32,
            False,
        )


def _fake_hub_cache(cache: Path, repo: str, refs: dict[str, str], sd_by_commit: dict[str, dict]) -> None:
    """The Hugging Face cache layout (``models--org--name/{refs,snapshots}``) as a download would leave it."""
    root = cache / f"models--{repo.replace('/', '--')}"
    for ref, commit in refs.items():
        (root / "refs").mkdir(parents=True, exist_ok=True)
        (root / "refs" / ref).write_text(commit)
    for commit, sd in sd_by_commit.items():
        write(root / "snapshots" / commit, sd)


def test_hub_ids_resolve_from_the_local_cache_offline(tmp_path, monkeypatch):
    """``resolve`` with a hub id, offline: the cached snapshot of the asked revision, or one clear error."""
    import huggingface_hub.constants as hf_constants

    from mergesweep.weights.checkpoints import resolve

    assert hf_constants.HF_HUB_OFFLINE, "tests run offline (conftest sets HF_HUB_OFFLINE=1)"
    cache = tmp_path / "hf_cache"
    main_commit, v1_commit = "a" * 40, "b" * 40
    _fake_hub_cache(
        cache, "toy-org/tiny", {"main": main_commit, "v1": v1_commit}, {main_commit: tensors(0), v1_commit: tensors(1)}
    )
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(cache))
    got = resolve("toy-org/tiny")
    assert got.name == main_commit and torch.equal(Checkpoint(got).get("lm_head.weight"), tensors(0)["lm_head.weight"])
    got_v1 = resolve("toy-org/tiny", revision="v1")
    assert got_v1.name == v1_commit and torch.equal(
        Checkpoint(got_v1).get("lm_head.weight"), tensors(1)["lm_head.weight"]
    )
    with pytest.raises(CheckpointError, match=r"'toy-org/absent' is a hub id and this run is offline"):
        resolve("toy-org/absent")
    with pytest.raises(CheckpointError, match="checkpoint directory not found"):
        resolve(str(tmp_path / "no_such_dir"))
    local = write(tmp_path / "local", tensors(2))
    assert resolve(str(local)) == local.resolve()


@pytest.mark.parametrize(
    ("name", "embedding", "head", "vocab_sized"),
    [
        ("model.embed_tokens.weight", True, False, True),  # Llama / Qwen / Mistral / Gemma
        ("model.language_model.embed_tokens.weight", True, False, True),  # multimodal wrappers
        ("transformer.wte.weight", True, False, True),  # GPT-2 tokens
        ("transformer.wpe.weight", True, False, False),  # GPT-2 positions: rows are positions, not tokens
        ("model.decoder.embed_positions.weight", True, False, False),  # OPT positions
        ("lm_head.weight", False, True, True),
        ("output.weight", False, True, True),  # InternLM-style head
        ("model.layers.0.mlp.up_proj.weight", False, False, False),
        ("model.norm.weight", False, False, False),
    ],
)
def test_tensor_name_rules(name, embedding, head, vocab_sized):
    """The one table of embedding/head name rules that checkpoints, merge methods and the vLLM worker share."""
    from mergesweep.merge import classify
    from mergesweep.weights import tensor_names

    assert (tensor_names.is_embedding(name), tensor_names.is_head(name)) == (embedding, head)
    assert tensor_names.is_vocab_sized(name) == vocab_sized
    assert classify(name, 2).group == ("embed" if embedding else "head" if head else classify(name, 2).group)
    assert tensor_names.tied_head_copies(["model.embed_tokens.weight", "lm_head.weight"]) == ["lm_head.weight"]
    assert tensor_names.tied_head_copies(["model.layers.0.mlp.up_proj.weight", "lm_head.weight"]) == []
    assert tensor_names.tied_head_name("model.embed_tokens.weight") == "lm_head.weight"
    assert tensor_names.tied_head_name("model.norm.weight") is None


def test_offline_run_finds_a_warmed_hf_cache(tmp_path, monkeypatch):
    """Offline, a hub id resolves from the user's own Hugging Face cache: the app's environment must not move
    ``HF_HOME`` (it once pointed it into the results folder, so a cache warmed online was never seen)."""
    import os
    import subprocess
    import sys

    from mergesweep.paths import apply_env, offline_env

    snap = tmp_path / "hf" / "hub" / "models--acme--tiny" / "snapshots" / ("a" * 40)
    snap.mkdir(parents=True)
    (snap / "config.json").write_text("{}")
    (snap.parents[1] / "refs").mkdir()
    (snap.parents[1] / "refs" / "main").write_text("a" * 40)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("MERGESWEEP_CACHE", str(tmp_path / "ms"))
    for k in offline_env():
        monkeypatch.delenv(k, raising=False)
    apply_env(offline=True)
    assert os.environ["HF_HOME"] == str(tmp_path / "hf") and os.environ["HF_HUB_OFFLINE"] == "1"
    assert os.environ["VLLM_CACHE_ROOT"] == str(tmp_path / "ms" / "vllm")  # shared across sweeps, not per folder
    code = "from mergesweep.weights.checkpoints import resolve; print(resolve('acme/tiny', offline=True))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ))
    assert out.returncode == 0 and out.stdout.strip() == str(snap), out.stderr[-2000:]
