"""Records -> table and trade-off plot (ICL average vs IF score, one line per family/method, lam labels).

``mergesweep report results/<sweep> [more sweep folders] [--out DIR]`` rebuilds them at any time; the Hydra
callback calls the same code at the end of every multirun. ``load_table`` is the one way records become a
table (paper figures in ``figures.py`` read it too).

Nothing is left out silently: a record file that cannot be read is named in a warning (and skipped); a suite
with one part (ICL only, IF only) gets that part plotted against lam and tabulated; an empty or missing folder
is one clear error line.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..paths import apply_env
from ..store.records import Record, RecordStore
from . import tracking as tr
from .spec import TrackingSpec

log = logging.getLogger(__name__)
COLUMNS = [
    "sweep",
    "family",
    "method",
    "lam",
    "extrapolation",
    "icl",
    "icl_low",
    "icl_high",
    "if",
    "if_low",
    "if_high",
    "switch_s",
    "eval_s",
    "point_id",
    "flags",  # degenerate but finite outcomes, ";"-joined (e.g. all_generations_empty); "" for none
    "instruct_only",  # base and instruct are one checkpoint (``_instruct_only``)
]
PARTS = ("icl", "if")
LABELS = {"icl": "few-shot ICL accuracy (macro average)", "if": "instruction following (headline score)"}


class NoRecords(FileNotFoundError):
    """No complete record under the given folder(s): nothing to report."""


def _row(r: Record, sweep: str) -> dict:
    row = {
        "sweep": sweep,
        "family": r.family,
        "method": r.method,
        "lam": r.lam,
        "extrapolation": r.extrapolation,
        "icl": r.summary.icl,
        "if": r.summary.if_,
        "switch_s": r.times.switch_s,
        "eval_s": sum(r.times.eval_s.values()),
        "point_id": r.point_id,
        "flags": ";".join(r.flags),
        "instruct_only": _instruct_only(r),
    }
    for part in PARTS:
        ci = r.ci.get(part)
        row[f"{part}_low"], row[f"{part}_high"] = (ci.low, ci.high) if ci else (None, None)
    return row


def _instruct_only(r: Record) -> bool:
    """Whether the point's base and instruct are one checkpoint (same file hashes): an instruct-only family, such as
    SmolLM2-135M-Instruct here, where every lam is the same model and the point is a reference, not a curve."""
    ck = r.provenance.get("checkpoints") or {}
    return bool(ck.get("base")) and ck.get("base") == ck.get("instruct")


def _as_list(sweep_dirs: Path | str | Sequence[Path | str]) -> list[Path]:
    return [Path(sweep_dirs)] if isinstance(sweep_dirs, (str, Path)) else [Path(d) for d in sweep_dirs]


def load_table(sweep_dirs: Path | str | Sequence[Path | str], warn: bool = True) -> pd.DataFrame:
    """One row per complete record of one or several sweep folders, sorted by sweep, family, method and lam.

    Unreadable record files are skipped and named in a warning (``warn``); the ``df.attrs["skipped"]`` list
    holds ``(path, reason)`` for each. A part a suite does not have is NaN in its columns.
    """
    rows, skipped = [], []
    for d in _as_list(sweep_dirs):
        recs, bad = RecordStore(d).scan()
        rows += [_row(r, d.name) for r in recs]
        skipped += bad
    if warn:
        for path, why in skipped:
            log.warning("skipping unreadable record %s: %s", path, why)
    df = pd.DataFrame(rows, columns=COLUMNS)
    for c in COLUMNS[5:11]:
        df[c] = pd.to_numeric(df[c], errors="coerce").astype(float)
    df["extrapolation"] = df["extrapolation"].astype(bool)
    df["instruct_only"] = df["instruct_only"].fillna(False).astype(bool)
    df["flags"] = df["flags"].fillna("").astype(str)
    df = df.sort_values(["sweep", "family", "method", "lam"]).reset_index(drop=True)
    df.attrs["skipped"] = [(str(p), why) for p, why in skipped]
    return df


def parts_present(df: pd.DataFrame) -> list[str]:
    """The parts (``icl``, ``if``) with at least one number in the table."""
    return [p for p in PARTS if df[p].notna().any()]


def _groups(df: pd.DataFrame) -> Iterator[tuple[str, pd.DataFrame]]:
    keys = ["sweep", "family", "method"] if df["sweep"].nunique() > 1 else ["family", "method"]
    for key, g in df.groupby(keys, sort=True):
        yield " / ".join(map(str, key)), g.sort_values("lam")


def plot_tradeoff(df: pd.DataFrame, out: Path, title: str = "") -> Path:
    """ICL macro-average (x) vs IF score (y), 95% bootstrap CIs as error bars, each point labelled with lam.

    With only one part in the table, that part is plotted against lam instead (nothing to trade off)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    both = df[df["icl"].notna() & df["if"].notna()]
    parts = parts_present(df)
    fig, ax = plt.subplots(figsize=(6.4, 5.2), dpi=130)
    for label, g in _groups(both if len(both) else df):
        if len(both):
            x, y, xerr, yerr = g["icl"], g["if"], _err(g, "icl"), _err(g, "if")
        else:
            x, y, xerr, yerr = g["lam"], g[parts[0]], None, _err(g, parts[0])
        line = ax.errorbar(x, y, xerr=xerr, yerr=yerr, marker="o", capsize=3, lw=1.5, label=label)
        ex = g[g["extrapolation"]]
        if len(ex):
            ax.scatter(
                x[ex.index],
                y[ex.index],
                s=90,
                facecolors="none",
                edgecolors=line[0].get_color(),
                label=f"{label}: extrapolation (lam outside [0, 1])",
            )
        for i, r in g.iterrows():
            ax.annotate(f"λ={r['lam']:g}", (x[i], y[i]), textcoords="offset points", xytext=(6, 4), fontsize=8)
        mark_flagged(ax, x, y, g["flags"], fontsize=7)
    ax.set_xlabel(LABELS["icl"] if len(both) else "strength λ")
    ax.set_ylabel(LABELS["if"] if len(both) else LABELS[parts[0]])
    ax.set_title(title or ("partial adaptation trade-off" if len(both) else f"{parts[0].upper()} vs strength"))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    plt.close(fig)
    return out


def mark_flagged(
    ax: Any, x: pd.Series, y: pd.Series, flags: pd.Series | None, fontsize: float = 7, size: float = 60
) -> None:
    """A red cross and the flag's name on each flagged point (e.g. all generations empty): the model broke at
    that strength, which is a result to see on the curve, not a point to hide."""
    if flags is None:
        return
    sel = flags.astype(str).str.len() > 0
    if not sel.any():
        return
    label = "degenerate output (flagged)"
    shown = label in ax.get_legend_handles_labels()[1]
    ax.scatter(x[sel], y[sel], marker="x", color="red", s=size, zorder=6, label="_nolegend_" if shown else label)
    for xi, yi, f in zip(x[sel], y[sel], flags[sel]):
        ax.annotate(str(f), (xi, yi), textcoords="offset points", xytext=(4, -9), fontsize=fontsize, color="red")


def _err(g: pd.DataFrame, col: str) -> list[np.ndarray] | None:
    lo, hi = g[f"{col}_low"], g[f"{col}_high"]
    if lo.isna().any() or hi.isna().any():
        return None
    return [(g[col] - lo).clip(lower=0).to_numpy(), (hi - g[col]).clip(lower=0).to_numpy()]


def markdown(df: pd.DataFrame, title: str) -> str:
    """The report page: plot, table of the parts that exist, and every skipped file with its reason."""
    missing = [p for p in PARTS if p not in parts_present(df)]
    drop = ["point_id"] + [f"{p}{s}" for p in missing for s in ("", "_low", "_high")]
    if df["sweep"].nunique() <= 1:
        drop.append("sweep")
    if not (df["flags"].str.len() > 0).any():
        drop.append("flags")
    text = f"# {title}\n\n![trade-off](tradeoff.png)\n\n"
    if missing:
        text += f"No {' or '.join(p.upper() for p in missing)} part in these records.\n\n"
    text += df.drop(columns=drop).to_markdown(index=False, floatfmt=".3f") + "\n"
    flagged = df[df["flags"].str.len() > 0]
    if len(flagged):
        text += "\n## Flagged points (finite but degenerate outputs: results, not failures)\n\n" + "".join(
            f"- {r['family']} / {r['method']} λ={r['lam']:g}: {r['flags']} (`{r['point_id']}`)\n"
            for _, r in flagged.iterrows()
        )
    if df.attrs.get("skipped"):
        text += "\n## Skipped record files\n\n" + "".join(f"- `{p}`: {why}\n" for p, why in df.attrs["skipped"])
    return text


def write_report(
    sweep_dirs: Path | str | Sequence[Path | str], tracking: TrackingSpec | None = None, out: Path | None = None
) -> dict[str, Path]:
    """``records.csv``, ``tradeoff.png`` and ``report.md`` (and a W&B summary run) for one or several sweeps.

    ``out`` defaults to the sweep folder when there is one; several folders need an ``out``."""
    dirs = _as_list(sweep_dirs)
    if out is None and len(dirs) > 1:
        raise ValueError("a report over several sweep folders needs an output folder (--out DIR)")
    out = Path(out) if out is not None else dirs[0]
    df = load_table(dirs)
    if df.empty:
        where = ", ".join(str(RecordStore(d).records) for d in dirs)
        why = "no such folder" if not any(d.exists() for d in dirs) else "no complete records"
        unreadable = f" ({len(df.attrs['skipped'])} unreadable)" if df.attrs["skipped"] else ""
        raise NoRecords(f"{why}: {where}{unreadable}")
    out.mkdir(parents=True, exist_ok=True)
    title = f"sweep '{dirs[0].name}'" if len(dirs) == 1 else "sweeps " + ", ".join(f"'{d.name}'" for d in dirs)
    csv = out / "records.csv"
    df.to_csv(csv, index=False)
    png = plot_tradeoff(df, out / "tradeoff.png", title=title)
    from .figures import figures_markdown, write_figures  # figures.py imports this module (a cycle)

    figures = write_figures(dirs, df, out)
    md = out / "report.md"
    md.write_text(markdown(df, title[0].upper() + title[1:]) + figures_markdown(figures, out))
    result = {"csv": csv, "plot": png, "markdown": md, **{f"figure {k}": p for k, p in figures.items()}}
    if tracking is not None:
        run_dir = tr.log_sweep(tracking, out, df, png, figures)
        if run_dir:
            result["wandb"] = Path(run_dir)
    return result


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="mergesweep report", description="Rebuild a sweep's table and trade-off plot from its records."
    )
    ap.add_argument("sweep_dirs", nargs="+", type=Path, help="e.g. results/default (several: one combined report)")
    ap.add_argument("--out", type=Path, default=None, help="output folder (default: the sweep folder)")
    args = ap.parse_args(argv)

    apply_env(offline=True)  # W&B and matplotlib stay local
    logging.basicConfig(level=logging.WARNING, format="mergesweep report: warning: %(message)s")
    try:
        paths = write_report(args.sweep_dirs, out=args.out)
    except (NoRecords, ValueError) as e:
        print(f"mergesweep report: error: {e}", file=sys.stderr)
        raise SystemExit(1) from None
    for kind, path in paths.items():
        print(f"{kind}: {path}")


if __name__ == "__main__":
    main()
