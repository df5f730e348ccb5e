"""Engines: vLLM (CPU or GPU build) and Hugging Face transformers, behind one small interface (``base.Engine``)."""

from __future__ import annotations

import json

from .base import Engine, cached_engine, close_all

ENGINES = ("vllm", "hf")


def open_engine(engine_cfg: dict, model_dir: str, seed: int = 0) -> tuple[Engine, bool]:
    """The process's engine for this model dir + engine config (started once, reused by later points)."""
    name = engine_cfg.get("name")
    if name not in ENGINES:
        raise ValueError(f"unknown engine {name!r}; known: {', '.join(ENGINES)}")
    key = json.dumps([name, model_dir, engine_cfg], sort_keys=True, default=str)

    def factory() -> Engine:
        if name == "vllm":
            from .vllm_engine import VLLMEngine

            return VLLMEngine(model_dir, engine_cfg, seed=seed)
        from .hf_engine import HFEngine

        return HFEngine(model_dir, engine_cfg, seed=seed)

    return cached_engine(key, factory)


__all__ = ["ENGINES", "Engine", "close_all", "open_engine"]
