"""The lm-eval adapter over a running vLLM engine, through lm-eval's public ``LM`` interface, against transformers.

What is checked (both untested before): ``loglikelihood_rolling`` (perplexity-style scoring, in windows when the
text is longer than the model length) and context truncation (a request longer than the engine's
``max_model_len`` keeps its last tokens). The reference is a plain transformers forward on the instruct
checkpoint (lam=1 is exactly instruct), with lm-eval's documented window rule written out here.
"""

from __future__ import annotations

import gc

import pytest
import torch

from mergesweep.engines.spec import VLLMEngineSpec

pytestmark = pytest.mark.slow
MAX_LEN = 96
ENGINE_CFG = VLLMEngineSpec(dtype="float32", max_model_len=MAX_LEN, kv_cache_gib=1, max_gen_toks=8)


@pytest.fixture(scope="module")
def adapter(pairs):
    """(lm-eval LM over vLLM at lam=1, transformers instruct model, tokenizer)."""
    from transformers import AutoModelForCausalLM

    from mergesweep.engines.vllm_engine import VLLMEngine

    base_dir, inst_dir = pairs["qwen2_tied"]
    engine = VLLMEngine(str(inst_dir), ENGINE_CFG)
    try:
        engine.prepare({"base": str(base_dir), "instruct": str(inst_dir)}, {"name": "linear"}, None, "float32")
        engine.set_point("linear", 1.0, {})
        hf = AutoModelForCausalLM.from_pretrained(inst_dir, dtype=torch.float32).eval()
        yield engine.lm(), hf, engine.lm().tokenizer
    finally:
        engine.close()
        gc.collect()


def logprobs(hf, ids: list[int]) -> torch.Tensor:
    """log p(ids[j] | ids[:j]) for j >= 1, from one transformers forward."""
    with torch.no_grad():
        lp = hf(torch.tensor([ids])).logits[0].double().log_softmax(-1)
    return lp[:-1].gather(1, torch.tensor(ids[1:])[:, None])[:, 0]


def text_of(tok, n_tokens: int) -> str:
    words = " ".join(f"key{i % 17} {('red', 'blue', 'green')[i % 3]}" for i in range(n_tokens))
    ids = tok.encode(words, add_special_tokens=False)[:n_tokens]
    assert len(ids) == n_tokens
    return tok.decode(ids)


def rolling_reference(hf, tokens: list[int], prefix: int, window: int) -> float:
    """lm-eval's rolling rule (context_len=1): tokens predicted in chunks of ``window``; each chunk conditioned on
    the ``window`` tokens before its end (the first on the prefix token)."""
    full, total = [prefix, *tokens], 0.0
    for start in range(0, len(tokens), window):
        end = min(start + window, len(tokens))
        lo = max(0, end - window)
        lp = logprobs(hf, full[lo : end + 1])
        total += float(lp[-(end - start) :].sum())
    return total


def test_rolling_loglikelihood_short_and_windowed(adapter):
    from lm_eval.api.instance import Instance

    lm, hf, tok = adapter
    short, long_ = text_of(tok, 40), text_of(tok, 3 * MAX_LEN + 7)
    got = lm.loglikelihood_rolling(
        [Instance("loglikelihood_rolling", {}, (t,), i) for i, t in enumerate([short, long_])], disable_tqdm=True
    )
    assert len(got) == 2
    eos = tok.eos_token_id
    short_ids = tok.encode(short, add_special_tokens=False)
    # fits in one window: the whole text given the prefix token, nothing else
    assert got[0] == pytest.approx(float(logprobs(hf, [eos, *short_ids]).sum()), abs=2e-3)
    long_ids = tok.encode(long_, add_special_tokens=False)
    window = MAX_LEN - 2  # the adapter's windows: room for the prefix token and the one token vLLM generates
    want = rolling_reference(hf, long_ids, eos, window)
    assert got[1] == pytest.approx(want, abs=5e-3)
    # windowing matters here: the full-context score of the same text is a different number
    assert abs(float(logprobs(hf, [eos, *long_ids]).sum()) - want) > 0.05


def test_long_context_keeps_its_last_tokens(adapter):
    from lm_eval.api.instance import Instance

    lm, hf, tok = adapter
    ctx, cont = text_of(tok, 2 * MAX_LEN), " key3 blue"
    ((ll, greedy),) = lm.loglikelihood([Instance("loglikelihood", {}, (ctx, cont), 0)], disable_tqdm=True)
    ctx_ids, cont_ids = tok.encode(ctx, add_special_tokens=False), tok.encode(cont, add_special_tokens=False)
    kept = (ctx_ids + cont_ids)[-(MAX_LEN - 1) :]  # lm-eval's vLLM rule: the last max_length - 1 tokens
    lp = logprobs(hf, kept)[-len(cont_ids) :]
    assert ll == pytest.approx(float(lp.sum()), abs=2e-3)
    assert abs(float(logprobs(hf, ctx_ids + cont_ids)[-len(cont_ids) :].sum()) - ll) > 1e-3, "truncation had no effect"
    with torch.no_grad():
        logits = hf(torch.tensor([kept])).logits[0]
    want_greedy = all(int(logits[len(kept) - len(cont_ids) - 1 + j].argmax()) == t for j, t in enumerate(cont_ids))
    assert greedy == want_greedy


def test_generation_from_a_context_longer_than_the_model(adapter):
    from lm_eval.api.instance import Instance

    lm, hf, tok = adapter
    ctx = text_of(tok, 2 * MAX_LEN)
    (out,) = lm.generate_until(
        [Instance("generate_until", {}, (ctx, {"until": ["\n\n"], "max_gen_toks": 8}), 0)], disable_tqdm=True
    )
    kept = tok.encode(ctx, add_special_tokens=False)[-(MAX_LEN - 8) :]  # room for the 8 generated tokens
    with torch.no_grad():
        ids = hf.generate(torch.tensor([kept]), max_new_tokens=8, do_sample=False, pad_token_id=tok.eos_token_id)
    want = tok.decode(ids[0, len(kept) :], skip_special_tokens=True).split("\n\n")[0]
    assert out == want
