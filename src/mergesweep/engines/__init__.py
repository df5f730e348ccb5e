"""Engines: vLLM (CPU or GPU build) and Hugging Face transformers, behind one small interface (``base.Engine``).

Each takes its typed settings (``spec.py``: ``VLLMEngineSpec``, ``HFEngineSpec``), never the raw config.
"""

from __future__ import annotations

import dataclasses
import json

from .base import Engine, cached_engine, close_all
from .spec import ENGINES, EngineSpec, HFEngineSpec, VLLMEngineSpec, engine_spec


def open_engine(spec: EngineSpec, model_dir: str, seed: int = 0) -> tuple[Engine, bool]:
    """The process's engine for this model dir + engine spec (started once, reused by later points)."""
    key = json.dumps([spec.name, model_dir, dataclasses.asdict(spec)], sort_keys=True, default=str)

    def factory() -> Engine:
        if isinstance(spec, VLLMEngineSpec):
            from .vllm_engine import VLLMEngine  # torch, vLLM: only when an engine starts (engines.spec stays light)

            return VLLMEngine(model_dir, spec, seed=seed)
        from .hf_engine import HFEngine  # torch, transformers: likewise

        return HFEngine(model_dir, spec, seed=seed)

    return cached_engine(key, factory)


__all__ = [
    "ENGINES",
    "Engine",
    "EngineSpec",
    "HFEngineSpec",
    "VLLMEngineSpec",
    "close_all",
    "engine_spec",
    "open_engine",
]
