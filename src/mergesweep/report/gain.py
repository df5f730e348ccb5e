"""The best-lam table's ICL gain over the instruct model: a paired bootstrap on the records' per-sample files.

The study asks which lam is best *and* how much ICL it buys back over the instruct model (lam=1), beyond item
sampling: the headline CIs of two points overlap even when the paired difference (the same items, scored by
both points) is clear. ``add_icl_gain`` adds to each row of ``figures.best_lam``'s table the result of
``evals.compare.compare(best point, instruct point, "icl")`` (items paired by doc_id, 10000 resamples, seed 0):

* ``icl_gain``: macro ICL of the best point minus that of the instruct point (the headline metric, same items);
* ``icl_gain_low``, ``icl_gain_high``: percentile 95% CI of that difference (``stats.paired_bootstrap``);
* ``icl_gain_p``: one-sided paired bootstrap p-value for best > instruct.

The instruct point is the table's ``instruct_point``: lam=1 of the row's own method when that is linear or slerp,
else lam=1 of the family's linear/slerp line on the same suite (ties or DARE at lam=1 is not the instruct model);
for a method anchored at the instruct model (adapter transfer: instruct + lam x adapter) it is lam=0.
When the best point *is* the instruct point the gain is 0 with CI [0, 0] and p = 1, exactly what the paired
bootstrap of a point against itself returns (filled in without reading files). When the gain cannot be computed
(no best point or no instruct point, a record without per-sample files, records that scored different items)
its cells are blank and the row's note says why: old or partial records never fail a report.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from ..evals.compare import compare
from ..store.records import RecordStore

log = logging.getLogger(__name__)
GAIN_COLUMNS = ["icl_gain", "icl_gain_low", "icl_gain_high", "icl_gain_p"]
N_RESAMPLES = 10000
SEED = 0


def record_files(df: pd.DataFrame, sweep_dirs: Sequence[Path]) -> dict[tuple[str, str], Path]:
    """``{(suite, point_id): record file}`` for the rows of ``df`` (``load_table`` + ``with_suites``): the suite
    names the sweep when a report spans several, so a point id two sweeps share still finds its own file."""
    by_name = {Path(d).name: RecordStore(Path(d)) for d in sweep_dirs}
    suites = df["suite"] if "suite" in df else pd.Series("", index=df.index)
    return {
        (str(suite), str(pid)): by_name[sweep].path(str(pid))
        for sweep, suite, pid in zip(df["sweep"], suites, df["point_id"])
        if sweep in by_name
    }


def _blank(why: str) -> tuple[dict[str, float | None], str]:
    return dict.fromkeys(GAIN_COLUMNS), why


def icl_gain(
    best: Path | None, ref: Path | None, n_resamples: int = N_RESAMPLES, seed: int = SEED
) -> tuple[dict[str, float | None], str]:
    """(gain cells, note) of one row: ``compare(best, ref, "icl")``, or blank cells and why."""
    if best is None or ref is None:
        return _blank("no ICL gain: record file not found")
    try:
        res = compare(best, ref, "icl", n_resamples=n_resamples, seed=seed)
    except KeyError as e:  # an old or partial record: no ``samples`` entry for a task
        return _blank(f"no ICL gain: no per-sample file for {e} in {best.stem} or {ref.stem}")
    except (ValueError, OSError) as e:  # a missing or unreadable samples file, or different items
        return _blank(f"no ICL gain: {e}")
    return {
        "icl_gain": res["diff"],
        "icl_gain_low": res["low"],
        "icl_gain_high": res["high"],
        "icl_gain_p": res["p_value"],
    }, ""


def add_icl_gain(
    table: pd.DataFrame, files: Mapping[tuple[str, str], Path], n_resamples: int = N_RESAMPLES, seed: int = SEED
) -> pd.DataFrame:
    """``table`` (``figures.best_lam``) plus ``GAIN_COLUMNS``; ``files`` from ``record_files``."""
    rows = []
    for _, r in table.iterrows():
        cells: dict[str, float | None] = dict.fromkeys(GAIN_COLUMNS)
        why = ""
        if pd.isna(r["best_lam"]):
            pass  # no best point: the note already says why
        elif pd.isna(r["instruct_point"]) or pd.isna(r["point_id"]):
            why = "no ICL gain: no instruct point (lam=1 of linear/slerp, lam=0 anchored at instruct) with ICL"
        elif r["point_id"] == r["instruct_point"]:  # the best point is the instruct model: compare(x, x)
            cells = {"icl_gain": 0.0, "icl_gain_low": 0.0, "icl_gain_high": 0.0, "icl_gain_p": 1.0}
        else:
            suite = str(r["suite"])
            best, ref = files.get((suite, str(r["point_id"]))), files.get((suite, str(r["instruct_point"])))
            cells, why = icl_gain(best, ref, n_resamples, seed)
        if why:
            log.warning("best-lam table, %s / %s / %s: %s", r["family"], r["method"], r["suite"], why)
        note = "; ".join(n for n in (str(r["note"]) if pd.notna(r["note"]) else "", why) if n)
        rows.append({**r.to_dict(), **cells, "note": note})
    return pd.DataFrame(rows, columns=[*table.columns, *GAIN_COLUMNS])


def gain_cell(r: pd.Series) -> str:
    """``+0.044 [0.012, 0.078] (p=0.002)``; ``p<0.001`` below that; blank when there is no gain."""
    if pd.isna(r.get("icl_gain")):
        return ""
    p = float(r["icl_gain_p"])
    ptxt = "p<0.001" if p < 0.001 else f"p={p:.3f}"
    return f"{r['icl_gain']:+.3f} [{r['icl_gain_low']:.3f}, {r['icl_gain_high']:.3f}] ({ptxt})"
