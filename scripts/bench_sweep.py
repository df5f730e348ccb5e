#!/usr/bin/env python
"""Benchmark: wall time of the README's default sweep (toy pair, 5 strengths, vLLM), end to end.

Runs ``bash scripts/sweep.sh`` (set-up check included) into a fresh results folder and reports the wall time
against the 10-minute budget, with the points' summaries. Writes results/bench/sweep.json and sweep.md.

    python scripts/bench_sweep.py
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUDGET_S = 600.0


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "MERGESWEEP_RESULTS": tmp}
        t0 = time.perf_counter()
        proc = subprocess.run(["bash", "scripts/sweep.sh"], cwd=REPO, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"sweep failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
        recs = [json.loads(p.read_text()) for p in sorted(Path(tmp, "default", "records").glob("*.json"))]
    points = sorted(({"lam": r["lam"], **r["summary"], "total_s": r["times"]["total_s"]} for r in recs),
                    key=lambda p: p["lam"])
    result = {"command": "bash scripts/sweep.sh", "wall_s": wall, "budget_s": BUDGET_S,
              "fraction_of_budget": wall / BUDGET_S, "cpus": os.cpu_count(), "machine": platform.platform(),
              "points": points}
    out = REPO / "results" / "bench"
    out.mkdir(parents=True, exist_ok=True)
    (out / "sweep.json").write_text(json.dumps(result, indent=1))
    rows = "\n".join(f"| {p['lam']:g} | {p['icl']:.3f} | {p['if']:.3f} | {p['total_s']:.1f} |" for p in points)
    (out / "sweep.md").write_text(
        "# Default sweep, end to end (scripts/bench_sweep.py)\n\n"
        f"`bash scripts/sweep.sh` on {os.cpu_count()} CPUs: **{wall:.1f} s** "
        f"({100 * wall / BUDGET_S:.0f}% of the 10-minute budget), including the set-up check and one vLLM start.\n\n"
        f"| lam | ICL | IF | point total (s) |\n|---|---|---|---|\n{rows}\n")
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
