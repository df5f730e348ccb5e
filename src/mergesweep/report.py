"""Records -> table and trade-off plot (ICL average vs IF score, one line per family/method, lam labels).

``mergesweep-report results/<sweep>`` rebuilds them at any time; the Hydra callback calls the same code at
the end of every multirun.
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pandas as pd

from .records import RecordStore

log = logging.getLogger(__name__)
COLUMNS = ["family", "method", "lam", "extrapolation", "icl", "icl_low", "icl_high", "if", "if_low", "if_high",
           "switch_s", "eval_s", "point_id"]


def load_table(sweep_dir: Path) -> pd.DataFrame:
    """One row per complete record, sorted by family, method and lam."""
    rows = []
    for r in RecordStore(sweep_dir):
        ci = r.get("ci", {})
        t = r.get("times", {})
        rows.append({"family": r["family"], "method": r["method"], "lam": r["lam"],
                     "extrapolation": r.get("extrapolation", False), "icl": r["summary"].get("icl"),
                     "icl_low": ci.get("icl", {}).get("low"), "icl_high": ci.get("icl", {}).get("high"),
                     "if": r["summary"].get("if"), "if_low": ci.get("if", {}).get("low"),
                     "if_high": ci.get("if", {}).get("high"),
                     "switch_s": sum(t.get(k, 0.0) for k in ("merge_s", "swap_s", "reset_s")),
                     "eval_s": sum(v for k, v in t.items() if k.startswith("eval_")), "point_id": r["point_id"]})
    df = pd.DataFrame(rows, columns=COLUMNS)
    return df.sort_values(["family", "method", "lam"]).reset_index(drop=True)


def plot_tradeoff(df: pd.DataFrame, out: Path, title: str = "") -> Path:
    """ICL macro-average (x) vs IF score (y), 95% bootstrap CIs as error bars, each point labelled with lam."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 5.2), dpi=130)
    for (fam, meth), g in df.groupby(["family", "method"], sort=True):
        g = g.sort_values("lam")
        xerr = _err(g, "icl")
        yerr = _err(g, "if")
        line = ax.errorbar(g["icl"], g["if"], xerr=xerr, yerr=yerr, marker="o", capsize=3, lw=1.5,
                           label=f"{fam} / {meth}")
        ex = g[g["extrapolation"]]
        if len(ex):
            ax.scatter(ex["icl"], ex["if"], s=90, facecolors="none", edgecolors=line[0].get_color(),
                       label=f"{fam} / {meth}: extrapolation (lam outside [0, 1])")
        for _, r in g.iterrows():
            ax.annotate(f"λ={r['lam']:g}", (r["icl"], r["if"]), textcoords="offset points", xytext=(6, 4), fontsize=8)
    ax.set_xlabel("few-shot ICL accuracy (macro average)")
    ax.set_ylabel("instruction following (headline score)")
    ax.set_title(title or "partial adaptation trade-off")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


def _err(g: pd.DataFrame, col: str):
    lo, hi = g[f"{col}_low"], g[f"{col}_high"]
    if lo.isna().any() or hi.isna().any():
        return None
    return [(g[col] - lo).clip(lower=0).to_numpy(), (hi - g[col]).clip(lower=0).to_numpy()]


def write_report(sweep_dir: Path, tracking: dict | None = None) -> dict[str, Path]:
    """``records.csv``, ``tradeoff.png`` and ``report.md`` in the sweep folder (and a W&B summary run)."""
    sweep_dir = Path(sweep_dir)
    df = load_table(sweep_dir)
    if df.empty:
        raise FileNotFoundError(f"no complete records under {sweep_dir / 'records'}")
    csv = sweep_dir / "records.csv"
    df.to_csv(csv, index=False)
    png = plot_tradeoff(df, sweep_dir / "tradeoff.png", title=f"sweep '{sweep_dir.name}'")
    md = sweep_dir / "report.md"
    md.write_text(f"# Sweep `{sweep_dir.name}`\n\n![trade-off](tradeoff.png)\n\n"
                  + df.drop(columns=["point_id"]).to_markdown(index=False, floatfmt=".3f") + "\n")
    out = {"csv": csv, "plot": png, "markdown": md}
    if tracking is not None:
        from . import tracking as tr

        run_dir = tr.log_sweep(tracking, sweep_dir, df, png)
        if run_dir:
            out["wandb"] = Path(run_dir)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Rebuild a sweep's table and trade-off plot from its records.")
    ap.add_argument("sweep_dirs", nargs="+", type=Path, help="e.g. results/default")
    args = ap.parse_args(argv)
    for d in args.sweep_dirs:
        for kind, path in write_report(d).items():
            print(f"{kind}: {path}")


if __name__ == "__main__":
    main()
