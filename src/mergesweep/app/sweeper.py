"""Warm engines on any Hydra launcher: one launcher job runs a *block* of sweep points on one engine.

Hydra's launchers (basic, submitit local/SLURM, Ray) run one job per override list, each SLURM/Ray job in its
own process. A per-point job would pay an engine start (tens of seconds to minutes on real models) for every
lam. ``BlockSweeper`` is Hydra's ``BasicSweeper`` with one change: after expanding the cartesian product it
groups the points by everything except ``strength`` and hands the launcher one job per group, whose overrides
carry the group's strengths (``++block_strengths=[0,0.1,...]``). The job function (``cli.run_job``) then runs
the points of its block in order on one engine. Scheduling stays the launcher's; we only choose the grouping.

    mergesweep -m hydra/sweeper=blocks hydra/launcher=slurm model=a,b merge=linear,ties strength=0,0.1,0.2

A block whose job fails (an exception, a killed process, a launcher error) gets a failure entry for each of
its points that has no complete record; the other blocks go on, and the multirun then exits with one line
naming the failed blocks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.utils import JobReturn, JobStatus
from hydra.errors import HydraException
from omegaconf import DictConfig, OmegaConf, open_dict, read_write

from ..store.records import RecordStore
from .points import identify
from .spec import run_spec

log = logging.getLogger("mergesweep")
BLOCK_KEY = "block_strengths"  # the job override that carries a block's strengths
GROUP_EXCLUDE = ("strength",)  # what varies *within* a block


def _key(override: str) -> str:
    """``+model.target=x`` -> ``model.target`` (the config key an override string sets)."""
    return override.split("=", 1)[0].lstrip("+~")


@dataclass
class Block:
    """Points that differ only in strength: one launcher job, one engine."""

    common: list[str]
    strengths: list[str] = field(default_factory=list)

    def job_overrides(self) -> list[str]:
        """The launcher job's overrides: a plain point when the block has one strength (or none)."""
        if len(self.strengths) <= 1:
            return [*self.common, *(f"strength={s}" for s in self.strengths)]
        return [*self.common, f"strength={self.strengths[0]}", f"++{BLOCK_KEY}=[{','.join(self.strengths)}]"]

    def point_overrides(self) -> list[list[str]]:
        """One override list per point, as the basic sweeper would have launched them."""
        return [[*self.common, f"strength={s}"] for s in self.strengths] or [list(self.common)]


def group_blocks(jobs: Sequence[Sequence[str]], exclude: Sequence[str] = GROUP_EXCLUDE) -> list[Block]:
    """Group expanded per-point override lists by everything except ``exclude``; first-seen order kept."""
    blocks: dict[tuple[str, ...], Block] = {}
    for job in jobs:
        common = [o for o in job if _key(o) not in exclude]
        block = blocks.setdefault(tuple(common), Block(common))
        block.strengths += [o.split("=", 1)[1] for o in job if _key(o) == "strength"]
    return list(blocks.values())


def block_points(cfg: DictConfig) -> Iterator[DictConfig]:
    """A block job's config -> one config per point (without the block key, so records match per-point jobs)."""
    strengths = list(cfg.get(BLOCK_KEY) or [cfg.get("strength")])
    for lam in strengths:
        point = cfg.copy()
        with read_write(point), open_dict(point):
            point.pop(BLOCK_KEY, None)
            point.strength = lam
        yield point


class BlockFailed(RuntimeError):
    """Some points of a block failed; the others ran (their records exist)."""


def run_block(cfg: DictConfig, run_point: Callable[[DictConfig], dict[str, Any]]) -> list[dict[str, Any]]:
    """Run every point of a block job in order (one engine: the process's cache keeps it warm).

    A failing point does not stop the block: the rest still run, then ``BlockFailed`` names the failures so the
    launcher reports the job failed and the sweeper writes failure entries for the points without a record.
    """
    results, errors = [], []
    for point in block_points(cfg):
        try:
            results.append(run_point(point))
        except Exception as e:
            log.error("point strength=%s failed: %s: %s", point.strength, type(e).__name__, e)
            errors.append((point.strength, e))
    if errors:
        raise BlockFailed(
            f"{len(errors)} of {len(errors) + len(results)} points failed: "
            + "; ".join(f"strength={s}: {type(e).__name__}: {e}" for s, e in errors)
        ) from errors[0][1]
    return results


class BlockSweeper(BasicSweeper):
    """``hydra/sweeper=blocks``: the basic sweeper's product, launched as one job per block of strengths."""

    def __init__(self, max_batch_size: int | None = None, params: dict[str, str] | None = None) -> None:
        super().__init__(max_batch_size=max_batch_size, params=params)
        self.blocks: list[Block] = []

    def sweep(self, arguments: list[str]) -> Any:
        assert self.config is not None and self.launcher is not None and self.hydra_context is not None
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        points = self.split_arguments(parser.parse_overrides([*self._parse_config(), *arguments]), None)[0]
        self.blocks = group_blocks(points)
        sweep_dir = Path(str(self.config.hydra.sweep.dir))  # as the basic sweeper: `mergesweep status` reads it
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        log.info("%d points in %d blocks (one launcher job and one engine per block)", len(points), len(self.blocks))
        size = self.max_batch_size or len(self.blocks)
        returns: list[Sequence[JobReturn]] = []
        failed: list[str] = []
        for start in range(0, len(self.blocks), size):
            batch = self.blocks[start : start + size]
            jobs = [b.job_overrides() for b in batch]
            self.validate_batch_is_legal(jobs)
            try:
                results = list(self.launcher.launch(jobs, initial_job_idx=start))
            except Exception as e:  # e.g. submitit: a killed job's results() raises for the whole batch; blocks
                results = [_failed_return(e) for _ in batch]  # still running then get entries their records clear
            for block, ret in zip(batch, results):
                if ret.status != JobStatus.COMPLETED:
                    failed.append(self._mark_failed(block, ret))
            returns.append(results)
        if failed:
            raise HydraException(
                f"{len(failed)} of {len(self.blocks)} blocks failed (their points have failure "
                f"entries; `mergesweep status` lists them): " + "; ".join(failed)
            )
        return returns

    def _mark_failed(self, block: Block, ret: JobReturn) -> str:
        """A failure entry for each point of the block without a complete record; returns a one-line summary."""
        assert self.hydra_context is not None and self.config is not None
        reason = f"{type(ret._return_value).__name__}: {ret._return_value}".strip()
        marked = 0
        for overrides in block.point_overrides():
            cfg = self.hydra_context.config_loader.load_sweep_config(self.config, overrides)
            with read_write(cfg), open_dict(cfg):
                del cfg["hydra"]
            marked += mark_point_failed(cfg, f"block job failed: {reason}", overrides)
        where = " ".join(block.common) or "(no overrides)"
        log.error("block [%s] failed (%d points marked failed): %s", where, marked, reason)
        return f"[{where}] {reason[:200]}"


def _failed_return(error: BaseException) -> JobReturn:
    ret = JobReturn()
    ret.status = JobStatus.FAILED
    ret._return_value = error
    return ret


def mark_point_failed(cfg: DictConfig, reason: str, overrides: list[str]) -> int:
    """Write a failure entry for this point unless it has a complete record; 1 if written."""
    try:
        pid, _ = identify(cfg)
    except Exception as e:
        log.error("cannot name a point of the failed block (%s); no failure entry", e)
        return 0
    run = run_spec(cfg)
    store = RecordStore(run.sweep_dir())
    if store.done(pid) or store.failure(pid) is not None:  # a record, or the point's own (more precise) entry
        return 0
    store.write_failure(pid, reason, family=cfg.model.family, method=cfg.merge.name, lam=run.lam, overrides=overrides)
    return 1
