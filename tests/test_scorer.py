"""The prefix-cache scorer gives the reference scorer's numbers (engines/scoring.py), and really reads the cache.

The reference is the plain ``prompt_logprobs`` path (one fresh prompt per request, lm-eval's vLLM logic); both run
on the same engine (same weights), and every engine output is recorded so the tests can see cache hits.
"""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from mergesweep.engines.spec import VLLMEngineSpec
from mergesweep.errors import ConfigError
from tests.conftest import TOY

ENGINE_CFG = VLLMEngineSpec(dtype="float32", kv_cache_gib=1)
TOL = 1e-3


class Recorder:
    """Wraps ``llm.generate`` to keep every ``RequestOutput`` (cache hits live there)."""

    def __init__(self, llm) -> None:
        self.llm, self.outs = llm, []
        self._generate = llm.generate

    def generate(self, *a, **kw):
        outs = self._generate(*a, **kw)
        self.outs.extend(outs)
        return outs

    def __getattr__(self, name):
        return getattr(self.llm, name)

    def cached_tokens(self) -> int:
        out, self.outs = sum(o.num_cached_tokens or 0 for o in self.outs), []
        return out


@pytest.fixture(scope="module", params=["toy", "qwen2_tied", "llama_untied"])
def engine(request, pairs):
    """One engine per model (pytest groups the tests by it): the toy pair's base, the tiny pairs' instruct."""
    from mergesweep.engines.vllm_engine import VLLMEngine

    name = request.param
    model = TOY / "base" if name == "toy" else pairs[name][1]
    eng = VLLMEngine(str(model), replace(ENGINE_CFG, max_model_len=1024 if name == "toy" else 512))
    eng.test_name = name
    yield eng
    eng.close()


def direct_requests(llm, n_items: int = 6, seed: int = 0) -> list:
    """Items of 2-5 options over 140-400-token contexts; some options are the greedy continuation."""
    from vllm import SamplingParams, TokensPrompt

    rng = random.Random(seed)
    ctxs = [[rng.randrange(10, 1600) for _ in range(rng.randrange(140, 400))] for _ in range(n_items)]
    greedy = llm.generate(
        [TokensPrompt(prompt_token_ids=c) for c in ctxs],
        SamplingParams(temperature=0, max_tokens=3, detokenize=False),
        use_tqdm=False,
    )
    reqs = []
    for ctx, g in zip(ctxs, greedy):
        conts = [list(g.outputs[0].token_ids[:1]), list(g.outputs[0].token_ids)]  # greedy single and multi-token
        conts += [
            [rng.randrange(10, 1600) for _ in range(rng.choice([1, 1, 2, 4]))] for _ in range(rng.randrange(2, 5))
        ]
        reqs += [(None, ctx, c) for c in conts]
    return reqs


def assert_same(got: list, ref: list) -> None:
    assert len(got) == len(ref)
    for (lp, greedy), (rlp, rgreedy) in zip(got, ref):
        assert abs(lp - rlp) <= TOL and greedy == rgreedy, (lp, rlp, greedy, rgreedy)


def test_cached_scorer_equals_reference_on_direct_requests(engine):
    from mergesweep.engines import scoring

    llm = Recorder(engine.llm)
    reqs = direct_requests(llm)
    llm.cached_tokens()
    ref = scoring.score_prompt_logprobs(llm, reqs, 511)
    assert llm.cached_tokens() == 0  # the reference never reads the cache
    llm.reset_prefix_cache()
    got = scoring.score_cached(llm, reqs, 511)
    assert llm.cached_tokens() >= 128 * 6  # at least one full block per item was read, not recomputed
    assert_same(got, ref)
    assert sum(g for _, g in ref) >= 12  # greedy options exist (both kinds) and were recognised as such


def test_hits_past_the_context_are_rescored(engine):
    """Two options sharing 140 tokens: the second reads a block holding continuation rows, which carry no logprobs."""
    from mergesweep.engines import scoring

    llm = Recorder(engine.llm)
    rng = random.Random(1)
    ctx = [rng.randrange(10, 1600) for _ in range(100)]
    shared = [rng.randrange(10, 1600) for _ in range(140)]
    reqs = [(None, ctx, shared + [11]), (None, ctx, shared + [12])]
    ref = scoring.score_prompt_logprobs(llm, reqs, 1023)
    llm.reset_prefix_cache()
    llm.cached_tokens()
    assert_same(scoring.score_cached(llm, reqs, 1023), ref)
    assert llm.cached_tokens() >= 128  # the case was really hit


def test_truncated_requests_follow_the_reference_rule(engine):
    from mergesweep.engines import scoring

    llm = engine.llm
    rng = random.Random(2)
    ctx = [rng.randrange(10, 1600) for _ in range(300)]
    reqs = [(None, ctx, [rng.randrange(10, 1600) for _ in range(k)]) for k in (1, 2, 5)]
    assert_same(scoring.score_cached(llm, reqs, 250), scoring.score_prompt_logprobs(llm, reqs, 250))


def run_suite(engine, scorer: str, suite_name: str, tmp, limit: int | None, tasks: list[str] | None):
    """Per-task accuracies and every (request, result) lm-eval asked the scorer for."""
    from mergesweep.evals import suite as suites
    from tests.test_icl_classic import suite_cfg

    lm = engine.lm()
    lm.scorer = scorer
    engine.llm.reset_prefix_cache()
    calls = []
    orig = type(lm)._loglikelihood_tokens

    def record(requests, **kw):
        out = orig(lm, requests, **kw)
        calls.extend(zip([(tuple(c), tuple(x)) for _, c, x in requests], out))
        return out

    lm._loglikelihood_tokens = record
    try:
        cfg = suite_cfg(suite_name)
        part = {**cfg["parts"]["icl"], "limit": limit}
        part["tasks"] = tasks or part["tasks"]
        part.pop("groups", None)
        out = suites.run(
            lm, {"name": suite_name, "parts": {"icl": part}}, tmp / f"{scorer}-{suite_name}", seed=1234, bootstrap=0
        )
    finally:
        del lm._loglikelihood_tokens
        lm.scorer = "cached"
    return out.parts["icl"]["tasks"], calls


def test_suites_score_identically(engine, tmp_path):
    """Toy suite and icl_classic: same requests, same numbers, same accuracies.

    The toy pair (1024 positions) runs all 18 icl_classic tasks, most prompts scored through the cache. The tiny
    pairs hold 512 positions, so most 8-shot prompts are truncated there (reference rule): four tasks suffice."""
    toy = engine.test_name == "toy"
    classic = None if toy else ["icl_sst2_mc", "icl_agnews_mc", "icl_trec_fmc", "icl_copa_mc"]
    for suite_name, limit, tasks in (("toy", 40 if toy else 20, None), ("icl_classic", 2 if toy else 3, classic)):
        ref_tasks, ref_calls = run_suite(engine, "prompt_logprobs", suite_name, tmp_path, limit, tasks)
        got_tasks, got_calls = run_suite(engine, "cached", suite_name, tmp_path, limit, tasks)
        assert [r for r, _ in got_calls] == [r for r, _ in ref_calls] and len(ref_calls) > 30
        assert_same([g for _, g in got_calls], [r for _, r in ref_calls])
        assert {t: m["acc"] for t, m in got_tasks.items()} == {t: m["acc"] for t, m in ref_tasks.items()}


def test_unknown_scorer_is_refused():
    from mergesweep.engines.vllm_lm import VLLMLM

    with pytest.raises(ConfigError, match="unknown engine.scorer 'fast'"):
        VLLMLM(llm=None, tokenizer=None, max_length=16, scorer="fast")


def test_generation_is_one_batch_that_reuses_a_shared_chat_prefix(engine):
    """generate_until sends every request in one engine call; a shared system prompt is read from the cache,
    and the answers are those of each request generated alone on an empty cache."""
    from types import SimpleNamespace

    lm = engine.lm()
    llm = Recorder(engine.llm)
    lm.llm = llm
    try:
        system = " ".join(["Answer in one short line and never use commas."] * 40)
        reqs = [
            SimpleNamespace(
                args=(
                    lm.apply_chat_template([{"role": "system", "content": system}, {"role": "user", "content": q}]),
                    {"until": [], "max_gen_toks": 8},
                )
            )
            for q in ("Name a colour.", "Name an animal.", "Name a number.")
        ]
        llm.reset_prefix_cache()
        calls = []
        llm._generate = lambda *a, **kw: calls.append(len(a[0])) or engine.llm.generate(*a, **kw)
        batched = lm.generate_until(reqs, disable_tqdm=True)
        assert calls == [3] and llm.cached_tokens() >= 2 * 128
        alone = []
        for r in reqs:
            llm.reset_prefix_cache()
            alone += lm.generate_until([r], disable_tqdm=True)
        assert llm.cached_tokens() == 0
    finally:
        lm.llm = engine.llm
    if engine.test_name == "toy":  # a trained model: no near-ties for batch-size-dependent float noise to flip
        assert batched == alone
