"""Weights & Biases logging: one run per point, grouped by sweep and tagged by family and method; a summary run
with the table, the trade-off plot and the paper figures (``figures.py``).

Offline by default (``tracking.mode: offline``): runs land under ``<sweep>/wandb_runs/wandb`` and can be pushed later
with ``wandb sync``. Configs are redacted before they are logged.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..store.provenance import redact, redact_overrides
from ..store.records import Record
from .spec import TrackingSpec, WandbTracking, tracking_spec

if TYPE_CHECKING:
    import pandas as pd
    from wandb import Run

log = logging.getLogger(__name__)


def _init(spec: WandbTracking, sweep_dir: Path, **kw: Any) -> Run:
    os.environ.setdefault("WANDB_MODE", spec.mode)
    os.environ.setdefault("WANDB_SILENT", "true")
    import wandb

    wdir = sweep_dir / "wandb_runs"
    wdir.mkdir(parents=True, exist_ok=True)
    argv = sys.argv  # W&B stores the command line ("args") in the run's metadata, which `wandb sync` uploads
    sys.argv = redact_overrides(argv)
    wandb_mode: Any = os.environ["WANDB_MODE"]
    try:
        return wandb.init(
            project=spec.project,
            entity=spec.entity,
            dir=str(wdir),
            mode=wandb_mode,  # validated by wandb itself
            reinit="finish_previous",
            **kw,
        )
    finally:
        sys.argv = argv


def _on(tracking: TrackingSpec | dict[str, Any]) -> WandbTracking | None:
    """The validated W&B settings, or None when tracking is off."""
    spec = tracking_spec(tracking) if isinstance(tracking, dict) else tracking
    spec.validate()
    return spec if isinstance(spec, WandbTracking) and spec.enabled else None


def flat_metrics(record: Record) -> dict[str, Any]:
    """``summary/icl``, ``summary/if``, ``icl/<task>/<metric>``, ``time/<name>`` from a record."""
    out: dict[str, Any] = {f"summary/{k}": v for k, v in record.summary.to_json().items()}
    for part, body in record.metrics.items():
        for task, metrics in body.tasks.items():
            out.update({f"{part}/{task}/{m}": v for m, v in metrics.items()})
    out.update({f"time/{k}": v for k, v in record.times.to_json().items()})
    out["lam"] = record.lam
    return out


def log_point(tracking: TrackingSpec | dict[str, Any], sweep_dir: Path, record: Record) -> str | None:
    """One W&B run for this point; returns its local directory (None when tracking is off).

    ``tracking``: the spec, or plain settings (``report/spec.tracking_spec``)."""
    spec = _on(tracking)
    if spec is None:
        return None
    run = _init(
        spec,
        sweep_dir,
        group=record.sweep,
        name=record.point_id,
        job_type="point",
        config=redact(record.config),
        tags=[record.family, record.method],
    )
    run.log(flat_metrics(record))
    run.summary.update({"point_id": record.point_id, "extrapolation": record.extrapolation})
    run_dir = str(Path(run.dir).parent)
    run.finish()
    return run_dir


def log_sweep(
    tracking: TrackingSpec | dict[str, Any],
    sweep_dir: Path,
    table: pd.DataFrame,
    plot: Path | None,
    figures: dict[str, Path] | None = None,
) -> str | None:
    """A summary run: the records table, the trade-off plot, every paper figure and the best-lam table.

    Tagged with every family and method in the table, like the point runs, so W&B filters find it."""
    spec = _on(tracking)
    if spec is None:
        return None
    import pandas as pd
    import wandb

    tags = sorted({str(v) for col in ("family", "method") if col in table for v in table[col].dropna()})
    run = _init(
        spec, sweep_dir, group=sweep_dir.name, name=f"{sweep_dir.name}__tradeoff", job_type="report", tags=tags[:64]
    )  # W&B allows at most 64 tags per run
    payload: dict = {"records": wandb.Table(dataframe=table)}
    if plot is not None and plot.is_file():
        payload["tradeoff"] = wandb.Image(str(plot))
    for name, path in (figures or {}).items():
        if path.suffix == ".png" and path.is_file():
            payload[f"figures/{name}"] = wandb.Image(str(path))
    best = sweep_dir / "best_lam.csv"
    if best.is_file():
        payload["best_lam"] = wandb.Table(dataframe=pd.read_csv(best))
    run.log(payload)
    run_dir = str(Path(run.dir).parent)
    run.finish()
    return run_dir
