#!/usr/bin/env python
"""Benchmark: ICL-suite throughput through vLLM with prefix caching on vs off, and vs lm-eval's ``hf`` backend.

All engines run the same lm-eval tasks on the same checkpoint in this one process, one engine at a time, so the
ratios are like for like. Each engine first does a short warm-up pass (not timed); the timed pass is
``suite.run``'s ``simple_evaluate`` call, task building included. Requests = lm-eval loglikelihood requests (one
per doc and choice). Accuracies are recorded too: every engine must score the same model the same way.

Two workloads: ``toy`` (the toy suite's ICL part: 10-shot recall, ~30-token prompts) and ``classic`` (four
icl_classic tasks, 8-shot, 300-900-token prompts). Prefix caching can only help when prompts share whole KV
blocks (vLLM's CPU block is 128 tokens): a doc's choices share everything but the answer, so the effect needs
long prompts.

    python scripts/bench_eval.py                       # toy pair, both workloads, ~2-3 min on 2 CPU cores
    python scripts/bench_eval.py --workloads classic --limit 100

Writes results/bench/eval.json and results/bench/eval.md.
"""
from __future__ import annotations

import argparse
import gc
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


def make_engine(kind: str, model: str, dtype: str):
    """(engine, start seconds): vLLM with prefix caching on/off, or the transformers engine behind lm-eval's HFLM."""
    t0 = time.perf_counter()
    if kind == "hf":
        from mergesweep.engines.hf_engine import HFEngine

        eng = HFEngine(model, {"name": "hf", "dtype": dtype, "device": "cpu", "batch_size": 16, "max_model_len": 1024})
    else:
        from mergesweep.engines.vllm_engine import VLLMEngine

        eng = VLLMEngine(model, {"name": "vllm", "dtype": dtype, "max_model_len": 1024, "kv_cache_gib": 1,
                                 "in_process": True, "prefix_caching": kind == "vllm_prefix_on"})
    return eng, time.perf_counter() - t0


def timed_run(lm, part: dict, shots: int | None, limit: int, seed: int) -> dict:
    """One suite pass: wall seconds, loglikelihood requests, per-task accuracy."""
    from mergesweep.evals import suite as suites

    part = {**part, "num_fewshot": shots, "limit": limit}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        out = suites.run(lm, {"name": "bench", "parts": {"icl": part}}, Path(tmp), seed=seed, bootstrap=0)
        wall = time.perf_counter() - t0
        requests = 0
        for path in out["samples"].values():
            requests += sum(len(json.loads(line)["arguments"]) for line in Path(path).read_text().splitlines())
    return {"wall_s": wall, "requests": requests, "requests_per_s": requests / wall,
            "acc": {t: m["acc"] for t, m in out["parts"]["icl"]["tasks"].items()}}


NOTE = ("Why prefix caching does not speed up log-likelihood scoring: mergesweep's vLLM scorer asks for "
        "`prompt_logprobs`, and vLLM (0.32, `SamplingParams.__post_init__`) sets `skip_reading_prefix_cache=True` for "
        "any request with prompt logprobs, because cached tokens would get no logprobs. Such requests never read the "
        "cache, so caching only adds block hashing and cache bookkeeping. It can help generation (IF part) only.")
WORKLOADS = {
    "toy": {"suite": "toy", "tasks": None, "shots": None},  # the suite's own ICL part and k
    "classic": {"suite": "icl_classic", "shots": 8,
                "tasks": ["icl_sst2_mc", "icl_trec_mc", "icl_copa_mc", "icl_sst2_fmc"]},
}


def workload_part(name: str) -> tuple[dict, int | None]:
    from omegaconf import OmegaConf

    w = WORKLOADS[name]
    part = OmegaConf.to_container(OmegaConf.load(REPO / "conf/suite" / f"{w['suite']}.yaml").parts.icl)
    part.pop("groups", None)
    if w["tasks"]:
        part["tasks"] = w["tasks"]
    return part, w["shots"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(REPO / "data/toy_pair/instruct"))
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--limit", type=int, default=200, help="docs per task in the timed pass (toy tasks have ~120)")
    ap.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=list(WORKLOADS))
    ap.add_argument("--engines", nargs="+", default=["vllm_prefix_on", "vllm_prefix_off", "hf"])
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--out", type=Path, default=REPO / "results/bench")
    args = ap.parse_args()
    import os

    os.environ.setdefault("NLTK_DATA", str(REPO / "data/nltk"))
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    parts = {w: workload_part(w) for w in args.workloads}
    runs: dict[str, dict] = {}
    for kind in args.engines:
        eng, start_s = make_engine(kind, args.model, args.dtype)
        lm = eng.lm()
        for part, shots in parts.values():
            timed_run(lm, part, shots, 3, args.seed)  # warm-up: code paths, allocator
        runs[kind] = {"start_s": start_s, "info": eng.info(),
                      **{w: timed_run(lm, part, shots, args.limit, args.seed) for w, (part, shots) in parts.items()}}
        print(kind, {w: round(runs[kind][w]["requests_per_s"], 1) for w in parts}, flush=True)
        eng.close()
        del eng, lm
        gc.collect()

    ratios = {}
    for w in parts:
        rps = {k: r[w]["requests_per_s"] for k, r in runs.items()}
        if {"vllm_prefix_on", "vllm_prefix_off"} <= set(rps):
            ratios[f"{w}: vLLM prefix caching on / off"] = rps["vllm_prefix_on"] / rps["vllm_prefix_off"]
        if {"vllm_prefix_on", "hf"} <= set(rps):
            ratios[f"{w}: vLLM (prefix on) / hf"] = rps["vllm_prefix_on"] / rps["hf"]
    result = {"what": "lm-eval ICL loglikelihood requests/s through each engine, same process, same tasks and seed",
              "model": args.model, "dtype": args.dtype, "limit_per_task": args.limit,
              "workloads": {w: {"tasks": p["tasks"], "num_fewshot": k} for w, (p, k) in parts.items()},
              "machine": platform.platform(), "runs": runs, "ratios": ratios}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "eval.json").write_text(json.dumps(result, indent=1, default=str))
    lines = ["# ICL evaluation throughput (scripts/bench_eval.py)", "",
             f"model `{Path(args.model).name}` ({args.dtype}), {args.limit} docs per task, {platform.machine()}, "
             f"seed {args.seed}. Requests = lm-eval loglikelihood requests; wall time includes task building.", "",
             "| workload | engine | requests | wall (s) | requests/s | mean acc | engine start (s) |",
             "|---|---|---|---|---|---|---|"]
    for w, (part, shots) in parts.items():
        for kind, r in runs.items():
            x = r[w]
            acc = sum(x["acc"].values()) / len(x["acc"])
            lines.append(f"| {w} ({len(part['tasks'])} tasks, k={shots or 'task default'}) | {kind} | "
                         f"{x['requests']} | {x['wall_s']:.2f} | {x['requests_per_s']:.1f} | {acc:.3f} | "
                         f"{r['start_s']:.1f} |")
    lines += ["", "| ratio (requests/s) | value |", "|---|---|"] + [f"| {k} | {v:.2f}x |" for k, v in ratios.items()]
    lines += ["", NOTE]
    (args.out / "eval.md").write_text("\n".join(lines) + "\n")
    print(json.dumps(ratios, indent=1))


if __name__ == "__main__":
    main()
