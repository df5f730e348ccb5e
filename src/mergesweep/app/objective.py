"""What a job returns to an optimising sweeper (Optuna): objective value(s) from the point's record.

Hydra's Optuna sweeper reads the job function's return value: one float per direction. The values come from the
point's typed record (``runner.run_point`` returns it, also for a point already recorded and skipped on resume), or,
given only a job's result, from the record in the sweep's store: never from a summary the job computed itself.

``objective.kind``:
  * ``icl_if_floor``: maximise ICL subject to IF >= ``objective.if_floor``. Infeasible points score
    ``-(floor - IF)`` (below every feasible point, and closer to feasible is better).
  * ``pareto``: ``[ICL, IF]`` for a 2-objective search (``directions: [maximize, maximize]``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omegaconf import DictConfig

from ..store.records import Record, RecordStore
from .spec import run_spec

KINDS = ("icl_if_floor", "pareto")


def objective_value(cfg: DictConfig, result: Record | Mapping[str, Any]) -> float | list[float]:
    """The value(s) for this point's ``objective`` config, from its record (``result``: the record, or a job's
    result naming the point, whose record is then read from the sweep's store; RecordError if it has none)."""
    spec = cfg.objective
    if spec.kind not in KINDS:
        raise ValueError(f"objective.kind must be one of {KINDS}, got {spec.kind!r}")
    store = RecordStore(run_spec(cfg).sweep_dir())
    record = result if isinstance(result, Record) else store.read(str(result["point_id"]))
    icl, if_ = record.summary.icl, record.summary.if_
    if icl is None or if_ is None:
        raise ValueError("an objective needs a suite with both an ICL and an IF part")
    if spec.kind == "pareto":
        return [float(icl), float(if_)]
    floor = float(spec.if_floor)
    return float(icl) if if_ >= floor else -(floor - float(if_))
