#!/usr/bin/env python
"""What the README shows for the instruction-residual miniature, computed from the records (nothing typed by hand).

Per point of the residual sweep (new base + lam x (instruct - base)): ICL and IF with their 95% bootstrap CIs and,
when ``scripts/domain_loss_curve.py`` has run, the held-out domain loss; then paired bootstrap tests
(``evals.compare``, items paired by doc id, 10000 resamples, seed 0) of the residual points against the new base
(lam=0), the base and the instruct model (lam 0 and 1 of the base->instruct sweep, same suite and items).
Writes ``<residual sweep>/summary.md``.

    python scripts/residual_summary.py results/miniatures/mini_residual results/miniatures/pair_v6
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "scripts"))

from mergesweep.store.records import read_record
from real_cpu_summary import PAIRED_HEADER, paired_rows, record_cell, records_by_lam


def summarize(residual: Path, pair: Path) -> str:
    res, ref = records_by_lam(residual), records_by_lam(pair)
    loss = pd.read_csv(residual / "domain_loss.csv") if (residual / "domain_loss.csv").exists() else None
    lines = [
        "| point | ICL [95% CI] | IFEval prompt-strict [95% CI] | held-out domain loss [95% CI] |",
        "|---|---|---|---|",
    ]

    def loss_cell(label: str, lam: float | None) -> str:
        if loss is None:
            return ""
        rows = loss[(loss["label"] == label) & (loss["lam"].isna() if lam is None else loss["lam"] == lam)]
        return "" if rows.empty else "{heldout_loss:.3f} [{low:.3f}, {high:.3f}]".format(**rows.iloc[0])

    refs = (("base (pair lam=0)", ref[0.0], "base"), ("instruct (pair lam=1)", ref[1.0], "instruct"))
    for name, path, label in refs:
        lines.append(f"| {name} | {record_cell(path, 'icl')} | {record_cell(path, 'if')} | {loss_cell(label, None)} |")
    family = read_record(next(iter(res.values()))).family
    for lam in sorted(res):
        who = "new base" if lam == 0 else f"new base + {lam:g} x residual"
        lines.append(
            f"| {who} | {record_cell(res[lam], 'icl')} | {record_cell(res[lam], 'if')} | {loss_cell(family, lam)} |"
        )
    lines += ["", *PAIRED_HEADER]
    tests = [(f"residual lam={lam:g} - new base", res[lam], res[0.0]) for lam in sorted(res) if lam > 0]
    tests += [("new base - base", res[0.0], ref[0.0])]
    tests += [(f"residual lam={lam:g} - instruct", res[lam], ref[1.0]) for lam in sorted(res) if lam >= 1]
    for name, a, b in tests:
        lines += paired_rows(name, a, b, {"if": "if", "icl": "icl"})
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("residual", type=Path, help="the residual sweep (e.g. results/miniatures/mini_residual)")
    ap.add_argument(
        "pair", type=Path, help="the base->instruct sweep on the same suite (e.g. results/miniatures/pair_v6)"
    )
    a = ap.parse_args(argv)
    text = summarize(a.residual, a.pair)
    (a.residual / "summary.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
