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
    """Run ``python -m mergesweep.cli ARGS`` with results under ``results``; its wall time (fails loudly)."""
    env = {**os.environ, "MERGESWEEP_RESULTS": str(results), "PYTHONUNBUFFERED": "1"}
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "mergesweep.cli", *args], cwd=REPO, env=env, capture_output=True, text=True
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
    args = ap.parse_args()
    limits = [f"suite.parts.icl.limit={args.icl_limit}", f"suite.parts.if.limit={args.if_limit}"]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
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
    out = REPO / "results" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    (out / "sweep.json").write_text(json.dumps(result, indent=1))
    (out / "sweep.md").write_text(markdown(result))
    print(json.dumps({k: v for k, v in result.items() if k != "cold_point_wall_s"}, indent=1))


def markdown(r: dict) -> str:
    s = r["sweep"]
    bound = (s["points"] + 9) / 10
    return (
        "# Warm engines in blocks vs one cold engine per point (scripts/bench_sweep.py)\n\n"
        f"Toy sweep: {len(s['families'])} families x {len(s['methods'])} methods x {len(s['lams'])} lam = "
        f"{s['points']} points, {s['engine']} engine, toy suites ({s['icl_limit']} docs per ICL task, "
        f"{s['if_limit']} IF prompts), {r['cpus']} CPUs.\n\n"
        "| | wall (s) |\n|---|---|\n"
        f"| grouped: one multirun, `hydra/sweeper=blocks`, {r['grouped_engine_starts']} engine start(s) | "
        f"{r['grouped_wall_s']:.1f} |\n"
        f"| cold: one process and engine per point ({s['points']} runs) | {r['cold_wall_s']:.1f} |\n"
        f"| **ratio cold / grouped** | **{r['ratio_cold_over_grouped']:.1f}x** |\n\n"
        f"Grouped run: evaluation {r['grouped_eval_s']:.1f} s of {r['grouped_wall_s']:.1f} s wall: "
        f"**{100 * r['grouped_share_outside_eval']:.0f}% of wall time outside evaluation** (process start, imports, "
        f"engine start {r['grouped_engine_start_s']:.1f} s, switches {r['grouped_switch_s']:.2f} s, records); within "
        f"the points (engine start excluded) {100 * r['grouped_share_outside_eval_within_points']:.0f}%.\n\n"
        f"Same summaries on both sides: {r['points_with_identical_summary']} of {s['points']} points. "
        f"Load average at the end: {r.get('load_average_end', 'not recorded')} (other jobs share the cores: absolute "
        "times vary with them; both sides ran back to back).\n\n"
        "Both targets at once (ratio >= 5x, < 10% outside evaluation) need more points than this sweep has: with a "
        "fixed start cost T per process and evaluation E per point, < 10% outside evaluation means T < N E / 9, "
        f"and then the ratio N (T + E) / (T + N E) is at most (N + 9) / 10 = {bound:.1f}x for N = {s['points']}. "
        "Small evaluations (as here) favour the ratio; large ones favour the share.\n"
    )


if __name__ == "__main__":
    main()
