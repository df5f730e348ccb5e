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
import os
import re
import shutil
import string
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TOY = REPO / "data" / "toy_pair"
SMALL = ["tracking=none", "suite.parts.icl.limit=2", "suite.parts.if.limit=2", "bootstrap=0"]
ENGINE_STARTED = re.compile(r"vLLM \(.*\) started in|transformers engine .* loaded")
NETWORK = re.compile(r"\[nltk_data\]|urlopen error|Downloaded punkt|Connection refused|Max retries exceeded")
TOKEN = "hf_Fault0Matrix1Token2Value3"


@dataclass
class Run:
    """One command's outcome."""

    rc: int
    out: str
    err: str
    seconds: float

    @property
    def text(self) -> str:
        return self.out + self.err

    @property
    def stderr_lines(self) -> int:
        return len([x for x in self.err.splitlines() if x.strip()])

    @property
    def engine_started(self) -> bool:
        return bool(ENGINE_STARTED.search(self.text))

    @property
    def one_line_error(self) -> bool:
        """Exit != 0, no traceback, and exactly one stderr line, which is the error."""
        lines = [x for x in self.err.splitlines() if x.strip()]
        return self.rc != 0 and "Traceback" not in self.text and len(lines) == 1 and "error:" in lines[0]


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


class Matrix:
    """The shared state: a temp root, the baseline sweep and its records' bytes."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.results = root / "results"
        self.env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
        self.env.update(MERGESWEEP_RESULTS=str(self.results), PYTHONUNBUFFERED="1", HF_TOKEN=TOKEN)
        src = str(REPO / "src")  # this checkout's code, even where another checkout is installed in the venv
        self.env["PYTHONPATH"] = os.pathsep.join(x for x in (src, self.env.get("PYTHONPATH", "")) if x)
        # any outbound connection attempt fails at once and says so (item 1 greps for the noise it leaves)
        self.env.update(HTTP_PROXY="http://127.0.0.1:9", HTTPS_PROXY="http://127.0.0.1:9", NO_PROXY="")
        self.baseline: dict[Path, bytes] = {}

    def run(self, args: list[str], timeout: int = 600, env: dict | None = None) -> Run:
        t0 = time.perf_counter()
        p = subprocess.run(
            [sys.executable, *args],
            cwd=REPO,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return Run(p.returncode, p.stdout, p.stderr, time.perf_counter() - t0)

    def sweep(self, *overrides: str, **kw) -> Run:
        return self.run(["-m", "mergesweep.app.cli", "-m", *overrides, *SMALL], **kw)

    def snapshot(self) -> None:
        """Remember every record written so far (the data later cases must not touch)."""
        self.baseline = {p: p.read_bytes() for p in self.results.rglob("records/*.json")}

    def intact(self) -> bool:
        from mergesweep.store.records import RecordError, read_record

        for p, data in self.baseline.items():
            try:
                read_record(p)
            except RecordError:
                return False
            if not p.is_file() or p.read_bytes() != data:
                return False
        return True

    def leaked(self, value: str) -> list[str]:
        """Files under the results folder that hold ``value``."""
        return [str(p) for p in self.results.rglob("*") if p.is_file() and value.encode() in p.read_bytes()]


def one_line(r: Run, m: Matrix, engine: bool = False) -> tuple[bool, str]:
    ok = r.one_line_error and (engine or not r.engine_started)
    return ok, "" if ok else f"rc={r.rc}, {r.stderr_lines} stderr lines, engine started: {r.engine_started}"


# --- the cases: (item, name, command shown, expectation, function(matrix) -> (Run, passed, why, extra)) -----------
def c_baseline(m: Matrix):
    r = m.sweep("sweep.name=base", "strength=0.5")
    recs = list((m.results / "base" / "records").glob("*.json"))
    ok = r.rc == 0 and len(recs) == 1 and not NETWORK.search(r.text)
    m.snapshot()
    return r, ok, "" if ok else f"rc={r.rc}, records {len(recs)}, network noise: {bool(NETWORK.search(r.text))}", {}


def c_network_verify(m: Matrix):
    (rec,) = (m.results / "base" / "records").glob("*.json")
    r = m.run(["-m", "mergesweep.app.cli", "verify", str(rec)])
    ok = r.rc == 0 and not NETWORK.search(r.text)
    return r, ok, "" if ok else f"rc={r.rc}, network noise: {NETWORK.findall(r.text)[:2]}", {}


def seed_case(value: str):
    def case(m: Matrix):
        r = m.sweep("sweep.name=base", "strength=0.5", f"seed={value}")
        return (r, *one_line(r, m), {})

    return case


def _nan_pair(m: Matrix) -> Path:
    from safetensors.torch import load_file, save_file

    pair = m.root / "nan_pair"
    if not pair.exists():
        shutil.copytree(TOY, pair)
        f = pair / "instruct" / "model.safetensors"
        state = load_file(f)
        state["model.layers.0.mlp.up_proj.weight"][0, 0] = float("nan")
        save_file(state, str(f), metadata={"format": "pt"})
    return pair


def c_nan_checkpoint(m: Matrix):
    pair = _nan_pair(m)
    r = m.sweep("sweep.name=nan_ckpt", f"model.instruct={pair}/instruct", "strength=0.5")
    # NaN is found while the merge inputs load, after the engine started (a scan before would read every weight
    # twice): the other stderr lines are vLLM's and torch's start-up warnings, the error itself is one line
    errors = [x for x in r.err.splitlines() if "error:" in x]
    ok = (
        r.rc != 0
        and "Traceback" not in r.text
        and len(errors) == 1
        and "up_proj" in errors[0]
        and any((m.results / "nan_ckpt" / "failures").glob("*.json"))
    )
    why = f"{len(errors)} error line(s), tensor named: {'up_proj' in r.err}; other stderr lines: vLLM start-up"
    return r, ok, why, {}


def c_huge_strength(m: Matrix):
    r = m.sweep("sweep.name=huge", "strength=1e30")
    ok = r.one_line_error and any((m.results / "huge" / "failures").glob("*.json"))
    return r, ok, "" if ok else f"rc={r.rc}, {r.stderr_lines} stderr lines", {}


def c_export_huge(m: Matrix):
    out = m.root / "export_huge"
    r = m.run(
        ["-m", "mergesweep.tools.export", "--base", f"{TOY}/base", "--instruct", f"{TOY}/instruct"]
        + ["--lam", "1e30", "--out", str(out)]
    )
    return (r, *one_line(r, m), {})


def name_case(value: str):
    def case(m: Matrix):
        r = m.sweep(f"sweep.name={value}", "strength=0.5")
        ok = "Traceback" not in r.text and (r.rc == 0 or r.one_line_error)
        return r, ok, "" if ok else f"rc={r.rc}, {r.stderr_lines} stderr lines", {}

    return case


def c_prompt_kwarg_type(m: Matrix):
    rows = [json.loads(x) for x in (REPO / "data" / "toy_suites" / "toy_ifeval.jsonl").read_text().splitlines()]
    rows.insert(0, {"key": 9001, "prompt": "Write a story.", "instruction_id_list": ["length_constraints:number_words"],
                    "kwargs": [{"relation": "at least", "num_words": "twenty"}]})  # fmt: skip
    f = m.root / "bad_prompts.jsonl"
    f.write_text("".join(json.dumps(x) + "\n" for x in rows))
    r = m.sweep("sweep.name=base", "strength=0.5", f"+suite.parts.if.prompt_file={f}")
    ok, why = one_line(r, m)
    ok = ok and "bad_prompts.jsonl" in r.err and "row 1" in r.err
    return r, ok, why or ("" if ok else "the line does not name the file and row"), {}


def secret_case(override: str, value: str):
    def case(m: Matrix):
        r = m.sweep("sweep.name=base", "strength=0.5", override)
        ok, why = one_line(r, m)
        leaks = m.leaked(value)
        ok = ok and not leaks and value not in r.text
        return r, ok, why or (f"value found in {leaks[:2]}" if leaks else ""), {}

    return case


def c_verify_edited_samples(m: Matrix):
    copy = m.results / "edited"
    shutil.copytree(m.results / "base", copy)
    (rec,) = (copy / "records").glob("*.json")
    data = json.loads(rec.read_text())
    samples = copy / data["samples"][sorted(data["samples"])[-1]]
    rows = [json.loads(x) for x in samples.read_text().splitlines()]
    rows[0]["resps"] = [["a response nobody generated"]]
    samples.write_text("".join(json.dumps(x) + "\n" for x in rows))
    r = m.run(["-m", "mergesweep.app.cli", "verify", str(rec)])
    ok = r.rc != 0 and "sha256" in r.out and "MISMATCH" in r.out
    return r, ok, "" if ok else f"rc={r.rc}: verify passed an edited samples file", {}


def c_corrupt_record(m: Matrix):
    copy = m.results / "corrupt"
    shutil.copytree(m.results / "base", copy)
    (rec,) = (copy / "records").glob("*.json")
    rec.write_text('{"schema": 3, "point_id": "x", "compl')
    r = m.sweep("sweep.name=corrupt", "strength=0.5")
    kept = rec.with_name(rec.name + ".corrupt")
    ok = r.rc == 0 and r.text.count("is corrupt") == 1 and kept.is_file() and rec.is_file()
    return r, ok, "" if ok else f"rc={r.rc}, said so: {'is corrupt' in r.text}, kept: {kept.is_file()}", {}


def c_two_sweeps(m: Matrix):
    procs = []
    for name in ("a", "b"):
        sweep_dir = f"hydra.sweep.dir={m.root}/two-{name}"
        args = ["-m", "mergesweep.app.cli", "-m", "sweep.name=two", "strength=0,1", sweep_dir]
        procs.append(subprocess.Popen([sys.executable, *args, *SMALL], cwd=REPO, env=m.env, text=True,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE))  # fmt: skip
        time.sleep(1.0)
    t0 = time.perf_counter()
    outs = [p.communicate(timeout=900) for p in procs]
    written = [x for o, e in outs for x in re.findall(r"(\S+__lam\S+): icl=\S+ if=\S+ -> ", o + e)]
    r = Run(max(p.returncode for p in procs), outs[0][0] + outs[1][0], outs[0][1] + outs[1][1],
            time.perf_counter() - t0)  # fmt: skip
    ok = r.rc == 0 and len(written) == 2 and len(set(written)) == 2
    return r, ok, "" if ok else f"rc={r.rc}, points computed: {written}", {"computed": written}


def c_check_architectures(m: Matrix):
    from tests.random_pair import build_pair, tiny_config

    base, _ = build_pair(tiny_config("qwen2_tied"), m.root / "arch_q", seed=0, delta=0.1)
    _, other = build_pair(tiny_config("llama_untied", intermediate_size=96), m.root / "arch_l", seed=1, delta=0.1)
    r = m.run(["-m", "mergesweep.app.cli", "check", f"model.base={base}", f"model.instruct={other}"])
    problems = [x for x in r.out.splitlines() if x.startswith("PROBLEM:")]
    first = r.out.splitlines()[0] if r.out else ""
    ok = r.one_line_error and "architectures differ" in first and len(problems) <= 6
    return r, ok, "" if ok else f"first line {first[:60]!r}, {len(problems)} PROBLEM lines", {}


def c_task_subset(m: Matrix):
    icl_only = [x for x in SMALL if not x.startswith("suite.parts.if.")]  # icl_classic has no IF part
    args = ["sweep.name=subset", "suite=icl_classic", "suite.parts.icl.tasks=[icl_sst2_mc,icl_rte_mc]", "strength=0.5"]
    r = m.run(["-m", "mergesweep.app.cli", "-m", *args, *icl_only])
    recs = list((m.results / "subset" / "records").glob("*.json"))
    dropped = json.loads(recs[0].read_text())["metrics"]["icl"].get("groups_dropped") if recs else None
    ok = r.rc == 0 and dropped == {"fmc": "icl_*_fmc"} and "matches none of the chosen tasks" in r.text
    return r, ok, "" if ok else f"rc={r.rc}, groups_dropped: {dropped}", {}


def c_degenerate(m: Matrix):
    # one token, cut at any letter, digit or space: every generation is empty (what a broken model answers)
    stops = ",".join(f'"{c}"' for c in string.ascii_letters + string.digits + " ")
    r = m.sweep("sweep.name=empty", "strength=0.5", f"+suite.parts.if.gen_kwargs={{until:[{stops}],max_gen_toks:1}}")
    recs = list((m.results / "empty" / "records").glob("*.json"))
    flags = json.loads(recs[0].read_text()).get("flags") if recs else None
    st = m.run(["-m", "mergesweep.app.cli", "status", str(m.results / "empty")])
    ok = r.rc == 0 and flags == ["all_generations_empty"] and "flagged: all_generations_empty" in st.out
    return r, ok, "" if ok else f"rc={r.rc}, flags: {flags}", {}


CASES: list[tuple[str, str, str, str, Callable]] = [
    ("-", "baseline", "mergesweep -m strength=0.5 (toy, offline)", "rc 0, one record, no network attempt", c_baseline),
    ("1", "network: verify", "mergesweep verify RECORD", "rc 0, no network attempt", c_network_verify),
    ("2", "seed=-1", "mergesweep -m seed=-1", "one line, no engine", seed_case("-1")),
    ("2", "seed=2**32", "mergesweep -m seed=4294967296", "one line, no engine", seed_case("4294967296")),
    (
        "3",
        "NaN checkpoint",
        "mergesweep -m model.instruct=NAN_COPY",
        "one error line naming the tensor (after the engine's start-up lines), failure entry",
        c_nan_checkpoint,
    ),  # fmt: skip
    ("3", "strength=1e30", "mergesweep -m strength=1e30", "one line, failure entry", c_huge_strength),
    ("3", "export --lam 1e30", "mergesweep-export --lam 1e30", "one line", c_export_huge),
    ("4", "sweep.name=nan", "mergesweep -m sweep.name=nan", "no traceback: runs or one line", name_case("nan")),
    ("4", "sweep.name=123", "mergesweep -m sweep.name=123", "no traceback: runs or one line", name_case("123")),
    (
        "5",
        "prompt kwarg type",
        "mergesweep -m +suite.parts.if.prompt_file=BAD",
        "one line naming file and row",
        c_prompt_kwarg_type,
    ),  # fmt: skip
    (
        "6",
        "hf_ under a plain key",
        "mergesweep -m +model.note=hf_abc123",
        "one line, value nowhere on disk",
        secret_case("+model.note=hf_abc123", "hf_abc123"),
    ),  # fmt: skip
    (
        "6",
        "sk- under a plain key",
        "mergesweep -m +model.extra=sk-...",
        "one line, value nowhere on disk",
        secret_case("+model.extra=sk-proj-Abc123Def456", "sk-proj-Abc123Def456"),
    ),  # fmt: skip
    (
        "6",
        "secret env interpolation",
        "mergesweep -m +model.note='${oc.env:HF_TOKEN}'",
        "one line, token nowhere",
        secret_case("+model.note=${oc.env:HF_TOKEN}", TOKEN),
    ),  # fmt: skip
    (
        "6",
        "unknown +key",
        "mergesweep -m +model.nte=x",
        "one line naming the key",
        secret_case("+model.nte=fault_matrix_note", "fault_matrix_note"),
    ),  # fmt: skip
    (
        "7",
        "verify edited samples",
        "edit a response, mergesweep verify",
        "verify fails on the sha256",
        c_verify_edited_samples,
    ),  # fmt: skip
    ("8", "corrupt record", "corrupt a record, rerun", "rc 0, one line, *.corrupt kept", c_corrupt_record),
    ("9", "two sweeps, one folder", "2 x mergesweep -m strength=0,1", "each point computed once", c_two_sweeps),
    (
        "10",
        "check: architectures",
        "mergesweep check (Qwen2 vs Llama)",
        "fatal line first, summary",
        c_check_architectures,
    ),  # fmt: skip
    (
        "11",
        "task subset",
        "suite=icl_classic suite.parts.icl.tasks=[2 tasks]",
        "rc 0, group dropped and recorded",
        c_task_subset,
    ),  # fmt: skip
    (
        "12",
        "all generations empty",
        "mergesweep -m +suite.parts.if.gen_kwargs={until:[letters...],max_gen_toks:1}",
        "rc 0, flagged record, status",
        c_degenerate,
    ),  # fmt: skip
]


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
