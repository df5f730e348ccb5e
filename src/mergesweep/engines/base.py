"""The small interface every engine offers, and the per-process engine cache.

Engines know weights, not merge methods: ``prepare`` hands them a model/merge config once per family, and
``set_point`` asks for one point by method name and strength. Hydra's basic launcher runs all jobs of a
multirun in one process, so the cache below keeps one engine alive across the whole sweep.
"""

from __future__ import annotations

import json
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)


class Engine(ABC):
    """One loaded model whose weights can be replaced in place by sweep points."""

    name: str = "?"

    def __init__(self) -> None:
        self._plan_key: str | None = None
        self.plan_info: dict[str, Any] = {}

    def prepare(self, model_cfg: dict, merge_cfg: dict, storage_device: str | None, storage_dtype: str) -> dict:
        """Load the merge inputs unless this exact family/anchor/delta set is already resident."""
        key = json.dumps([model_cfg, _plan_relevant(merge_cfg), storage_device, storage_dtype], sort_keys=True)
        if key != self._plan_key:
            self.plan_info = self._prepare(model_cfg, merge_cfg, storage_device, storage_dtype)
            self._plan_key = key
            self.plan_info["reused"] = False
        else:
            self.plan_info["reused"] = True
        return self.plan_info

    @abstractmethod
    def _prepare(self, model_cfg: dict, merge_cfg: dict, storage_device: str | None, storage_dtype: str) -> dict: ...

    @abstractmethod
    def set_point(self, method: str, lam: float, knobs: dict) -> dict[str, float]:
        """Merge and load one point; returns timings (``merge_s``, ``swap_s``)."""

    @abstractmethod
    def lm(self) -> Any:
        """An lm-eval ``LM`` bound to this engine's current weights."""

    @abstractmethod
    def info(self) -> dict[str, Any]:
        """What the record should say about the engine (name, package, version, device, dtype)."""

    def close(self) -> None:  # noqa: B027 (a no-op default: engines without resources need not override it)
        """Free the engine's memory (the cache calls this before loading another family)."""


def _plan_relevant(merge_cfg: dict) -> dict:
    """Only what changes the resident inputs forces a reload: the merge's *resolved* roles (a method's defaults
    count, e.g. ``ties`` without ``deltas`` reads every fine-tune), not the method's name or knobs."""
    from ..merge.sources import merge_sources  # torch: every composition imports this package (engines.spec)

    anchor, deltas = merge_sources(merge_cfg)
    return {"anchor": anchor, "deltas": deltas}


_CACHE: dict[str, Engine] = {}


def cached_engine(key: str, factory: Callable[[], Engine]) -> tuple[Engine, bool]:
    """The process's engine for ``key``; another key closes the old engine first (one resident at a time)."""
    if key in _CACHE:
        return _CACHE[key], True
    for old in list(_CACHE):
        log.info("closing engine %s", old)
        _CACHE.pop(old).close()
    _CACHE[key] = factory()
    return _CACHE[key], False


def close_all() -> None:
    for k in list(_CACHE):
        _CACHE.pop(k).close()
