"""Weights & Biases logging: one run per point, grouped by sweep; a summary run with the plot and table.

Offline by default (``tracking.mode: offline``): runs land under ``<sweep>/wandb`` and can be pushed later
with ``wandb sync``. Configs are redacted before they are logged.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from .provenance import redact

log = logging.getLogger(__name__)


def _init(cfg: dict, sweep_dir: Path, **kw: Any):
    os.environ.setdefault("WANDB_MODE", cfg.get("mode", "offline"))
    os.environ.setdefault("WANDB_SILENT", "true")
    import wandb

    wdir = sweep_dir / "wandb_runs"
    wdir.mkdir(parents=True, exist_ok=True)
    return wandb.init(project=cfg.get("project", "mergesweep"), entity=cfg.get("entity"), dir=str(wdir),
                      mode=os.environ["WANDB_MODE"], reinit="finish_previous", **kw)


def flat_metrics(record: dict) -> dict[str, float]:
    """``summary/icl``, ``summary/if``, ``icl/<task>/<metric>``, ``time/<name>`` from a record."""
    out = {f"summary/{k}": v for k, v in record["summary"].items()}
    for part, body in record["metrics"].items():
        for task, metrics in body["tasks"].items():
            out.update({f"{part}/{task}/{m}": v for m, v in metrics.items()})
    out.update({f"time/{k}": v for k, v in record["times"].items()})
    out["lam"] = record["lam"]
    return out


def log_point(cfg: dict, sweep_dir: Path, record: dict) -> str | None:
    """One W&B run for this point; returns its local directory (None when tracking is off)."""
    if not cfg.get("enabled", True):
        return None
    run = _init(cfg, sweep_dir, group=record["sweep"], name=record["point_id"], job_type="point",
                config=redact(record["config"]), tags=[record["family"], record["method"]])
    run.log(flat_metrics(record))
    run.summary.update({"point_id": record["point_id"], "extrapolation": record["extrapolation"]})
    run_dir = str(Path(run.dir).parent)
    run.finish()
    return run_dir


def log_sweep(cfg: dict, sweep_dir: Path, table, plot: Path | None) -> str | None:
    """A summary run: the records table and the trade-off plot."""
    if not cfg.get("enabled", True):
        return None
    import wandb

    run = _init(cfg, sweep_dir, group=sweep_dir.name, name=f"{sweep_dir.name}__tradeoff", job_type="report")
    run.log({"records": wandb.Table(dataframe=table)})
    if plot is not None and plot.is_file():
        run.log({"tradeoff": wandb.Image(str(plot))})
    run_dir = str(Path(run.dir).parent)
    run.finish()
    return run_dir
