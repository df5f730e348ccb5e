"""Hydra callbacks: after a multirun, rebuild the sweep's table, plot and W&B summary from its records."""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

log = logging.getLogger("mergesweep")


class SweepReport(Callback):
    """Registered in ``conf/config.yaml`` under ``hydra.callbacks``; runs once per multirun."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from .engines import close_all
        from .report import write_report

        close_all()
        sweep_dir = Path(config.results_dir) / config.sweep.name
        try:
            tracking = OmegaConf.to_container(config.tracking, resolve=True) if "tracking" in config else None
            for kind, path in write_report(sweep_dir, tracking=tracking).items():
                log.info("report %s: %s", kind, path)
        except FileNotFoundError as e:
            log.warning("no report: %s", e)
