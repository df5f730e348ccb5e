"""What a job returns to an optimising sweeper (Optuna): objective value(s) from the point's record.

Hydra's Optuna sweeper reads the job function's return value: one float per direction. The values come from the
record on disk, not from the job's summary, so a point that was already recorded (skipped on resume) still
reports its numbers.

``objective.kind``:
  * ``icl_if_floor``: maximise ICL subject to IF >= ``objective.if_floor``. Infeasible points score
    ``-(floor - IF)`` (below every feasible point, and closer to feasible is better).
  * ``pareto``: ``[ICL, IF]`` for a 2-objective search (``directions: [maximize, maximize]``).
"""

from __future__ import annotations

import json
from typing import Any

from omegaconf import DictConfig

from .preflight import sweep_dir
from .records import RecordStore

KINDS = ("icl_if_floor", "pareto")


def objective_value(cfg: DictConfig, result: dict[str, Any]) -> float | list[float]:
    """The value(s) for this point's ``objective`` config, read from its record."""
    spec = cfg.objective
    if spec.kind not in KINDS:
        raise ValueError(f"objective.kind must be one of {KINDS}, got {spec.kind!r}")
    record = json.loads(RecordStore(sweep_dir(cfg)).path(result["point_id"]).read_text())
    icl, if_ = record["summary"].get("icl"), record["summary"].get("if")
    if icl is None or if_ is None:
        raise ValueError("an objective needs a suite with both an ICL and an IF part")
    if spec.kind == "pareto":
        return [float(icl), float(if_)]
    floor = float(spec.if_floor)
    return float(icl) if if_ >= floor else -(floor - float(if_))
