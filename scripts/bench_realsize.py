#!/usr/bin/env python
"""Real-size benchmark: a random pair with the exact Qwen2.5-0.5B config swept through the real app on this CPU.

The pair (24 layers, hidden 896, vocab 151936, tied; ~0.5B parameters, ~2 GB in fp32) is built locally by
``mergesweep.random_pair`` (no hub); the toy tokenizer's ids fit its vocabulary. Each storage mode runs the real
Hydra app (``python -m mergesweep.cli -m strength=...``, vLLM engine, toy suite with small limits, no W&B) in
its own subprocess, so the peak resident memory of one mode (``wait4``'s ``ru_maxrss``) never mixes with
another's. From the records of that one run it reports:

* switch (merge + swap + prefix-cache reset, median over points) vs the cold engine start of the same run;
* peak RSS as a multiple of one model's size, both absolute and above the RSS of the imports alone;
* the share of a point's wall time spent outside evaluation (preflight, hashing, switch, record).

    flock /tmp/ms-heavy.lock .venv/bin/python scripts/bench_realsize.py            # ~10 min on 2 cores
    flock /tmp/ms-heavy.lock .venv/bin/python scripts/bench_realsize.py --modes disk --points 3

Writes results/bench/realsize.json and results/bench/realsize.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable
MODES = {"resident": "null", "disk": "disk"}  # storage.device per mode
TARGETS = {"ratio": 20.0, "resident": 3.0, "disk": 1.6, "outside_eval": 0.05}


def ensure_pair(root: Path) -> tuple[Path, Path]:
    """Build (once) the random pair with the exact Qwen2.5-0.5B config, fp32, in ``root``."""
    if not (root / "instruct" / "model.safetensors").is_file():
        subprocess.run([PY, "-m", "mergesweep.random_pair", "--shape", "qwen2.5-0.5b", "--out", str(root)], check=True)
    return root / "base", root / "instruct"


def run_measured(cmd: list[str], env: dict | None = None) -> tuple[int, float]:
    """(exit status, peak RSS in bytes) of one child process, from the kernel's own accounting."""
    proc = subprocess.Popen(cmd, env=env, cwd=REPO)
    _, status, usage = os.wait4(proc.pid, 0)
    return os.waitstatus_to_exitcode(status), usage.ru_maxrss * 1024.0


def imports_rss() -> float:
    """Peak RSS of a process that only imports what a sweep imports (the floor every mode pays)."""
    code = "import torch, vllm, lm_eval, transformers, mergesweep.cli, mergesweep.engines.vllm_engine"
    env = {**os.environ, "VLLM_TARGET_DEVICE": "cpu"}
    return run_measured([PY, "-c", code], env)[1]


def sweep(mode: str, base: Path, inst: Path, out: Path, args) -> tuple[list[dict], float]:
    """Run the app for ``args.points`` strengths in one process; its records and its peak RSS."""
    lams = ",".join(f"{i / (args.points - 1):g}" for i in range(args.points))
    cmd = [
        PY,
        "-m",
        "mergesweep.cli",
        "-m",
        f"strength={lams}",
        f"model.base={base}",
        f"model.instruct={inst}",
        "model.family=qwen2.5-0.5b-random",
        "model.dtype=float32",
        f"storage.device={MODES[mode]}",
        "tracking=none",
        "bootstrap=0",
        f"results_dir={out}",
        f"sweep.name={mode}",
        f"suite.parts.icl.limit={args.icl_limit}",
        f"suite.parts.if.limit={args.if_limit}",
        "engine.max_gen_toks=64",
        "hydra/hydra_logging=disabled",
    ]
    rc, peak = run_measured(cmd, {**os.environ, "MERGESWEEP_CACHE": str(out / ".ms-cache")})
    if rc != 0:
        raise SystemExit(f"bench_realsize: the {mode} sweep failed (exit {rc})")
    records = [json.loads(p.read_text()) for p in sorted((out / mode / "records").glob("*.json"))]
    return sorted(records, key=lambda r: r["times"].get("engine_start_s", 0) == 0), peak  # started engine first


def _vm(key: str) -> float:
    """VmRSS / VmHWM of this process, in GB."""
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith(key + ":"))
    return int(line.split()[1]) * 1024 / 1e9


def profile_child(pair: str) -> None:
    """In a fresh process: where one switch's time goes (cProfile) and the RSS after each stage (why a target
    is missed). Prints one JSON line."""
    import cProfile
    import pstats

    sys.path.insert(0, str(REPO / "src"))
    from mergesweep.engines.vllm_engine import VLLMEngine

    stages = {"imports_gb": _vm("VmRSS")}
    eng = VLLMEngine(
        f"{pair}/instruct",
        {"name": "vllm", "dtype": "float32", "max_model_len": 1024, "kv_cache_gib": 1, "in_process": True},
    )
    stages["engine_started_gb"] = _vm("VmRSS")
    eng.prepare({"base": f"{pair}/base", "instruct": f"{pair}/instruct"}, {"name": "linear"}, None, "float32")
    stages["inputs_resident_gb"] = _vm("VmRSS")
    prof, switch = cProfile.Profile(), {}
    for lam in (0.0, 0.5, 1.0):
        if lam == 0.5:
            prof.enable()
        switch[str(lam)] = eng.set_point("linear", lam, {})
        prof.disable()
    stages["peak_gb"] = _vm("VmHWM")
    st = pstats.Stats(prof)
    total = sum(v[2] for v in st.stats.values())  # tottime over all functions = the profiled switch
    top = sorted(((v[2], f"{k[2]} ({Path(k[0]).name}:{k[1]})") for k, v in st.stats.items()), reverse=True)[:6]
    print(
        json.dumps(
            {
                "rss": stages,
                "switch": switch,
                "profiled_switch_s": total,
                "top_tottime": [{"fn": name, "s": round(t, 3), "share": round(t / total, 3)} for t, name in top],
            }
        )
    )


def profile(pair: Path) -> dict:
    out = subprocess.run(
        [PY, __file__, "--profile-child", str(pair)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "VLLM_TARGET_DEVICE": "cpu"},
    )
    if out.returncode != 0:
        raise SystemExit(f"bench_realsize: profile failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def figures(records: list[dict], peak: float, floor: float, size: int) -> dict:
    """Per-mode figures; the first point (engine start, first hashing) is reported but not in the medians."""
    t = [r["times"] for r in records]
    switch = [x.get("merge_s", 0) + x.get("swap_s", 0) + x.get("reset_s", 0) for x in t]
    evals = [sum(v for k, v in x.items() if k.startswith("eval_")) for x in t]
    outside = [
        (x["total_s"] - x.get("engine_start_s", 0) - e) / (x["total_s"] - x.get("engine_start_s", 0))
        for x, e in zip(t, evals)
    ]
    start = max(x.get("engine_start_s", 0) for x in t)
    steady = slice(1, None) if len(t) > 1 else slice(None)
    return {
        "points": len(t),
        "engine_start_s": start,
        "switch_s": switch,
        "eval_s": evals,
        "point_total_s": [x["total_s"] for x in t],
        "outside_eval_share": outside,
        "median_switch_s": statistics.median(switch[steady]),
        "ratio_cold_over_switch": start / statistics.median(switch[steady]),
        "median_outside_eval_share": statistics.median(outside[steady]),
        "peak_rss_gb": peak / 1e9,
        "imports_rss_gb": floor / 1e9,
        "peak_over_model": peak / size,
        "peak_above_imports_over_model": (peak - floor) / size,
        "merge_inputs": records[-1].get("merge_inputs", {}).get("resident_bytes"),
    }


def markdown(res: dict) -> str:
    lines = [
        f"# Real-size sweep: random Qwen2.5-0.5B-shaped pair ({res['model_gb']:.2f} GB fp32), vLLM on CPU",
        "",
        f"`scripts/bench_realsize.py`, {res['engine']}, {res['machine']}, {res['points']} points per mode, "
        f"toy suite (icl limit {res['icl_limit']}, if limit {res['if_limit']}). Each mode is one run in its own "
        "process; the first point (engine start) is left out of the medians.",
        "",
        "| mode | engine start (s) | switch median (s) | cold/switch | peak RSS (GB) | peak / model | "
        "(peak - imports) / model | outside eval (median) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for mode, f in res["modes"].items():
        lines.append(
            f"| {mode} | {f['engine_start_s']:.1f} | {f['median_switch_s']:.2f} | "
            f"**{f['ratio_cold_over_switch']:.2g}x** | {f['peak_rss_gb']:.2f} | {f['peak_over_model']:.2f}x | "
            f"**{f['peak_above_imports_over_model']:.2f}x** | "
            f"**{100 * f['median_outside_eval_share']:.1f}%** |"
        )
    lines += [
        "",
        f"Targets: cold/switch >= {TARGETS['ratio']:.0f}x; (peak - imports)/model <= {TARGETS['resident']}x "
        f"resident, <= {TARGETS['disk']}x streaming (`storage.device=disk`); outside eval < "
        f"{100 * TARGETS['outside_eval']:.0f}%. Imports alone: {res['imports_rss_gb']:.2f} GB.",
        "",
    ]
    lines += [f"- {m}: {v}" for m, v in res.get("verdicts", {}).items()]
    prof = res.get("profile")
    if prof:
        r = prof["rss"]
        lines += [
            "",
            "## Why (profile of one switch and RSS by stage, one more process, same pair)",
            "",
            f"RSS: before the engine {r['imports_gb']:.2f} GB, engine started {r['engine_started_gb']:.2f} GB, "
            "inputs "
            f"resident {r['inputs_resident_gb']:.2f} GB, peak over three switches {r['peak_gb']:.2f} GB "
            f"(model {res['model_gb']:.2f} GB). Profiled switch {prof['profiled_switch_s']:.2f} s:",
            "",
            "| function | s | share |",
            "|---|---|---|",
        ]
        lines += [f"| `{t['fn']}` | {t['s']:.2f} | {100 * t['share']:.0f}% |" for t in prof["top_tottime"]]
    return "\n".join(lines) + "\n"


def verdicts(res: dict) -> dict[str, str]:
    out = {}
    for mode, f in res["modes"].items():
        mem_target = TARGETS["resident" if mode == "resident" else "disk"]
        ok = {
            "switch": f["ratio_cold_over_switch"] >= TARGETS["ratio"],
            "memory": f["peak_above_imports_over_model"] <= mem_target,
            "outside eval": f["median_outside_eval_share"] < TARGETS["outside_eval"],
        }
        out[mode] = ", ".join(f"{k} {'met' if v else 'MISSED'}" for k, v in ok.items())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pair", type=Path, default=Path(tempfile.gettempdir()) / "mergesweep-realsize-pair")
    ap.add_argument("--points", type=int, default=3)
    ap.add_argument("--modes", nargs="+", choices=sorted(MODES), default=["resident", "disk"])
    ap.add_argument("--icl-limit", type=int, default=40)
    ap.add_argument("--if-limit", type=int, default=8)
    ap.add_argument("--out", type=Path, default=REPO / "results/bench")
    ap.add_argument("--profile-child", help=argparse.SUPPRESS)
    ap.add_argument("--no-profile", action="store_true", help="skip the profile of one switch")
    ap.add_argument("--only-profile", action="store_true", help="add the profile to an existing realsize.json")
    args = ap.parse_args()
    if args.profile_child:
        return profile_child(args.profile_child)
    if args.only_profile:  # add the profile to an existing result (each part is its own process anyway)
        res = json.loads((args.out / "realsize.json").read_text())
        res["profile"] = profile(ensure_pair(args.pair)[0].parent)
        return write(res, args.out)
    if args.points < 3:
        raise SystemExit("bench_realsize: --points must be >= 3 (the first point pays the engine start)")
    base, inst = ensure_pair(args.pair)
    size = (inst / "model.safetensors").stat().st_size
    floor = imports_rss()
    from mergesweep.engines.vllm_engine import vllm_distribution

    res = {
        "what": "Qwen2.5-0.5B-shaped random pair through the app: switch vs cold start, peak RSS, time outside eval",
        "engine": "+".join(vllm_distribution()),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
        "model_gb": size / 1e9,
        "points": args.points,
        "icl_limit": args.icl_limit,
        "if_limit": args.if_limit,
        "imports_rss_gb": floor / 1e9,
        "targets": TARGETS,
        "modes": {},
    }
    with tempfile.TemporaryDirectory(prefix="ms-realsize-") as tmp:
        for mode in args.modes:
            records, peak = sweep(mode, base, inst, Path(tmp), args)
            res["modes"][mode] = figures(records, peak, floor, size)
            scalars = {k: v for k, v in res["modes"][mode].items() if not isinstance(v, list)}
            print(mode, json.dumps(scalars), flush=True)
    res["verdicts"] = verdicts(res)
    if not args.no_profile:
        res["profile"] = profile(args.pair)
    write(res, args.out)


def write(res: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "realsize.json").write_text(json.dumps(res, indent=1) + "\n")
    (out / "realsize.md").write_text(markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
