"""One sweep point, from its config to its record: checks, lock, engine, suite, record, tracking.

    record = run_point(cfg)        # run (or skip, if already recorded) the point of one composed config

This module is the only place that wires config -> checkpoints -> merge -> engine -> suites -> record; the Hydra
job around it (``cli.py``) decides what a job runs and how it ends. Everything that can be checked cheaply
(numbers, names, checkpoint shapes, task names) is checked before an engine starts (``points.preflight``), so bad
input costs seconds and writes nothing.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig

from ..checks.preflight import strength_fits
from ..engines import open_engine
from ..errors import PointFailed
from ..evals import aggregate, seeded
from ..evals import suite as suites
from ..guards import summary_line
from ..merge import describe_point
from ..report import tracking
from ..store import provenance
from ..store.records import Record, RecordStore, Timings, sha256_file
from . import pointlock
from .points import Preflight, container, identify, n_deltas, preflight

if TYPE_CHECKING:
    from ..evals.suite import SuiteResult

log = logging.getLogger("mergesweep")


def job_overrides() -> list[str]:
    """This job's command-line overrides (for failure entries), or [] outside a Hydra job."""
    try:
        from hydra.core.hydra_config import HydraConfig

        return list(HydraConfig.get().overrides.task)
    except ValueError:
        return []


@dataclass(frozen=True)
class Outcome:
    """What one call did with a point: its record, and whether this call computed it.

    ``record`` is the one written now, or the one already recorded (``skipped``); None only for a point another
    process is computing (``deferred``: ``come_back`` returns to it)."""

    point_id: str
    record: Record | None
    skipped: bool
    deferred: bool = False

    def job_result(self) -> dict[str, Any]:
        """The job's return value as Hydra keeps it: point id, ``skipped`` and, for a point computed here, its
        summary (derived from the record)."""
        if self.skipped or self.record is None:
            return {"point_id": self.point_id, "skipped": True, **({"deferred": True} if self.deferred else {})}
        return {"point_id": self.point_id, "skipped": False, **self.record.summary.to_json()}


def run_point(cfg: DictConfig, wait: bool = False) -> Record | None:
    """Run (or skip, if already recorded) one point and return its typed record (None: deferred, see below).

    A point another process is computing (its lock is held, ``pointlock.py``) is deferred: this process comes
    back to it after its other points (``wait=True`` then waits for the lock, and skips the point if the other
    process recorded it).

    A point that runs but cannot be trusted (``guards.PointFailed``: non-finite weights, NaN log-likelihoods)
    writes no record; it leaves a failure entry (``RecordStore.write_failure``) and re-raises, so the job fails
    while the multirun goes on with its other points. All-empty generations are a result: recorded with a flag.
    """
    return point_outcome(cfg, wait).record


def point_outcome(cfg: DictConfig, wait: bool = False) -> Outcome:
    """``run_point`` with what it did (computed, skipped or deferred), which the job's return value reports."""
    t_start = time.perf_counter()
    pre = preflight(cfg)
    store = RecordStore(pre.run.sweep_dir())
    pid, hashes = identify(cfg)
    force = pre.run.force
    if (done := store.load(pid)) is not None and not force:
        log.info("skip %s: already recorded at %s", pid, store.path(pid))
        return Outcome(pid, done, skipped=True)
    lock = _lock(cfg, store.root, pid, wait)
    if lock is None:
        return Outcome(pid, None, skipped=True, deferred=True)
    try:
        if (done := store.load(pid)) is not None and (wait or not force):  # recorded while this process waited
            log.info("skip %s: recorded by another process at %s", pid, store.path(pid))
            return Outcome(pid, done, skipped=True)
        store.set_aside_corrupt(pid)  # an unreadable record: one log line, kept as *.corrupt, the point reruns
        record = _guarded(cfg, pre, pid, hashes, store, t_start)
        path = store.write(record)
    finally:
        lock.release()
    icl, if_ = (float("nan") if v is None else v for v in (record.summary.icl, record.summary.if_))
    log.info("%s: icl=%.3f if=%.3f -> %s", pid, icl, if_, path)
    if pre.tracking.enabled:
        tracking.log_point(pre.tracking, store.root, record)
    return Outcome(pid, record, skipped=False)


def _guarded(
    cfg: DictConfig, pre: Preflight, pid: str, hashes: dict[str, dict[str, str]], store: RecordStore, t_start: float
) -> Record:
    """``_evaluate`` behind the strength check; a ``PointFailed`` leaves the point's failure entry and re-raises."""
    try:
        strength_fits(pre.merge, pre.lam, n_deltas(pre.roles))
        return _evaluate(cfg, pre, pid, hashes, store, t_start)
    except PointFailed as e:
        store.write_failure(
            pid, summary_line(e), family=pre.model.family, method=pre.merge.name, lam=pre.lam, overrides=job_overrides()
        )
        log.error("%s failed: %s (failure entry: %s)", pid, e, store.failure_path(pid))
        raise


def _lock(cfg: DictConfig, sweep_dir: Path, pid: str, wait: bool) -> Any:
    """The point's lock; None (and the point deferred) when another process holds it and ``wait`` is off."""
    lock = pointlock.acquire(sweep_dir, pid)
    if lock is None and wait:
        log.info("%s: waiting for %s, which is computing it", pid, pointlock.holder(sweep_dir, pid))
        lock = pointlock.acquire(sweep_dir, pid, wait=True)
    elif lock is None:
        log.info("%s: in progress in %s; coming back to it later", pid, pointlock.holder(sweep_dir, pid))
        pointlock.defer(cfg)
    return lock


@dataclass
class _Evaluated:
    """What the engine part of a point produced, before it becomes a record."""

    results: SuiteResult
    times: Timings
    engine: dict[str, Any]  # the engine's own description, whether it was reused, its sizes
    merge_inputs: dict[str, Any]  # the merge plan's description of its inputs


def _evaluate(
    cfg: DictConfig, pre: Preflight, pid: str, hashes: dict[str, dict[str, str]], store: RecordStore, t_start: float
) -> Record:
    """Build the point in the engine, run the suite, return the typed record (not yet written)."""
    resolved = container(cfg)
    engine, reused = open_engine(pre.sized_engine(), str(pre.instruct.path), seed=int(pre.run.seed))
    # engines take plain data (vLLM's worker may be another process): the spec's fields, as a dict
    plan_info = engine.prepare(resolved["model"], asdict(pre.merge), pre.storage.device, pre.storage.dtype)
    times = Timings.from_json(engine.set_point(pre.merge.name, pre.lam, pre.merge.knobs))  # merge_s, swap_s, reset_s
    log.info("%s: switched in %.3fs (merge %.3fs)", pid, times.switch_s, times.merge_s)
    results = suites.run(
        engine.lm(), pre.suite, store.samples_dir(pid), seed=int(pre.run.seed), bootstrap=int(pre.run.bootstrap)
    )
    times.eval_s = dict(results.seconds)
    times.engine_start_s = 0.0 if reused else float(engine.info().get("start_s", 0.0))
    times.total_s = time.perf_counter() - t_start
    run = _Evaluated(
        results=results,
        times=times,
        engine={**engine.info(), "reused": reused, **pre.engine_sizes},
        merge_inputs={k: v for k, v in plan_info.items() if k != "reused"},
    )
    return _record(cfg, resolved, pid, pre, hashes, store, run)


def _record(
    cfg: DictConfig,
    resolved: dict[str, Any],
    pid: str,
    pre: Preflight,
    hashes: dict[str, dict[str, str]],
    store: RecordStore,
    run: _Evaluated,
) -> Record:
    """The point's record: its merge, the suite's numbers (summary and CIs by ``evals.aggregate``), provenance."""
    knobs = pre.merge.knobs
    point = describe_point(pre.merge.name, pre.lam, knobs)
    results = run.results
    return Record(
        point_id=pid,
        sweep=str(pre.run.sweep.name),
        family=str(cfg.model.family),
        method=point["method"],
        lam=point["lam"],
        extrapolation=point["extrapolation"],
        knobs=point["knobs"],
        summary=aggregate.summary(results.aggregates),
        ci=aggregate.cis(results.aggregates),
        metrics=results.metrics(),
        samples={t: store.relative(p) for t, p in results.samples.items()},
        samples_sha256={t: sha256_file(Path(p)) for t, p in results.samples.items()},
        flags=list(results.flags),
        times=run.times,
        engine=run.engine,
        merge_inputs=run.merge_inputs,
        seeds=_seeds(int(pre.run.seed), knobs),
        provenance={
            "git": provenance.git_state(),
            "packages": provenance.package_versions(),
            "machine": provenance.machine(),
            "checkpoints": hashes,
        },
        config=provenance.redact(resolved),
    )


def _seeds(seed: int, knobs: dict[str, Any]) -> dict[str, Any]:
    """Every seed the point ran under (one ``seed`` drives few-shot draws and the bootstrap; IFEval's checkers
    and a merge's own ``*seed*`` knobs are recorded beside it), so ``verify`` can re-score exactly."""
    return {
        "seed": seed,
        "fewshot": seed,
        "bootstrap": seed,
        "if_checkers": seeded.checker_seed(),
        **{k: v for k, v in knobs.items() if "seed" in k},
    }


def come_back() -> None:
    """Run the points this process deferred because another process held them (``pointlock``)."""
    failed = pointlock.run_deferred(run_point)
    if failed:
        raise PointFailed(f"{len(failed)} deferred point(s) failed: " + "; ".join(failed))
