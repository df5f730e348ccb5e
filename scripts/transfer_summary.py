#!/usr/bin/env python
"""What the README shows for the adapter-transfer miniature, computed from the records (nothing typed by hand).

Per lam of ``+experiment=mini_adapter_transfer`` (instruct + lam x task LoRA): task accuracy (the suite's ICL
slot, ``arith_word``) and IFEval with their 95% bootstrap CIs, for the plain and the GIFT-guided adapter side by
side; optionally the adapters on the base they were trained on (a sweep with ``merge.anchor=base``), the accuracy a
transfer is measured against. Then paired bootstrap tests (``evals.compare``, items paired by doc id, 10000
resamples, seed 0): guided - plain at every lam > 0 (the issue's comparison: same seed, budget and items), and
each adapter at lam against the instruct model (lam=0). Writes ``<sweep>/summary.md`` and the study's figure,
``<sweep>/figures/transfer_vs_lam.{png,pdf}`` (task accuracy and IFEval against lam, one line per adapter).

    python scripts/transfer_summary.py results/miniatures/mini_adapter_transfer \
        --on-base results/miniatures/mini_adapter_on_base
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "scripts"))

from mergesweep.report.figures import plot_parts_vs_lam
from mergesweep.report.report import load_table
from real_cpu_summary import PAIRED_HEADER, paired_rows, record_cell, records_by_lam

PLAIN, GUIDED = "gemma3-270m+arith", "gemma3-270m+arith-gift"


def _test_row(name: str, a: Path, b: Path) -> list[str]:
    return paired_rows(name, a, b, {"icl": "task", "if": "IFEval"})


def summarize(sweep: Path, on_base: Path | None = None) -> str:
    plain, guided = records_by_lam(sweep, PLAIN), records_by_lam(sweep, GUIDED)
    if not plain or not guided:
        raise SystemExit(f"{sweep}: needs records of both {PLAIN} and {GUIDED} (found lams {plain} / {guided})")
    lines = [
        "| point | plain: task acc. [95% CI] | guided: task acc. [95% CI] | plain: IFEval [95% CI] "
        "| guided: IFEval [95% CI] |",
        "|---|---|---|---|---|",
    ]
    rows: list[tuple[str, Path | None, Path | None]] = []  # (point, plain record, guided record)
    if on_base:
        pb, gb = records_by_lam(on_base, PLAIN), records_by_lam(on_base, GUIDED)
        for lam in sorted(set(pb) | set(gb)):
            rows.append((f"base + {lam:g} x adapter (where it was trained)", pb.get(lam), gb.get(lam)))
    for lam in sorted(set(plain) | set(guided)):
        who = "instruct (lam=0)" if lam == 0 else f"instruct + {lam:g} x adapter"
        rows.append((who, plain.get(lam), guided.get(lam)))
    for who, p, g in rows:
        cells = [record_cell(path, part) for part in ("icl", "if") for path in (p, g)]
        lines.append(f"| {who} | " + " | ".join(cells) + " |")
    lines += ["", *PAIRED_HEADER]
    for lam in sorted(set(plain) & set(guided)):
        if lam > 0:
            lines += _test_row(f"lam={lam:g}: guided - plain", guided[lam], plain[lam])
    for name, fam in (("plain", plain), ("guided", guided)):
        for lam in sorted(fam):
            if lam > 0 and 0.0 in fam:
                lines += _test_row(f"{name} lam={lam:g} - instruct", fam[lam], fam[0.0])
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("sweep", type=Path, help="the transfer sweep (e.g. results/miniatures/mini_adapter_transfer)")
    ap.add_argument("--on-base", type=Path, help="the adapters merged into the base (merge.anchor=base)")
    a = ap.parse_args(argv)
    text = summarize(a.sweep, a.on_base)
    (a.sweep / "summary.md").write_text(text)
    labels = {"icl": "task accuracy (arith_word)", "if": "IFEval (prompt-level strict)"}
    plot_parts_vs_lam(load_table(a.sweep, warn=False), a.sweep / "figures", labels, stem="transfer_vs_lam")
    print(text)


if __name__ == "__main__":
    main()
