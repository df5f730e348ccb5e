"""The fault matrix's cases (issue 20), one function each, and the table ``fault_matrix.py`` runs them from.

A case gets the shared ``Matrix`` and returns ``(Run, passed, why, extra)``; ``CASES`` gives each one its item
number, name, the command a user would type, and what is expected of it.
"""

from __future__ import annotations

import json
import re
import shutil
import string
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from fault_harness import NETWORK, REPO, SMALL, TOKEN, TOY, Matrix, Run, one_line


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


# One row a case: (item, name, command shown, expectation, case function); a row that does not fit in 120
# characters goes on two lines, so the table reads as one.
# fmt: off
CASES: list[tuple[str, str, str, str, Callable]] = [
    ("-", "baseline", "mergesweep -m strength=0.5 (toy, offline)", "rc 0, one record, no network attempt", c_baseline),
    ("1", "network: verify", "mergesweep verify RECORD", "rc 0, no network attempt", c_network_verify),
    ("2", "seed=-1", "mergesweep -m seed=-1", "one line, no engine", seed_case("-1")),
    ("2", "seed=2**32", "mergesweep -m seed=4294967296", "one line, no engine", seed_case("4294967296")),
    ("3", "NaN checkpoint", "mergesweep -m model.instruct=NAN_COPY",
     "one error line naming the tensor (after the engine's start-up lines), failure entry", c_nan_checkpoint),
    ("3", "strength=1e30", "mergesweep -m strength=1e30", "one line, failure entry", c_huge_strength),
    ("3", "export --lam 1e30", "mergesweep-export --lam 1e30", "one line", c_export_huge),
    ("4", "sweep.name=nan", "mergesweep -m sweep.name=nan", "no traceback: runs or one line", name_case("nan")),
    ("4", "sweep.name=123", "mergesweep -m sweep.name=123", "no traceback: runs or one line", name_case("123")),
    ("5", "prompt kwarg type", "mergesweep -m +suite.parts.if.prompt_file=BAD",
     "one line naming file and row", c_prompt_kwarg_type),
    ("6", "hf_ under a plain key", "mergesweep -m +model.note=hf_abc123",
     "one line, value nowhere on disk", secret_case("+model.note=hf_abc123", "hf_abc123")),
    ("6", "sk- under a plain key", "mergesweep -m +model.extra=sk-...",
     "one line, value nowhere on disk", secret_case("+model.extra=sk-proj-Abc123Def456", "sk-proj-Abc123Def456")),
    ("6", "secret env interpolation", "mergesweep -m +model.note='${oc.env:HF_TOKEN}'",
     "one line, token nowhere", secret_case("+model.note=${oc.env:HF_TOKEN}", TOKEN)),
    ("6", "unknown +key", "mergesweep -m +model.nte=x",
     "one line naming the key", secret_case("+model.nte=fault_matrix_note", "fault_matrix_note")),
    ("7", "verify edited samples", "edit a response, mergesweep verify",
     "verify fails on the sha256", c_verify_edited_samples),
    ("8", "corrupt record", "corrupt a record, rerun", "rc 0, one line, *.corrupt kept", c_corrupt_record),
    ("9", "two sweeps, one folder", "2 x mergesweep -m strength=0,1", "each point computed once", c_two_sweeps),
    ("10", "check: architectures", "mergesweep check (Qwen2 vs Llama)",
     "fatal line first, summary", c_check_architectures),
    ("11", "task subset", "suite=icl_classic suite.parts.icl.tasks=[2 tasks]",
     "rc 0, group dropped and recorded", c_task_subset),
    ("12", "all generations empty", "mergesweep -m +suite.parts.if.gen_kwargs={until:[letters...],max_gen_toks:1}",
     "rc 0, flagged record, status", c_degenerate),
]
# fmt: on
