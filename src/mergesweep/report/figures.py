"""The figures a partial-adaptation paper shows, from the records table (PNG + PDF, sized for one column).

``write_report`` calls ``write_figures`` after the table and the quick-look plot; everything lands in
``<sweep>/figures/``:

* ``tradeoff__<family>``: ICL (x) vs IF (y), one line per method, every point labelled with lam, 95% CIs as
  error bars, the family's Pareto front (no other point has both higher ICL and higher IF) ringed and joined,
  and the pure base (lam=0) and pure instruct (lam=1) models of a base->instruct method as reference stars.
* ``parts_vs_lam``: ICL and IF each against lam (two stacked panels, CI bands), one line per family/method.
* ``tasks__<family>__<method>``: per-task headline metric against lam as a heatmap (the tasks that move).
* ``best_lam.md|csv``: per family and method, the lam with the highest ICL among points whose IF is within
  ``if_tolerance`` of the family's instruct model (lam=1 of a base->instruct method), with both CIs and the
  paired ICL gain over that model (``gain.py``): "how much instruction tuning can we keep, getting ICL back?"

Why one column (3.3 in) and 7 pt text: these go into two-column papers as they are; the PNG is 300 dpi for
slides and the PDF is vector for the paper. Suites with one part (``summary.if`` None) get the figures that
part supports; nothing raises on a missing part. Records of different suites (``partial_adaptation`` writes
``icl_ifeval`` and ``alpaca_judged`` points at the same lam) and of different sweeps stay separate curves.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ..store.records import Record, RecordStore
from .gain import add_icl_gain, gain_cell, record_files
from .report import mark_flagged

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)
COLUMN_IN = 3.3  # one column of a two-column paper
BASE_TO_INSTRUCT = ("linear", "slerp")  # methods whose lam=0 is the base and lam=1 the instruct model
STYLE = {
    "font.size": 7,
    "axes.titlesize": 7,
    "axes.labelsize": 7,
    "xtick.labelsize": 6,
    "ytick.labelsize": 6,
    "legend.fontsize": 6,
    "lines.linewidth": 1.0,
    "lines.markersize": 3.5,
    "savefig.dpi": 300,
    "pdf.fonttype": 42,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.5,
}


def pareto_front(icl: Sequence[float], if_: Sequence[float]) -> np.ndarray:
    """Boolean mask of the points no other point dominates (>= on both, > on one); NaNs are never on it."""
    x, y = np.asarray(icl, float), np.asarray(if_, float)
    ok = ~(np.isnan(x) | np.isnan(y))
    mask = np.zeros(len(x), bool)
    for i in np.flatnonzero(ok):
        dominated = ok & (x >= x[i]) & (y >= y[i]) & ((x > x[i]) | (y > y[i]))
        mask[i] = not dominated.any()
    return mask


def _instruct_rows(df: pd.DataFrame, family: str, suite: str, part: str) -> pd.DataFrame:
    """The family's instruct model on the suite, rows with a ``part`` score: lam=1 of its base->instruct methods,
    or lam=0 of a method anchored at the instruct model (``merge.anchor=instruct``: adapter transfer adds to it)."""
    anchor = df["anchor"] if "anchor" in df else pd.Series("base", index=df.index)
    at1 = np.isclose(df["lam"], 1.0) & df["method"].isin(BASE_TO_INSTRUCT) & (anchor == "base")
    at0 = np.isclose(df["lam"], 0.0) & (anchor == "instruct")
    return df[(at1 | at0) & (df["family"] == family) & df[part].notna() & (df["suite"] == suite)]


def instruct_if(df: pd.DataFrame, family: str, suite: str = "") -> float | None:
    """IF of the family's pure instruct model on the same suite (``_instruct_rows``), else None."""
    ref = _instruct_rows(df, family, suite, "if")
    return float(ref["if"].iloc[0]) if len(ref) else None


def instruct_point(df: pd.DataFrame, family: str, suite: str = "", method: str = "") -> str | None:
    """Point id of the family's instruct model on the suite with an ICL score: that of ``method`` when its curve
    has one, else the first there is (the model ``instruct_if`` reads); None if none."""
    ref = _instruct_rows(df, family, suite, "icl")
    if "point_id" not in ref or ref.empty:
        return None
    own = ref[ref["method"] == method]
    return str((own if len(own) else ref)["point_id"].iloc[0])


BEST_LAM_COLUMNS = [
    "family", "method", "suite", "best_lam", "icl", "icl_low", "icl_high", "if", "if_low", "if_high",
    "instruct_if", "if_floor", "n_points", "point_id", "instruct_point", "note",
]  # fmt: skip


def best_lam(df: pd.DataFrame, if_tolerance: float = 0.05) -> pd.DataFrame:
    """Per family and method: the highest-ICL point with IF >= (instruct IF - ``if_tolerance``), with its CIs,
    its ``point_id`` and the ``instruct_point`` that ``gain.add_icl_gain`` measures its ICL gain against."""
    df = df if "suite" in df else df.assign(suite="")
    both = df[df["icl"].notna() & df["if"].notna()]
    rows = [
        {
            **_best_lam_row(g, fam, meth, suite, instruct_if(df, fam, suite), if_tolerance),
            "instruct_point": instruct_point(df, fam, suite, meth),
        }
        for (fam, meth, suite), g in both.groupby(["family", "method", "suite"], sort=True)
    ]
    return pd.DataFrame(rows, columns=BEST_LAM_COLUMNS)


def _best_lam_row(
    g: pd.DataFrame, family: str, method: str, suite: str, ref: float | None, if_tolerance: float
) -> dict[str, object]:
    """One curve's row of the best-lam table. Kept apart from the grouping so that a curve with no answer (no
    instruct reference, or no point above the IF floor) still gets a row whose note says why."""
    row: dict[str, object] = {
        "family": family,
        "method": method,
        "suite": suite,
        "instruct_if": ref,
        "if_floor": None if ref is None else ref - if_tolerance,
    }
    if ref is None:
        return {**row, "note": "no instruct reference (lam=1 of linear/slerp, or lam=0 anchored at instruct)"}
    ok = g[g["if"] >= ref - if_tolerance]
    if ok.empty:
        return {**row, "note": "no point reaches the IF floor"}
    b = ok.sort_values(["icl", "lam"], ascending=[False, True]).iloc[0]
    picked = {c: b[c] for c in ("icl", "icl_low", "icl_high", "if", "if_low", "if_high")}
    only = "instruct_only" in g and bool(g["instruct_only"].all())  # older tables lack the column
    note = "instruct-only (base = instruct): a reference row" if only else ""
    return {**row, "best_lam": b["lam"], **picked, "n_points": len(g), "point_id": b.get("point_id"), "note": note}


def load_records(sweep_dirs: Iterable[Path]) -> dict[str, Record]:
    """``{point_id: Record}`` of the complete records (per-task metrics and suite names live only there)."""
    return {r.point_id: r for d in sweep_dirs for r in RecordStore(d).scan()[0]}


def with_suites(df: pd.DataFrame, records: dict[str, Record]) -> pd.DataFrame:
    """``df`` plus a ``suite`` column (IF scores of different suites are different quantities, never one line) and
    an ``anchor`` column (``merge.anchor``: where lam=0 sits, so that the instruct reference is found)."""
    suite = {pid: str((r.config.get("suite") or {}).get("name", "")) for pid, r in records.items()}
    anchor = {pid: str((r.config.get("merge") or {}).get("anchor", "base")) for pid, r in records.items()}
    out = df.assign(suite=df["point_id"].map(suite).fillna(""), anchor=df["point_id"].map(anchor).fillna("base"))
    if out["sweep"].nunique() > 1:  # a report over several sweeps: each sweep's curves and references stay apart
        out["suite"] = out["sweep"] + ":" + out["suite"]
    return out


def task_matrix(records: dict[str, Record], rows: pd.DataFrame) -> pd.DataFrame:
    """Rows = ``part:task``, columns = lam, values = the task's headline metric (from the records of ``rows``)."""
    cells: dict[tuple[str, float], float] = {}
    for pid in rows["point_id"]:
        r = records.get(pid)
        if r is not None:
            for part, m in r.metrics.items():
                for task, values in m.tasks.items():
                    v = values.get(m.metric)
                    if isinstance(v, (int, float)):
                        cells[(f"{part}:{task}", r.lam)] = float(v)
    if not cells:
        return pd.DataFrame()
    s = pd.Series(cells)
    return s.unstack().sort_index(axis=0).sort_index(axis=1)


# --- drawing ----------------------------------------------------------------------------------------------------
def _plt() -> ModuleType:
    import matplotlib

    logging.getLogger("fontTools").setLevel(logging.WARNING)  # PDF font subsetting logs every table at INFO

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Figure, out: Path, stem: str) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / f"{stem}.png", out / f"{stem}.pdf"]
    for p in paths:
        fig.savefig(p, bbox_inches="tight", pad_inches=0.02)
    _plt().close(fig)
    return paths


def _err(g: pd.DataFrame, col: str) -> list[np.ndarray] | None:
    lo, hi = g[f"{col}_low"], g[f"{col}_high"]
    if lo.isna().all() or hi.isna().all():
        return None
    lo, hi = lo.fillna(g[col]), hi.fillna(g[col])
    return [(g[col] - lo).clip(lower=0).to_numpy(), (hi - g[col]).clip(lower=0).to_numpy()]


def _curves(df: pd.DataFrame, keys: list[str]) -> Iterator[tuple[str, pd.DataFrame]]:
    """(label, rows sorted by lam) per curve; the suite joins the key (and the label) when there are several."""
    multi = "suite" in df and df["suite"].nunique() > 1
    for key, g in df.groupby(keys + (["suite"] if multi else []), sort=True):
        yield " / ".join(map(str, key if isinstance(key, tuple) else (key,))), g.sort_values("lam")


def _ls(g: pd.DataFrame) -> str:
    """No connecting line when several points share a lam (e.g. Optuna trials over knobs): they are not a curve."""
    return "none" if g["lam"].duplicated().any() else "-"


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in str(name))


def plot_family_tradeoff(df: pd.DataFrame, family: str, out: Path) -> list[Path]:
    """One family: a line per method in the ICL-IF plane, lam labels, CIs, Pareto front, base/instruct stars."""
    plt = _plt()
    fam = df[(df["family"] == family) & df["icl"].notna() & df["if"].notna()].reset_index(drop=True)
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(COLUMN_IN, 2.7))
        _draw_method_curves(ax, fam)
        _draw_pareto_front(ax, fam)
        _draw_reference_stars(ax, fam)
        ax.set_xlabel("few-shot ICL accuracy (macro avg.)")
        ax.set_ylabel("instruction following")
        ax.set_title(f"{family}: ICL vs IF (labels: λ; bars: 95% CI)")
        ax.legend(loc="best", frameon=False)
        return _save(fig, out, f"tradeoff__{_safe(family)}")


def _draw_method_curves(ax: Axes, fam: pd.DataFrame) -> None:
    """A line per method (and suite) with CI bars, each point labelled with its lam in the line's colour: the
    labels are how a reader finds the best lam on the plot, so they must match their curve."""
    for label, g in _curves(fam, ["method"]):
        line = ax.errorbar(
            g["icl"],
            g["if"],
            xerr=_err(g, "icl"),
            yerr=_err(g, "if"),
            marker="o",
            capsize=1.2,
            elinewidth=0.5,
            label=label,
            ls=_ls(g),
        )
        for _, r in g.iterrows():
            ax.annotate(
                f"{r['lam']:g}",
                (r["icl"], r["if"]),
                textcoords="offset points",
                xytext=(2.5, 2.5),
                fontsize=5,
                color=line[0].get_color(),
            )
        mark_flagged(ax, g["icl"], g["if"], g.get("flags"), fontsize=4, size=25)


def _draw_pareto_front(ax: Axes, fam: pd.DataFrame) -> None:
    """The family's Pareto front over every method, ringed and joined: drawn under the curves (low z-order) so
    it marks points without hiding them."""
    front = fam[pareto_front(fam["icl"], fam["if"])].sort_values("icl")
    if len(front):
        ax.plot(front["icl"], front["if"], ls="--", color="0.35", lw=0.7, zorder=1)
        ax.scatter(
            front["icl"], front["if"], s=40, facecolors="none", edgecolors="0.2", lw=0.7, zorder=3, label="Pareto front"
        )


def _draw_reference_stars(ax: Axes, fam: pd.DataFrame) -> None:
    """Stars at the pure base (lam=0) and pure instruct (lam=1) models of a base->instruct method: the two ends
    every merge is judged against. Only methods in ``BASE_TO_INSTRUCT`` have such ends; others get no stars."""
    ref = fam[fam["method"].isin(BASE_TO_INSTRUCT)]
    for lam, name, color in ((0.0, "base", "tab:gray"), (1.0, "instruct", "black")):
        pt = ref[np.isclose(ref["lam"], lam)]
        if len(pt):
            ax.scatter(
                pt["icl"].iloc[:1],
                pt["if"].iloc[:1],
                marker="*",
                s=70,
                color=color,
                zorder=4,
                label=f"{name} (λ={lam:g})",
            )


def plot_parts_vs_lam(
    df: pd.DataFrame, out: Path, labels: dict[str, str] | None = None, stem: str = "parts_vs_lam"
) -> list[Path]:
    """ICL and IF each against lam with CI bands; a panel only for a part some record has. ``labels`` names the
    parts where a suite's ICL slot holds something else (the adapter-transfer miniature's task accuracy)."""
    plt = _plt()
    parts = [p for p in ("icl", "if") if df[p].notna().any()]
    labels = {"icl": "ICL accuracy (macro avg.)", "if": "instruction following", **(labels or {})}
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(
            len(parts), 1, figsize=(COLUMN_IN, 1.55 * len(parts) + 0.5), sharex=True, squeeze=False
        )
        for ax, part in zip(axes[:, 0], parts):
            for label, g in _curves(df[df[part].notna()], ["family", "method"]):
                (line,) = ax.plot(g["lam"], g[part], marker="o", label=label, ls=_ls(g))
                mark_flagged(ax, g["lam"], g[part], g.get("flags"), fontsize=4, size=25)
                if g[f"{part}_low"].notna().all() and g[f"{part}_high"].notna().all():
                    ax.fill_between(
                        g["lam"], g[f"{part}_low"], g[f"{part}_high"], color=line.get_color(), alpha=0.18, lw=0
                    )
            ax.set_ylabel(labels[part])
        ends = " (0 = base, 1 = instruct)" if df["method"].isin(BASE_TO_INSTRUCT).all() else ""
        axes[-1, 0].set_xlabel(f"strength λ{ends}")
        axes[0, 0].set_title(" and ".join(labels[p].split(" (")[0] for p in parts) + " against λ (bands: 95% CI)")
        handles, names = axes[0, 0].get_legend_handles_labels()
        fig.legend(
            handles,
            names,
            loc="lower center",
            ncol=2,
            frameon=False,
            bbox_to_anchor=(0.5, -0.02 - 0.035 * ((len(names) + 1) // 2)),
        )
        fig.tight_layout()
        return _save(fig, out, stem)


def plot_task_heatmap(matrix: pd.DataFrame, label: str, out: Path, stem: str) -> list[Path]:
    """Per-task headline metric (rows) against lam (columns); the value printed in each cell when it fits."""
    plt = _plt()
    with plt.rc_context({**STYLE, "axes.grid": False}):
        height = 0.7 + 0.16 * len(matrix)
        fig, ax = plt.subplots(figsize=(COLUMN_IN, height))
        im = ax.imshow(matrix.to_numpy(float), aspect="auto", cmap="viridis", vmin=0, vmax=1)
        ax.set_xticks(range(matrix.shape[1]), [f"{c:g}" for c in matrix.columns])
        ax.set_yticks(range(matrix.shape[0]), list(matrix.index), fontsize=5)
        if matrix.shape[1] <= 12:
            for (i, j), v in np.ndenumerate(matrix.to_numpy(float)):
                if not np.isnan(v):
                    ax.text(
                        j,
                        i,
                        f"{100 * v:.0f}",
                        ha="center",
                        va="center",
                        fontsize=4.5,
                        color="white" if v < 0.6 else "black",
                    )
        ax.set_xlabel("strength λ")
        ax.set_title(f"{label}: per-task score (%)")
        fig.colorbar(im, ax=ax, fraction=0.04, pad=0.02)
        return _save(fig, out, stem)


def best_lam_markdown(table: pd.DataFrame, if_tolerance: float) -> str:
    """The best-lam table as Markdown, CIs as ``value [low, high]``, the ICL gain (blank without
    ``gain.GAIN_COLUMNS``) as ``+gain [low, high] (p=...)``."""

    def ci(r: pd.Series, c: str) -> str:
        return "" if pd.isna(r.get(c)) else f"{r[c]:.3f} [{r[f'{c}_low']:.3f}, {r[f'{c}_high']:.3f}]"

    lines = [
        f"Best λ per family and method: highest ICL with IF ≥ instruct IF − {if_tolerance:g}.\n",
        "| family | method | suite | best λ | ICL [95% CI] | ICL gain vs instruct [95% CI] | IF [95% CI] | instruct IF "
        "| note |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for _, r in table.iterrows():
        lam = "" if pd.isna(r["best_lam"]) else f"{r['best_lam']:g}"
        ref = "" if pd.isna(r["instruct_if"]) else f"{r['instruct_if']:.3f}"
        lines.append(
            f"| {r['family']} | {r['method']} | {r['suite']} | {lam} | {ci(r, 'icl')} | {gain_cell(r)} "
            f"| {ci(r, 'if')} | {ref} | {r['note']} |"
        )
    return "\n".join(lines) + "\n"


def write_figures(
    sweep_dirs: Sequence[Path], df: pd.DataFrame, out: Path, if_tolerance: float = 0.05
) -> dict[str, Path]:
    """Every figure and the best-lam table for ``df`` (``report.load_table`` of ``sweep_dirs``) under ``out``."""
    figs = Path(out) / "figures"
    made: dict[str, Path] = {}
    records = load_records(sweep_dirs)
    df = with_suites(df, records)
    both = df[df["icl"].notna() & df["if"].notna()]
    for fam in sorted(both["family"].unique()):
        made[f"tradeoff__{fam}"] = plot_family_tradeoff(df, fam, figs)[0]
    if df[["icl", "if"]].notna().any().any():
        made["parts_vs_lam"] = plot_parts_vs_lam(df, figs)[0]
    for label, g in _curves(df, ["family", "method"]):
        if g["lam"].duplicated().any():  # several points per lam (e.g. a knob search): no single cell value
            log.info("no per-task heatmap for %s: several points share a lam", label)
            continue
        matrix = task_matrix(records, g)
        if not matrix.empty:
            stem = "tasks__" + "__".join(_safe(part) for part in label.split(" / "))
            made[stem] = plot_task_heatmap(matrix, label, figs, stem)[0]
    table = add_icl_gain(best_lam(df, if_tolerance), record_files(df, sweep_dirs))
    table.to_csv(Path(out) / "best_lam.csv", index=False)
    (Path(out) / "best_lam.md").write_text(best_lam_markdown(table, if_tolerance))
    made["best_lam"] = Path(out) / "best_lam.md"
    return made


def figures_markdown(made: dict[str, Path], out: Path) -> str:
    """A report section linking each figure (PNG; the PDF sits beside it) and the best-lam table."""
    text = "\n## Figures (PNG, PDF beside each)\n\n"
    text += "".join(f"![{k}]({p.relative_to(out)})\n" for k, p in made.items() if p.suffix == ".png")
    best = made.get("best_lam")
    return text + (f"\nBest λ per family and method: [{best.name}]({best.relative_to(out)})\n" if best else "")
