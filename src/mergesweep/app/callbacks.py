"""Hydra callbacks: check every job before the first starts; after a multirun, rebuild the report.

Why checks live here: Hydra writes ``.hydra/*.yaml``, ``multirun.yaml`` and its console log of each job's
overrides *before* the task function runs, and runs a multirun's jobs one after another. ``on_run_start`` and
``on_multirun_start`` are the last moments before anything is written or any engine starts, and the only ones
that see every job: here a secret-looking override is refused, and each job's config is composed (the way
the launcher will) and put through ``points.preflight``, so ``strength=0,abc,1`` stops before point 0 runs.
Both first set the offline environment (``paths.apply_env``): the checks import lm-eval's IFEval helper, which
reaches for the internet unless ``NLTK_DATA`` already points at the shipped data.
"""

from __future__ import annotations

import logging
import traceback
from typing import Any, cast

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from ..checks.schema import unknown_added
from ..engines import close_all
from ..errors import USER_ERRORS
from ..paths import apply_env
from ..report.spec import tracking_spec
from ..store.provenance import secret_interpolations, secret_overrides, secret_values
from .composition import composition_line
from .oneline import full_errors
from .pointlock import run_deferred
from .points import preflight
from .runner import run_point
from .spec import run_spec

log = logging.getLogger("mergesweep")
# Launchers that run jobs in this process, one after another: a bad job stops the sweep before it starts.
# Under any other launcher (submitit, ray) each job is its own process: a bad job fails alone (with a failure
# entry written by the job) and the others go on.
IN_PROCESS_LAUNCHERS = ("hydra._internal.core_plugins.basic_launcher.BasicLauncher",)
# Points of this process's multirun that failed a guard (``cli._point_failed``): reported, one line each, at its end.
FAILED_POINTS: list[str] = []
MAX_LISTED = 5


def _fail(lines: list[str]) -> None:
    """Stop with one line per problem. SystemExit, because Hydra turns any Exception raised by a callback
    into a warning and carries on."""
    more = [f"... and {len(lines) - MAX_LISTED} more"] if len(lines) > MAX_LISTED else []
    raise SystemExit("\n".join(f"mergesweep: error: {x}" for x in lines[:MAX_LISTED] + more))


def refuse_secrets(config: DictConfig) -> None:
    """Secrets on the command line would land in Hydra's yaml files, its log and W&B metadata: refuse them."""
    overrides = cast("dict[str, Any]", OmegaConf.to_container(config.hydra.overrides)) if "hydra" in config else {}
    keys = secret_overrides([*overrides.get("task", []), *overrides.get("hydra", [])])
    if keys:
        _fail(
            [
                f"override {k} looks like a secret; command-line values are written to Hydra's logs and W&B. "
                "Put secrets in the environment (e.g. HF_TOKEN) and pass only the variable's name"
                for k in keys
            ]
        )
    tree = cast("dict[str, Any]", OmegaConf.to_container(config, resolve=False))
    literal = secret_values({k: v for k, v in tree.items() if k != "hydra"})
    if literal:
        _fail(
            [
                f"config key {k} holds a literal secret, which Hydra would save in .hydra/config.yaml; "
                "use an interpolation such as ${oc.env:HF_TOKEN} instead"
                for k in literal
            ]
        )
    refs = secret_interpolations({k: v for k, v in tree.items() if k != "hydra"})
    if refs:
        _fail(
            [
                f"config key {k} reads the secret-looking variable {var}; its value would land in records and W&B "
                "(only keys named like secrets, e.g. model.hf_token, are redacted)"
                for k, var in refs
            ]
        )
    refuse_unknown_keys(config, overrides.get("task", []))


def refuse_unknown_keys(config: DictConfig, task_overrides: list[str]) -> None:
    """``+model.note=...`` is read by nothing yet changes the point id and lands in records: refuse keys that
    ``schema.ADDABLE`` does not list (free-form notes go under ``+extra.<name>=``)."""
    choices = (config.hydra.runtime.get("choices") or {}) if "hydra" in config else {}
    unknown = unknown_added(task_overrides, [str(g) for g in choices])
    if unknown:
        _fail(
            [
                f"+{k}: unknown config key (nothing reads it, yet it would change the point id); "
                f"free-form notes go under +extra.{k.rsplit('.', 1)[-1]}=..."
                for k in unknown
            ]
        )


def job_overrides(config: DictConfig) -> list[list[str]] | None:
    """Every job's overrides, expanded the way Hydra's BasicSweeper does (None: a sweeper we cannot expand,
    e.g. Optuna search spaces; then each job checks itself when it starts)."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    params = config.hydra.sweeper.get("params")
    args = [f"{k}={v}" for k, v in (params or {}).items()] + list(config.hydra.overrides.task)
    try:
        parsed = OverridesParser.create().parse_overrides(args)
        return [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]
    except Exception as e:
        log.debug("cannot expand the sweep up front (%s); jobs check themselves", e)
        return None


def check_jobs(config: DictConfig) -> list[str]:
    """Compose each job's config and run the preflight on it; one message per bad job (empty = all good)."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException

    jobs = job_overrides(config)
    if jobs is None:
        return []
    loader = GlobalHydra.instance().config_loader()
    caught: tuple[type[Exception], ...] = (*USER_ERRORS, HydraException)
    bad = []
    for i, overrides in enumerate(jobs):
        try:
            preflight(loader.load_sweep_config(config, list(overrides)))
        except caught as e:  # HydraException: e.g. a config group option that is not there
            reason = composition_line(e)
            bad.append(f"job #{i} ({' '.join(overrides) or 'no overrides'}): {reason}")
    return bad


class SweepReport(Callback):
    """Registered in ``conf/config.yaml`` under ``hydra.callbacks``: checks before, report after."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        apply_env(run_spec(config).offline)
        refuse_secrets(config)
        try:
            preflight(config)
        except USER_ERRORS as e:
            if full_errors():  # HYDRA_FULL_ERROR=1: the traceback too (Hydra would swallow a re-raise)
                traceback.print_exc()
            _fail([str(e)])

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        apply_env(run_spec(config).offline)
        refuse_secrets(config)
        bad = check_jobs(config)
        if not bad:
            return
        if str(config.hydra.launcher.get("_target_")) in IN_PROCESS_LAUNCHERS:
            _fail(bad)
        for line in bad:  # separate processes: each bad job fails alone (failure entry), the others run
            log.warning("%s (this job will fail; the others run)", line)
        self._bad = bad

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from ..report.report import write_report  # pandas: only at a multirun's end, not at every job's start

        deferred_failed = run_deferred(run_point)
        close_all()
        sweep_dir = run_spec(config).sweep_dir()
        try:
            tracking = tracking_spec(config.tracking).validate() if "tracking" in config else None
            for kind, path in write_report(sweep_dir, tracking=tracking).items():
                log.info("report %s: %s", kind, path)
        except FileNotFoundError as e:
            log.warning("no report: %s", e)
        bad = [*getattr(self, "_bad", []), *FAILED_POINTS]
        FAILED_POINTS.clear()
        bad += [f"deferred point {x}" for x in deferred_failed]
        if bad:  # after the report of the jobs that ran: the sweep did not fully succeed
            _fail([f"{x} (failure entry under {sweep_dir / 'failures'})" for x in bad])
