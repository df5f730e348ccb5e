"""Every merge method against an independent plain-torch computation over whole state dicts.

Two tiny architectures: Llama with an untied head, Qwen2 with tied embeddings (no lm_head in the file).
'instruct', a second fine-tune and a 'target' are the base plus seeded noise. Expected values are written
here from the papers' formulas, not through mergesweep's helpers.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file, save_file

from mergesweep.merge import METHODS, MergeConfigError, describe_point, get_method, method_knobs
from mergesweep.merge.sources import build_plan

REPO = Path(__file__).resolve().parents[1]
ATOL = 1e-6


def _tiny(arch: str):
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    kw = dict(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        vocab_size=128,
        max_position_embeddings=64,
    )
    torch.manual_seed(0)
    if arch == "llama":
        return LlamaForCausalLM(LlamaConfig(tie_word_embeddings=False, **kw))
    return Qwen2ForCausalLM(Qwen2Config(tie_word_embeddings=True, **kw))


def _variant(base: Path, out: Path, seed: int, scale: float) -> Path:
    """A copy of ``base`` with seeded Gaussian noise added to every tensor."""
    out.mkdir(parents=True)
    shutil.copy(base / "config.json", out / "config.json")
    g = torch.Generator().manual_seed(seed)
    sd = {k: v + scale * torch.randn(v.shape, generator=g) for k, v in load_file(base / "model.safetensors").items()}
    for v in sd.values():  # fine-tuned weights that land near zero: base + (instruct - base) != instruct in fp32
        if v.dim() == 2:
            v.view(-1)[:3] = torch.tensor([1e-10, -3e-11, 2e-12])
    save_file(sd, out / "model.safetensors")
    return out


@pytest.fixture(scope="module", params=["llama", "qwen2"])
def pair(request, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp(request.param)
    model = _tiny(request.param)
    base = root / "base"
    model.save_pretrained(base)
    dirs = {
        "base": base,
        "instruct": _variant(base, root / "instruct", 1, 0.01),
        "ft2": _variant(base, root / "ft2", 2, 0.01),
        "target": _variant(base, root / "target", 3, 0.02),
    }
    sd = {k: load_file(v / "model.safetensors") for k, v in dirs.items()}
    return {
        "arch": request.param,
        "dirs": dirs,
        "sd": sd,
        "model": model,
        "cfg": {"base": str(base), "instruct": str(dirs["instruct"])},
    }


def merged(model_cfg: dict, name: str, lam: float, merge_extra: dict | None = None, **knobs) -> dict:
    merge_cfg = {"name": name, "knobs": knobs, **(merge_extra or {})}
    plan = build_plan(model_cfg, merge_cfg, "cpu", None, torch.float32, progress=False)
    return dict(plan.build(get_method(name), lam, torch.float32, **knobs))


def assert_close(got: dict, want: dict, atol: float = ATOL) -> None:
    assert set(got) == set(want)
    for k in want:
        assert got[k].dtype == torch.float32, k
        torch.testing.assert_close(got[k], want[k], atol=atol, rtol=0, msg=lambda m, k=k: f"{k}: {m}")


def deltas(p: dict, *names: str) -> list[dict]:
    return [{k: p["sd"][n][k] - p["sd"]["base"][k] for k in p["sd"]["base"]} for n in names]


def with_ft2(p: dict) -> dict:
    return {**p["cfg"], "finetuned": [str(p["dirs"]["ft2"])]}


# --- linear family -----------------------------------------------------------------------------------
@pytest.mark.parametrize("lam", [0.3, 0.5, 1.5, -0.25])
def test_linear_matches_formula(pair, lam):
    b, (d,) = pair["sd"]["base"], deltas(pair, "instruct")
    assert_close(merged(pair["cfg"], "linear", lam), {k: b[k] + lam * d[k] for k in b})


def test_tied_qwen_has_no_head(pair):
    out = merged(pair["cfg"], "linear", 0.5)
    assert ("lm_head.weight" in out) == (pair["arch"] == "llama")


@pytest.mark.parametrize("method", ["linear", "slerp"])
def test_endpoints_bit_exact(pair, method):
    for lam, ref in ((0.0, "base"), (1.0, "instruct")):
        out = merged(pair["cfg"], method, lam)
        for k, v in pair["sd"][ref].items():
            assert torch.equal(out[k], v), f"{method} lam={lam} {k}"


def _slerp_ref(v0: torch.Tensor, v1: torch.Tensor, t: float, thr: float = 0.9995) -> tuple[torch.Tensor, bool]:
    a, b = v0.double().flatten(), v1.double().flatten()
    cos = float(a @ b / (a.norm().clamp(min=1e-8) * b.norm().clamp(min=1e-8)))  # zero bias: cos 0, as mergekit
    if abs(cos) > thr:
        return ((1 - t) * v0.double() + t * v1.double()).float(), False
    om = math.acos(cos)
    out = math.sin((1 - t) * om) / math.sin(om) * v0.double() + math.sin(t * om) / math.sin(om) * v1.double()
    return out.float(), True


def test_slerp_matches_reference(pair):
    b, i = pair["sd"]["base"], pair["sd"]["instruct"]
    want, branches = {}, set()
    for k in b:
        want[k], spherical = _slerp_ref(b[k], i[k], 0.3)
        branches.add(spherical)
    assert branches == {True, False}, "fixture should exercise both the spherical and the linear branch"
    assert_close(merged(pair["cfg"], "slerp", 0.3), want, atol=1e-6)


def test_task_arithmetic_weighted_two_models(pair):
    b, (d1, d2) = pair["sd"]["base"], deltas(pair, "instruct", "ft2")
    want = {k: b[k] + 0.8 * (0.7 * d1[k] + 0.3 * d2[k]) for k in b}
    assert_close(merged(with_ft2(pair), "task_arithmetic", 0.8, weights=[0.7, 0.3]), want)


def test_lines_schedule(pair):
    b, (d,) = pair["sd"]["base"], deltas(pair, "instruct")
    alpha, beta, lam = 0.2, 0.6, 0.9
    want = {}
    for k in b:
        m = re.search(r"\.layers\.(\d+)\.", k)
        if m:
            s = alpha + beta * int(m.group(1)) / (2 - 1)
        elif "embed_tokens" in k:
            s = 0.1
        elif "lm_head" in k:
            s = 0.9
        else:  # model.norm.weight
            s = 0.4
        want[k] = b[k] + lam * s * d[k]
    got = merged(pair["cfg"], "lines", lam, alpha=alpha, beta=beta, embed=0.1, head=0.9, norm=0.4)
    assert_close(got, want)


def test_lines_alpha1_beta0_is_linear(pair):
    a = merged(pair["cfg"], "lines", 0.7, alpha=1.0, beta=0.0)
    b = merged(pair["cfg"], "linear", 0.7)
    assert all(torch.equal(a[k], b[k]) for k in b)


def test_per_module_scales(pair):
    b, (d,) = pair["sd"]["base"], deltas(pair, "instruct")
    scales = {"attn": 0.0, "mlp": 2.0, "norm": 0.5, "head": 0.3}  # embed missing -> 1

    def part(k: str) -> str:
        if "embed" in k:
            return "embed"
        if "lm_head" in k:
            return "head"
        if "norm" in k:
            return "norm"
        return "attn" if "self_attn" in k else "mlp"

    want = {k: b[k] + 0.6 * scales.get(part(k), 1.0) * d[k] for k in b}
    assert_close(merged(pair["cfg"], "per_module", 0.6, scales=scales), want)
    with pytest.raises(MergeConfigError, match="unknown parts"):
        merged(pair["cfg"], "per_module", 0.6, scales={"attention": 1.0})


# --- sparsifying methods -----------------------------------------------------------------------------
def _topk(d: torch.Tensor, density: float) -> torch.Tensor:
    k = int(density * d.numel())
    idx = torch.topk(d.abs().flatten(), k).indices
    out = torch.zeros(d.numel())
    out[idx] = d.flatten()[idx]
    return out.view_as(d)


def _disjoint_mean(ts: list[torch.Tensor]) -> torch.Tensor:
    st = torch.stack(ts)
    gamma = torch.sign(st.sum(0))
    sel = (torch.sign(st) == gamma) & (st != 0)
    return (st * sel).sum(0) / sel.sum(0).clamp(min=1)


def test_ties_two_models(pair):
    b, ds = pair["sd"]["base"], deltas(pair, "instruct", "ft2")
    want = {k: b[k] + 0.9 * _disjoint_mean([_topk(d[k], 0.3) for d in ds]) for k in b}
    assert_close(merged(with_ft2(pair), "ties", 0.9, density=0.3), want)


def test_ties_single_model_is_trimmed_delta(pair):
    b, (d,) = pair["sd"]["base"], deltas(pair, "instruct")
    assert_close(merged(pair["cfg"], "ties", 1.0, density=0.5), {k: b[k] + _topk(d[k], 0.5) for k in b})


def _dare(d: torch.Tensor, p: float, seed: int, name: str, i: int) -> torch.Tensor:
    s = int.from_bytes(hashlib.sha256(f"{seed}:{name}:{i}".encode()).digest()[:8], "little") & (2**63 - 1)
    keep = torch.rand(d.shape, generator=torch.Generator().manual_seed(s)) >= p
    return d * keep / (1 - p)


def test_dare_linear_and_ties(pair):
    b, ds = pair["sd"]["base"], deltas(pair, "instruct", "ft2")
    p, seed = 0.3, 7
    want_lin = {k: b[k] + 0.8 * sum(_dare(d[k], p, seed, k, i) for i, d in enumerate(ds)) for k in b}
    want_ties = {k: b[k] + 0.8 * _disjoint_mean([_dare(d[k], p, seed, k, i) for i, d in enumerate(ds)]) for k in b}
    assert_close(merged(with_ft2(pair), "dare_linear", 0.8, p=p, seed=seed), want_lin)
    assert_close(merged(with_ft2(pair), "dare_ties", 0.8, p=p, seed=seed), want_ties)
    one = {"deltas": "instruct"}
    assert_close(
        merged(pair["cfg"], "dare_ties", 0.8, one, p=p, seed=seed),
        {k: b[k] + 0.8 * _dare(ds[0][k], p, seed, k, 0) for k in b},
    )


def test_dare_p0_is_task_arithmetic(pair):
    two = with_ft2(pair)
    a, t = merged(two, "dare_linear", 0.6, p=0.0), merged(two, "task_arithmetic", 0.6)
    assert all(torch.equal(a[k], t[k]) for k in t)
    assert_close(
        merged(pair["cfg"], "dare_linear", 0.6, p=0.0, merge_extra={"deltas": "instruct"}),
        merged(pair["cfg"], "task_arithmetic", 0.6, merge_extra={"deltas": "instruct"}),
    )


def test_dare_seeded(pair):
    a1 = merged(pair["cfg"], "dare_linear", 1.0, p=0.5, seed=1)
    a2 = merged(pair["cfg"], "dare_linear", 1.0, p=0.5, seed=1)
    b = merged(pair["cfg"], "dare_linear", 1.0, p=0.5, seed=2)
    assert all(torch.equal(a1[k], a2[k]) for k in a1)
    assert any(not torch.equal(a1[k], b[k]) for k in a1)
    # a tensor's mask depends on (seed, name, index) only, not on which tensors were visited before it
    k = next(iter(pair["sd"]["base"]))
    from mergesweep.merge.base import classify

    alone = METHODS["dare_linear"](
        pair["sd"]["base"][k],
        [pair["sd"]["instruct"][k] - pair["sd"]["base"][k]],
        lam=1.0,
        info=classify(k, 2),
        p=0.5,
        seed=1,
    )
    assert torch.equal(alone, a1[k])


# --- other sources ------------------------------------------------------------------------------------
def test_residual(pair):
    t, (d,) = pair["sd"]["target"], deltas(pair, "instruct")
    cfg = {**pair["cfg"], "target": str(pair["dirs"]["target"])}
    assert_close(merged(cfg, "residual", 0.7, {"anchor": "target"}), {k: t[k] + 0.7 * d[k] for k in t})
    with pytest.raises(MergeConfigError, match="model.target"):
        merged(pair["cfg"], "residual", 0.7, {"anchor": "target"})


def test_model_stock(pair):
    b, ds = pair["sd"]["base"], deltas(pair, "instruct", "ft2")
    want = {}
    for k in b:
        x, y = ds[0][k].flatten().double(), ds[1][k].flatten().double()
        cos = float(x @ y / (x.norm() * y.norm()))
        t = 2 * cos / (1 + cos)
        want[k] = b[k] + 0.9 * t * (ds[0][k] + ds[1][k]) / 2
    assert_close(merged(with_ft2(pair), "model_stock", 0.9), want)
    with pytest.raises(MergeConfigError, match=">= 2"):
        merged(pair["cfg"], "model_stock", 0.9)


@pytest.mark.parametrize("rslora", [False, True])
def test_adapter_transfer(pair, tmp_path, rslora):
    from peft import LoraConfig, get_peft_model

    model = _tiny(pair["arch"])  # same weights as the base (seeded), PEFT wraps it in place
    peft_model = get_peft_model(
        model, LoraConfig(r=4, lora_alpha=8, use_rslora=rslora, target_modules=["q_proj", "v_proj", "down_proj"])
    )
    g = torch.Generator().manual_seed(5)
    for n, prm in peft_model.named_parameters():
        if "lora_" in n:
            prm.data = torch.randn(prm.shape, generator=g) * 0.1
    peft_model.save_pretrained(tmp_path / "adapter")
    ad = load_file(tmp_path / "adapter" / "adapter_model.safetensors")
    scale = 8 / (2.0 if rslora else 4)
    inst = pair["sd"]["instruct"]
    want, lam = dict(inst), 0.6
    for key, A in ad.items():
        if ".lora_A." in key:
            mod = key.removeprefix("base_model.model.").split(".lora_A.")[0]
            B = ad[key.replace("lora_A", "lora_B")]
            want[mod + ".weight"] = inst[mod + ".weight"] + lam * scale * (B @ A)
    cfg = {"instruct": pair["cfg"]["instruct"], "adapter": str(tmp_path / "adapter")}  # no base needed
    got = merged(cfg, "adapter_transfer", lam, {"anchor": "instruct", "deltas": "adapter"})
    assert_close(got, want)
    untouched = [k for k in inst if not re.search(r"(q_proj|v_proj|down_proj)\.weight$", k)]
    assert untouched and all(torch.equal(got[k], inst[k]) for k in untouched)

    # lam=1 equals PEFT's own merge of the adapter into the instruct model
    from peft import PeftModel

    host = _tiny(pair["arch"])
    host.load_state_dict(inst, strict=False)
    ref = PeftModel.from_pretrained(host, tmp_path / "adapter").merge_and_unload().state_dict()
    got1 = merged(cfg, "adapter_transfer", 1.0, {"anchor": "instruct", "deltas": "adapter"})
    for k in got1:
        torch.testing.assert_close(got1[k], ref[k], atol=ATOL, rtol=0)


# --- configuration -----------------------------------------------------------------------------------
def test_unknown_knob_and_method(pair):
    with pytest.raises(MergeConfigError, match="densty"):
        merged(pair["cfg"], "ties", 1.0, densty=0.3)
    with pytest.raises(ValueError, match="unknown merge method"):
        get_method("nope")


def test_describe_point():
    d = describe_point("linear", 1.25, {"a": 1})
    assert d == {"method": "linear", "lam": 1.25, "extrapolation": True, "knobs": {"a": 1}}
    assert describe_point("ties", 0.5, {})["extrapolation"] is False
    json.dumps(d)


def test_every_method_has_a_yaml_and_back():
    files = sorted((REPO / "conf" / "merge").glob("*.yaml"))
    assert {f.stem for f in files} == set(METHODS)
    for f in files:
        text = f.read_text()
        assert text.startswith("# ") and "mergesweep" in text.splitlines()[0], f
        cfg = yaml.safe_load(text)
        assert cfg["defaults"][0] == f"{f.stem}_schema", "the method's schema (merge/spec.py) names it"
        assert set(cfg.get("knobs") or {}) <= set(method_knobs(METHODS[f.stem])), f


def test_source_roles_and_errors(pair, tmp_path):
    b, (d2,) = pair["sd"]["base"], deltas(pair, "ft2")
    only_ft = {**with_ft2(pair)}
    assert_close(merged(only_ft, "task_arithmetic", 0.5, {"deltas": "finetuned"}), {k: b[k] + 0.5 * d2[k] for k in b})
    with pytest.raises(MergeConfigError, match="model.finetuned"):
        merged(pair["cfg"], "task_arithmetic", 0.5, {"deltas": "finetuned"})
    with pytest.raises(MergeConfigError, match="model.adapter"):
        merged(pair["cfg"], "adapter_transfer", 0.5, {"anchor": "instruct", "deltas": "adapter"})
    with pytest.raises(MergeConfigError, match="anchor"):
        merged(pair["cfg"], "linear", 0.5, {"anchor": "instruct"})
    with pytest.raises(MergeConfigError, match="merge.deltas"):
        merged(pair["cfg"], "linear", 0.5, {"deltas": "everything"})


def test_adapter_with_full_tensors_is_refused(pair, tmp_path):
    from peft import LoraConfig, get_peft_model

    from mergesweep.weights.checkpoints import CheckpointError

    get_peft_model(_tiny(pair["arch"]), LoraConfig(r=2, target_modules=["q_proj"])).save_pretrained(tmp_path / "ad")
    f = tmp_path / "ad" / "adapter_model.safetensors"
    sd = load_file(f)
    sd["base_model.model.model.norm.weight"] = torch.ones(64)  # what modules_to_save would store
    save_file(sd, f)
    cfg = {"instruct": pair["cfg"]["instruct"], "adapter": str(tmp_path / "ad")}
    with pytest.raises(CheckpointError, match="not LoRA factors"):
        merged(cfg, "adapter_transfer", 1.0, {"anchor": "instruct", "deltas": "adapter"})


def _peft_reference(host, adapter_dir: Path) -> dict:
    """PEFT's own merge of an adapter into ``host`` (an independent implementation of the scaling rules)."""
    from peft import PeftModel

    return PeftModel.from_pretrained(host, adapter_dir).merge_and_unload().state_dict()


def _random_lora(peft_model, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    for n, prm in peft_model.named_parameters():
        if "lora_" in n:
            prm.data = torch.randn(prm.shape, generator=g) * 0.1


def test_adapter_alpha_pattern_scales_each_module(pair, tmp_path):
    """``alpha_pattern`` overrides lora_alpha per module: v_proj scaled by 32/4, q_proj by the default 8/4."""
    from peft import LoraConfig, get_peft_model

    peft_model = get_peft_model(
        _tiny(pair["arch"]),
        LoraConfig(r=4, lora_alpha=8, alpha_pattern={"v_proj": 32}, target_modules=["q_proj", "v_proj"]),
    )
    _random_lora(peft_model, 7)
    peft_model.save_pretrained(tmp_path / "adapter")
    ad = load_file(tmp_path / "adapter" / "adapter_model.safetensors")
    inst, lam = pair["sd"]["instruct"], 0.5
    want = dict(inst)
    for key, A in ad.items():
        if ".lora_A." in key:
            mod = key.removeprefix("base_model.model.").split(".lora_A.")[0]
            scale = (32 if mod.endswith("v_proj") else 8) / 4
            want[mod + ".weight"] = inst[mod + ".weight"] + lam * scale * (ad[key.replace("lora_A", "lora_B")] @ A)
    cfg = {"instruct": pair["cfg"]["instruct"], "adapter": str(tmp_path / "adapter")}
    assert_close(merged(cfg, "adapter_transfer", lam, {"anchor": "instruct", "deltas": "adapter"}), want)
    host = _tiny(pair["arch"])
    host.load_state_dict(inst, strict=False)
    ref = _peft_reference(host, tmp_path / "adapter")
    got1 = merged(cfg, "adapter_transfer", 1.0, {"anchor": "instruct", "deltas": "adapter"})
    for k in got1:
        torch.testing.assert_close(got1[k], ref[k], atol=ATOL, rtol=0, msg=lambda m, k=k: f"{k}: {m}")


def test_adapter_fan_in_fan_out_on_gpt2_conv1d(tmp_path):
    """GPT-2 stores Conv1D weights as (in, out): PEFT's ``fan_in_fan_out`` delta is ``(B @ A)^T``."""
    from peft import LoraConfig, get_peft_model
    from transformers import GPT2Config, GPT2LMHeadModel

    def gpt2():
        torch.manual_seed(0)
        return GPT2LMHeadModel(GPT2Config(n_embd=64, n_layer=2, n_head=2, vocab_size=128, n_positions=64))

    gpt2().save_pretrained(tmp_path / "instruct")
    peft_model = get_peft_model(
        gpt2(), LoraConfig(r=4, lora_alpha=8, fan_in_fan_out=True, target_modules=["c_attn", "c_fc"])
    )
    _random_lora(peft_model, 9)
    peft_model.save_pretrained(tmp_path / "adapter")
    inst = load_file(tmp_path / "instruct" / "model.safetensors")
    ad = load_file(tmp_path / "adapter" / "adapter_model.safetensors")
    cfg = {"instruct": str(tmp_path / "instruct"), "adapter": str(tmp_path / "adapter")}
    got = merged(cfg, "adapter_transfer", 0.5, {"anchor": "instruct", "deltas": "adapter"})
    key = "transformer.h.1.attn.c_attn.weight"
    A, B = (ad[f"base_model.model.{key[:-7]}.lora_{x}.weight"] for x in "AB")
    assert inst[key].shape == (64, 192)  # (in, out): the transpose is what is under test
    torch.testing.assert_close(got[key], inst[key] + 0.5 * 2.0 * (B @ A).T, atol=ATOL, rtol=0)
    ref = _peft_reference(gpt2(), tmp_path / "adapter")
    got1 = merged(cfg, "adapter_transfer", 1.0, {"anchor": "instruct", "deltas": "adapter"})
    changed = [k for k in got1 if not torch.equal(got1[k], inst[k])]
    assert sorted(changed) == sorted(
        f"transformer.h.{i}.{m}.weight" for i in range(2) for m in ("attn.c_attn", "mlp.c_fc")
    )
    for k in got1:
        torch.testing.assert_close(got1[k], ref[k], atol=ATOL, rtol=0, msg=lambda m, k=k: f"{k}: {m}")
