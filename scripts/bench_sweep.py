#!/usr/bin/env python
"""Benchmark: warm engines in blocks vs one cold engine per point, on a 2-family x 2-method x 6-lam toy sweep.

Both sides are real `mergesweep` runs (vLLM engine, toy suites), timed from this process, back to back:

* grouped: one multirun with ``hydra/sweeper=blocks`` (basic launcher): 4 blocks (family x method) of 6 lam
  values; one process, the engine started once and kept warm (a second family of the same checkpoint only
  re-prepares its merge inputs).
* cold: one ``mergesweep`` process per point (24 processes): what a launcher job per point costs (SLURM,
  submitit): interpreter + imports + engine start + one point, every time.

The second family is the toy pair under another family name (``model.family=toy_b``). The report callback is
disabled on both sides (``~hydra.callbacks.report``) so that both produce records only. Reported: the wall-time
ratio cold / grouped, the grouped run's share of wall time spent outside evaluation (1 - sum of the records'
``eval_*_s`` / wall), the same per point (switch + bookkeeping vs evaluation, engine start excluded), and whether
both runs produced the same numbers. Writes results/bench/sweep.json and sweep.md.

    python scripts/bench_sweep.py            # ~10-20 min on 2 CPU cores (the 24 cold processes dominate)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FAMILIES = ("toy", "toy_b")
METHODS = ("linear", "task_arithmetic")
LAMS = ("0", "0.2", "0.4", "0.6", "0.8", "1")
COMMON = ["tracking=none", "~hydra.callbacks.report", "bootstrap=200"]


def mergesweep(results: Path, args: list[str]) -> float:
    """Run ``python -m mergesweep.app.cli ARGS`` with results under ``results``; its wall time (fails loudly)."""
    env = {**os.environ, "MERGESWEEP_RESULTS": str(results), "PYTHONUNBUFFERED": "1"}
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "mergesweep.app.cli", *args], cwd=REPO, env=env, capture_output=True, text=True
    )
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"mergesweep {' '.join(args)} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return wall


def records(sweep_dir: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((sweep_dir / "records").glob("*.json"))]


def eval_s(rec: dict) -> float:
    return sum(v for k, v in rec["times"].items() if k.startswith("eval_"))


def key(rec: dict) -> tuple:
    return rec["family"], rec["method"], rec["lam"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--icl-limit", type=int, default=12, help="docs per ICL task (toy suite has 3 ICL tasks)")
    ap.add_argument("--if-limit", type=int, default=4, help="IF prompts per point")
    ap.add_argument("--name", default="sweep", help="results/bench/NAME.json (sweep.md tabulates every sweep*.json)")
    args = ap.parse_args()
    limits = [f"suite.parts.icl.limit={args.icl_limit}", f"suite.parts.if.limit={args.if_limit}"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        # untimed: fills the caches every later run finds warm (vLLM's model-info file, checkpoint hashes, the
        # datasets cache), so that neither side pays a first-ever cost the other does not
        mergesweep(tmp, ["tracking=none", "~hydra.callbacks.report", *limits, "sweep.name=warmup"])
        grouped_wall = mergesweep(
            tmp,
            [
                "-m",
                "hydra/sweeper=blocks",
                f"model.family={','.join(FAMILIES)}",
                f"merge={','.join(METHODS)}",
                f"strength={','.join(LAMS)}",
                *COMMON,
                *limits,
                "sweep.name=grouped",
            ],
        )
        cold_walls = [
            mergesweep(
                tmp, [f"model.family={fam}", f"merge={meth}", f"strength={lam}", *COMMON, *limits, "sweep.name=cold"]
            )
            for fam in FAMILIES
            for meth in METHODS
            for lam in LAMS
        ]
        grouped, cold = records(tmp / "grouped"), records(tmp / "cold")
    n = len(FAMILIES) * len(METHODS) * len(LAMS)
    if len(grouped) != n or len(cold) != n:
        raise SystemExit(f"expected {n} records per side, got {len(grouped)} grouped and {len(cold)} cold")
    g_eval = sum(eval_s(r) for r in grouped)
    g_total = sum(r["times"]["total_s"] for r in grouped)
    g_start = sum(r["times"].get("engine_start_s", 0.0) for r in grouped)
    starts = sum(1 for r in grouped if not r["engine"]["reused"])
    cold_by = {key(r): r["summary"] for r in cold}
    same = sum(cold_by[key(r)] == r["summary"] for r in grouped)
    result = {
        "sweep": {
            "families": FAMILIES,
            "methods": METHODS,
            "lams": LAMS,
            "points": n,
            "icl_limit": args.icl_limit,
            "if_limit": args.if_limit,
            "engine": grouped[0]["engine"].get("engine"),
        },
        "grouped_wall_s": grouped_wall,
        "cold_wall_s": sum(cold_walls),
        "cold_point_wall_s": cold_walls,
        "ratio_cold_over_grouped": sum(cold_walls) / grouped_wall,
        "grouped_engine_starts": starts,
        "grouped_eval_s": g_eval,
        "grouped_share_outside_eval": 1 - g_eval / grouped_wall,
        "grouped_points_total_s": g_total,
        "grouped_share_outside_eval_within_points": 1 - g_eval / (g_total - g_start),
        "grouped_engine_start_s": g_start,
        "grouped_switch_s": sum(r["times"].get(k, 0.0) for r in grouped for k in ("merge_s", "swap_s", "reset_s")),
        "points_with_identical_summary": same,
        "cpus": os.cpu_count(),
        "machine": platform.platform(),
        "load_average_end": os.getloadavg(),
    }
    result["first_point_eval_s"] = max(eval_s(r) for r in grouped if not r["engine"]["reused"])
    result["steady_eval_s"] = [eval_s(r) for r in grouped if r["engine"]["reused"]]
    out = REPO / "results" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.name}.json").write_text(json.dumps(result, indent=1))
    runs = {p.stem: json.loads(p.read_text()) for p in sorted(out.glob("sweep*.json"))}
    (out / "sweep.md").write_text(markdown(runs))
    print(json.dumps({k: v for k, v in result.items() if k not in ("cold_point_wall_s", "steady_eval_s")}, indent=1))


def markdown(runs: dict[str, dict]) -> str:
    """One table over every recorded run of this script (results/bench/sweep*.json), and the bound."""
    first = next(iter(runs.values()))["sweep"]
    n = first["points"]
    lines = [
        "# Warm engines in blocks vs one cold engine per point (scripts/bench_sweep.py)",
        "",
        f"Toy sweep: {len(first['families'])} families x {len(first['methods'])} methods x {len(first['lams'])} lam "
        f"= {n} points, {first['engine']} engine, toy suites. Grouped: one multirun with `hydra/sweeper=blocks` "
        "(one process, one warm engine). Cold: one `mergesweep` process and engine per point. Both sides run back "
        "to back in one invocation and must give the same summaries.",
        "",
        "| run | docs per ICL task / IF prompts | grouped wall (s) | cold wall (s) | **cold / grouped** | "
        "**outside evaluation, whole grouped run** | outside evaluation, within points | engine start (s) | "
        "same summaries | load at end |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in runs.items():
        s = r["sweep"]
        lines.append(
            f"| {name} | {s['icl_limit']} / {s['if_limit']} | {r['grouped_wall_s']:.1f} | {r['cold_wall_s']:.1f} | "
            f"**{r['ratio_cold_over_grouped']:.1f}x** | **{100 * r['grouped_share_outside_eval']:.0f}%** | "
            f"{100 * r['grouped_share_outside_eval_within_points']:.0f}% | {r['grouped_engine_start_s']:.1f} | "
            f"{r['points_with_identical_summary']}/{s['points']} | "
            f"{', '.join(f'{x:.1f}' for x in r.get('load_average_end', []))} |"
        )
    lines += [
        "",
        "Outside evaluation = 1 - (sum of the records' `eval_*_s`) / wall: process start, imports, the up-front "
        "checks of every job, the engine start, switches and records. Within points: the same over the points' "
        "own time, engine start excluded.",
        "",
        "**Why no single suite size meets both targets (ratio >= 5x and < 10% outside evaluation) at "
        f"N = {n} points.** Let T be what a process pays once (interpreter, imports, checks, engine start), W "
        "the first evaluation's extra cost in a fresh process (counted as evaluation) and E the evaluation of a "
        "point. Grouped wall u = T + W + N E; cold wall = N (T + W + E) = u + (N - 1)(T + W). So the ratio is "
        "1 + (N - 1)(T + W) / u, and < 10% outside evaluation means T < 0.1 u; a ratio >= 5 then needs "
        f"W / u >= 4 / (N - 1) - 0.1 = {4 / (n - 1) - 0.1:.3f}. The measured W (first point's evaluation minus "
        "the median of the others) is a few seconds, a few percent of u. A larger suite lowers both the share "
        "and the ratio (compare the rows): the share falls below 10% only once the grouped run's evaluation "
        "reaches about 9 T, and there the ratio is near (N + 9) / 10. Even with W = 0 the "
        "bound is (N + 9) / 10, so a process running N >= 41 points on one warm engine can meet both (e.g. 11 lam "
        "values x 4 methods of one family, which the block sweeper runs in one process under the basic launcher).",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
