#!/usr/bin/env python
"""What the README shows for ``+experiment=real_cpu``, computed from the sweep's records (nothing typed by hand).

Per point: ICL and IF with their 95% bootstrap CIs, the seconds spent switching (merge + swap + prefix-cache
reset) and evaluating; the sweep's total; and paired bootstrap tests (``evals.compare``, items paired by doc id)
between lam=0, the best lam (``figures.best_lam``: highest ICL with IF within 0.05 of lam=1) and lam=1, on both
parts. Writes ``<sweep>/summary.md`` and ``summary.json``.

    python scripts/real_cpu_summary.py results/real_cpu
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from mergesweep.evals.compare import compare
from mergesweep.report.figures import best_lam
from mergesweep.report.report import load_table
from mergesweep.store.records import read_record


def ci_cell(rec, part: str) -> str:
    """``0.517 [0.456, 0.583]``: a record's part score with its 95% CI (also ``residual_summary.py``'s)."""
    v = getattr(rec.summary, "if_" if part == "if" else part)
    c = rec.ci.get(part)
    return f"{v:.3f} [{c.low:.3f}, {c.high:.3f}]" if c else f"{v:.3f}"


def record_cell(path: Path | None, part: str) -> str:
    """``ci_cell`` of the record at ``path``; blank where a table has no point (the miniature summaries' cells)."""
    return ci_cell(read_record(path), part) if path else ""


PAIRED_HEADER = ["| paired test (A - B) | part | diff | 95% CI | one-sided p (A > B) |", "|---|---|---|---|---|"]


def paired_rows(name: str, a: Path, b: Path, parts: dict[str, str]) -> list[str]:
    """One Markdown row per part (``{part: label}``): ``compare``'s paired bootstrap of A - B (10000 resamples,
    seed 0), as the miniature studies' summaries print it."""
    rows = []
    for part, label in parts.items():
        t = compare(a, b, part, n_resamples=10000, seed=0)
        rows.append(
            f"| {name} | {label} | {t['diff']:+.3f} | [{t['low']:+.3f}, {t['high']:+.3f}] | {t['p_value']:.4f} |"
        )
    return rows


def records_by_lam(sweep: Path, family: str | None = None) -> dict[float, Path]:
    """``{lam: record path}`` of one sweep folder (of one family where the folder holds several)."""
    out = {}
    for path in sorted((sweep / "records").glob("*.json")):
        rec = read_record(path)
        if family is None or rec.family == family:
            out[rec.lam] = path
    return out


def summarize(sweep: Path) -> dict:
    paths = sorted((sweep / "records").glob("*.json"))
    recs = {p: read_record(p) for p in paths}
    by_lam = {r.lam: p for p, r in recs.items()}
    best = best_lam(load_table(sweep, warn=False)).iloc[0]
    lam_best = float(best["best_lam"])
    rows = []
    for lam in sorted(by_lam):
        r = recs[by_lam[lam]]
        ev = sum(r.times.eval_s.values())
        switch = r.times.merge_s + r.times.swap_s + r.times.reset_s
        rows.append(
            {
                "lam": lam,
                "icl": ci_cell(r, "icl"),
                "if": ci_cell(r, "if"),
                "switch_s": switch,
                "eval_s": ev,
                "total_s": r.times.total_s,
            }
        )
    tests = []
    for a, b in tested_pairs(lam_best):
        for part in ("icl", "if"):
            res = compare(by_lam[a], by_lam[b], part, n_resamples=10000, seed=0)
            keep = ("diff", "low", "high", "p_value")
            tests.append({"a": a, "b": b, "part": part, **{k: res[k] for k in keep}})
    start = sum(r.times.engine_start_s for r in recs.values())  # the points that started an engine (one per process)
    kinds = instruction_kinds(sweep, [recs[by_lam[lam]] for lam in (0.0, 1.0)])
    return {"points": rows, "best_lam": lam_best, "tests": tests, "engine_start_s": start, "instructions": kinds}


def tested_pairs(lam_best: float) -> list[tuple[float, float]]:
    """(A, B) for the paired tests: the best lam against lam 0 and lam 1, and lam 0 against lam 1, each pair once
    (a best lam of 0 or 1 is one of the ends, so it would repeat the ends' pair the other way round)."""
    pairs = dict.fromkeys(p for p in ((lam_best, 0.0), (lam_best, 1.0), (0.0, 1.0)) if p[0] != p[1])
    return [p for p in pairs if p[::-1] not in pairs or p[0] > p[1]]


def instruction_kinds(sweep: Path, recs: list) -> dict[str, list[int]]:
    """Per IFEval instruction id: [prompts that ask for it, kept at the first record, kept at the second]
    (instruction-level strict, from the samples files): which formats the sibling gained or lost."""
    out: dict[str, list[int]] = {}
    for j, rec in enumerate(recs):
        task = next(t for t in rec.samples if t.startswith("ifeval"))
        for line in (sweep / rec.samples[task]).read_text().splitlines():
            row = json.loads(line)
            for iid, ok in zip(row["doc"]["instruction_id_list"], row["inst_level_strict_acc"]):
                c = out.setdefault(iid, [0, 0, 0])
                c[0] += j == 0
                c[1 + j] += bool(ok)
    return dict(sorted(out.items(), key=lambda kv: (-kv[1][0], kv[0])))


def markdown(s: dict) -> str:
    out = [
        "| lam | ICL (18 tasks) [95% CI] | IFEval prompt-strict [95% CI] | switch (s) | eval (s) |",
        "|---|---|---|---|---|",
    ]
    for r in s["points"]:
        out.append(f"| {r['lam']:g} | {r['icl']} | {r['if']} | {r['switch_s']:.1f} | {r['eval_s']:.0f} |")
    evals = sum(r["eval_s"] for r in s["points"])
    switches = sum(r["switch_s"] for r in s["points"])
    out += [
        "",
        f"Engine start {s['engine_start_s']:.0f} s; {len(s['points'])} points: {evals / 60:.1f} min evaluating, "
        f"{switches:.0f} s switching. Best lam (highest ICL with IF within 0.05 of lam=1): **{s['best_lam']:g}**.",
        "",
        "| paired test (A - B) | part | diff | 95% CI | one-sided p (A > B) |",
        "|---|---|---|---|---|",
    ]
    for t in s["tests"]:
        ci = f"[{t['low']:+.3f}, {t['high']:+.3f}]" if "low" in t else ""
        out.append(f"| lam {t['a']:g} - lam {t['b']:g} | {t['part']} | {t['diff']:+.3f} | {ci} | {t['p_value']:.4f} |")
    out += ["", "| IFEval instruction | prompts | kept at lam 0 | kept at lam 1 |", "|---|---|---|---|"]
    out += [f"| `{k}` | {n} | {a} | {b} |" for k, (n, a, b) in s["instructions"].items()]
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("sweep", type=Path)
    a = ap.parse_args()
    s = summarize(a.sweep)
    (a.sweep / "summary.json").write_text(json.dumps(s, indent=1) + "\n")
    (a.sweep / "summary.md").write_text(markdown(s))
    print(markdown(s))


if __name__ == "__main__":
    main()
