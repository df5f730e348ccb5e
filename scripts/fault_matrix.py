#!/usr/bin/env python
"""The fault matrix of issue 20 as one script: each case runs a real command, as a new user would, on the toy pair.

Per case: the command, its exit code, the number of stderr lines, whether an engine started (its start line in
the output), whether data stayed intact (the records written before still read as complete and unchanged), and
pass/fail against the case's expectation. A baseline sweep of one point writes the record every later case must
leave alone; cases that need a sweep folder of their own work on a copy of it. Writes results/bench/faults.md
and faults.json.

    python scripts/fault_matrix.py                 # a few minutes on 2 CPU cores (vLLM engine, toy suite)
    python scripts/fault_matrix.py --only secret   # cases whose name contains "secret"
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the harness and cases beside this script
from fault_cases import CASES
from fault_harness import REPO, Matrix


@dataclass
class Case:
    item: str
    name: str
    command: str
    expect: str
    rc: int = 0
    stderr_lines: int = 0
    engine_started: bool = False
    data_intact: bool = True
    passed: bool = False
    why: str = ""
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)


def run_case(m: Matrix, spec: tuple) -> Case:
    item, name, command, expect, fn = spec
    case = Case(item=item, name=name, command=command, expect=expect)
    try:
        r, ok, why, extra = fn(m)
    except Exception as e:  # a broken case is a failed row, not a dead script
        case.why = f"case raised {type(e).__name__}: {e}".splitlines()[0]
        return case
    case.rc, case.stderr_lines, case.engine_started, case.seconds = r.rc, r.stderr_lines, r.engine_started, r.seconds
    case.data_intact = m.intact()
    case.passed = bool(ok) and case.data_intact
    case.why = why if ok or why else "expectation not met"
    case.why = case.why if case.data_intact else (case.why + "; baseline records changed").strip("; ")
    case.extra = extra
    return case


def markdown(cases: list[Case], wall: float) -> str:
    lines = [
        "# Fault matrix (issue 20)",
        "",
        f"`python scripts/fault_matrix.py`: {sum(c.passed for c in cases)} of {len(cases)} cases pass "
        f"({wall:.0f} s). Engine: vLLM (toy pair, toy suite, limits of 2).",
        "",
        "| item | case | command | expected | exit | stderr lines | engine started | data intact | result |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for c in cases:
        verdict = "pass" if c.passed else f"FAIL: {c.why}"
        lines.append(
            f"| {c.item} | {c.name} | `{c.command}` | {c.expect} | {c.rc} | {c.stderr_lines} | "
            f"{'yes' if c.engine_started else 'no'} | {'yes' if c.data_intact else 'NO'} | {verdict} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=REPO / "results" / "bench")
    ap.add_argument("--only", default="", help="run only cases whose name contains this (the baseline always runs)")
    ap.add_argument("--keep", action="store_true", help="keep the temp folder (its path is printed)")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(REPO / "src"))
    sys.path.insert(0, str(REPO))  # tests.random_pair
    root = Path(tempfile.mkdtemp(prefix="mergesweep-faults-"))
    m, cases, t0 = Matrix(root), [], time.perf_counter()
    try:
        for spec in CASES:
            if spec[1] != "baseline" and args.only not in spec[1]:
                continue
            case = run_case(m, spec)
            cases.append(case)
            print(f"[{'pass' if case.passed else 'FAIL'}] {case.item:>2} {case.name}: rc={case.rc} "
                  f"stderr={case.stderr_lines} engine={case.engine_started} {case.why}", flush=True)  # fmt: skip
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    args.out.mkdir(parents=True, exist_ok=True)
    wall = time.perf_counter() - t0
    (args.out / "faults.md").write_text(markdown(cases, wall))
    (args.out / "faults.json").write_text(json.dumps([asdict(c) for c in cases], indent=1))
    print(f"{sum(c.passed for c in cases)} of {len(cases)} pass; wrote {args.out / 'faults.md'}")
    raise SystemExit(0 if all(c.passed for c in cases) else 1)


if __name__ == "__main__":
    main()
