"""Datasets behind lm-eval's built-in tasks: can each one be loaded here, offline, before an engine starts?

Why: a suite like ``icl_hub`` names lm-eval tasks whose data lives on the Hugging Face hub. Offline
(``HF_DATASETS_OFFLINE=1``, the project default) and uncached, lm-eval would start the engine, then die deep in
``datasets`` with a ConnectionError traceback. ``missing_offline`` asks ``datasets`` itself whether each
dataset resolves from the local cache (its own offline logic, no network), so preflight can name them all.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

_TRUE = {"1", "true", "yes", "on"}


def offline() -> bool:
    """Whether ``datasets`` is told to stay offline (either of the two variables it honours)."""
    return any(os.environ.get(k, "").strip().lower() in _TRUE for k in ("HF_DATASETS_OFFLINE", "HF_HUB_OFFLINE"))


def hub_dataset(cfg: dict[str, Any] | None) -> dict[str, Any] | None:
    """``{"path", "name", "kwargs"}`` of a task config that loads via ``datasets``; None for local loaders."""
    if not cfg or cfg.get("custom_dataset") or not cfg.get("dataset_path"):
        return None
    kwargs = {k: v for k, v in (cfg.get("dataset_kwargs") or {}).items() if k in ("data_files", "data_dir", "revision")}
    return {"path": cfg["dataset_path"], "name": cfg.get("dataset_name"), "kwargs": kwargs}


def resolves(path: str, name: str | None, cache_dir: str | None = None, **kwargs: Any) -> str | None:
    """None if ``datasets`` can build this dataset's loader now; otherwise its one-line reason."""
    import datasets

    try:
        datasets.load_dataset_builder(path, name, cache_dir=cache_dir, **kwargs)
    except Exception as e:  # ConnectionError offline, FileNotFoundError, DatasetNotFoundError, ...: all mean "no"
        return f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
    return None


def missing_offline(
    task_configs: dict[str, dict | None], tasks: Iterable[str], cache_dir: str | None = None
) -> dict[str, str]:
    """``{"task (path, name)": reason}`` for every named task whose hub dataset ``datasets`` cannot load now."""
    out: dict[str, str] = {}
    seen: dict[tuple, str | None] = {}
    for task in tasks:
        ds = hub_dataset(task_configs.get(task))
        if ds is None:
            continue
        key = (ds["path"], ds["name"], repr(sorted(ds["kwargs"].items())))
        if key not in seen:
            seen[key] = resolves(ds["path"], ds["name"], cache_dir=cache_dir, **ds["kwargs"])
        reason = seen[key]
        if reason:
            out[f"{task} ({ds['path']}{', ' + ds['name'] if ds['name'] else ''})"] = reason
    return out
