"""Hydra entry point: one job = one sweep point (model family, merge method, strength).

    mergesweep -m strength=0,0.25,0.5,0.75,1          # the default toy sweep through vLLM
    mergesweep -m model=my_llama merge=ties strength=0,0.5,1 merge.knobs.density=0.2

This module is the only place that wires config -> checkpoints -> merge -> engine -> suites -> record.
Everything that can be checked cheaply (numbers, names, checkpoint shapes, task names) is checked before
an engine starts, so bad input costs seconds and writes nothing.
"""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from .paths import conf_dir, data_dir, offline_env

log = logging.getLogger("mergesweep")
OmegaConf.register_new_resolver("ms_data", lambda: str(data_dir()), replace=True)


class ConfigError(ValueError):
    """A config value is malformed (a strength that is not a number, an unknown method, ...)."""


def _user_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean bad input (printed as one clear line), as opposed to bugs (full traceback)."""
    from .checkpoints import CheckpointError
    from .engines.vllm_engine import VLLMUnavailable
    from .evals.data import DataError
    from .evals.suite import SuiteError
    from .merge import MergeConfigError

    return ConfigError, CheckpointError, MergeConfigError, SuiteError, DataError, VLLMUnavailable


def strength(cfg: DictConfig) -> float:
    """``cfg.strength`` as a float, or a ConfigError that says what was given."""
    raw = cfg.get("strength")
    if isinstance(raw, bool) or raw is None:
        raise ConfigError(f"strength must be a number, got {raw!r}")
    try:
        lam = float(raw)
    except (TypeError, ValueError):
        raise ConfigError(f"strength must be a number (e.g. strength=0.5), got {raw!r}") from None
    if lam != lam or lam in (float("inf"), float("-inf")):
        raise ConfigError(f"strength must be finite, got {raw!r}")
    return lam


def preflight(cfg: DictConfig) -> dict[str, Any]:
    """Cheap checks before heavy work: strength, method, engine, suite tasks, checkpoint compatibility."""
    from .checkpoints import Checkpoint, check_compatible, resolve
    from .engines import ENGINES
    from .evals import suite as suites
    from .merge import METHODS, check_knobs

    lam = strength(cfg)
    if cfg.merge.name not in METHODS:
        raise ConfigError(f"unknown merge method {cfg.merge.name!r}; known: {', '.join(sorted(METHODS))}")
    check_knobs(METHODS[cfg.merge.name], dict(cfg.merge.get("knobs") or {}))
    roles = source_paths(cfg)
    if cfg.engine.name not in ENGINES:
        raise ConfigError(f"unknown engine {cfg.engine.name!r}; known: {', '.join(ENGINES)}")
    suites.validate(OmegaConf.to_container(cfg.suite, resolve=True))
    allow_pickle = bool(cfg.model.get("allow_pickle", False))
    base = Checkpoint(resolve(cfg.model.base, cfg.model.get("revision")), allow_pickle=allow_pickle)
    instruct = Checkpoint(resolve(cfg.model.instruct, cfg.model.get("revision")), allow_pickle=allow_pickle)
    check_compatible(base, instruct)
    return {"lam": lam, "base": base, "instruct": instruct, "roles": roles}


def source_paths(cfg: DictConfig) -> dict[str, str]:
    """Every checkpoint this point reads, by role (base, instruct, target, adapter, finetuned[i])."""
    from .merge import MergeConfigError
    from .merge.sources import merge_sources

    anchor, deltas = merge_sources(cfg.merge)
    needed = ["base", "instruct"] + (["target"] if anchor == "target" else []) + (["adapter"] if deltas == "adapter" else [])
    roles = {}
    for key in needed:
        if not cfg.model.get(key):
            raise MergeConfigError(f"method {cfg.merge.name} needs model.{key} (e.g. +model.{key}=/path/to/checkpoint)")
        roles[key] = str(cfg.model[key])
    if deltas in ("finetuned", "all"):
        roles.update({f"finetuned[{i}]": str(p) for i, p in enumerate(cfg.model.get("finetuned") or [])})
    return roles


def source_hashes(cfg: DictConfig, roles: dict[str, str]) -> dict[str, dict[str, str]]:
    """sha256 of every weight/config/tokenizer file of every checkpoint this point reads, by role."""
    from .checkpoints import dir_hashes, resolve

    return {role: dir_hashes(resolve(path, cfg.model.get("revision"))) for role, path in roles.items()}


def run_point(cfg: DictConfig) -> dict[str, Any]:
    """Run (or skip, if already recorded) one point and return its summary."""
    from . import provenance, tracking
    from .engines import open_engine
    from .evals import suite as suites
    from .merge import describe_point
    from .records import RecordStore, point_id

    t_start = time.perf_counter()
    pre = preflight(cfg)
    lam = pre["lam"]
    container = OmegaConf.to_container(cfg, resolve=True)
    sweep_dir = Path(cfg.results_dir) / cfg.sweep.name
    store = RecordStore(sweep_dir)
    knobs = dict(container["merge"].get("knobs") or {})
    pid = point_id(cfg.model.family, cfg.merge.name, lam,
                   {k: container.get(k) for k in ("model", "merge", "suite", "engine", "storage", "seed", "bootstrap")})
    if store.done(pid) and not cfg.get("force", False):
        log.info("skip %s: already recorded at %s", pid, store.path(pid))
        return {"point_id": pid, "skipped": True}

    storage = container.get("storage") or {}
    engine, reused = open_engine(container["engine"], str(pre["instruct"].path), seed=int(cfg.seed))
    plan_info = engine.prepare(container["model"], container["merge"], storage.get("device"),
                               storage.get("dtype", "float32"))
    times = engine.set_point(cfg.merge.name, lam, knobs)
    log.info("%s: switched in %.3fs (merge %.3fs)", pid, sum(times.values()), times.get("merge_s", 0.0))
    results = suites.run(engine.lm(), container["suite"], store.samples_dir(pid), seed=int(cfg.seed),
                         bootstrap=int(cfg.get("bootstrap", 1000)))
    times.update(results["times"])
    times["engine_start_s"] = 0.0 if reused else engine.info().get("start_s", 0.0)
    times["total_s"] = time.perf_counter() - t_start
    record = {
        "point_id": pid, "sweep": cfg.sweep.name, "family": cfg.model.family, **describe_point(cfg.merge.name, lam, knobs),
        "summary": {"icl": results["summary"].get("icl"), "if": results["summary"].get("if")},
        "ci": results["ci"], "metrics": results["parts"],
        "samples": {t: os.path.relpath(p, sweep_dir) for t, p in results["samples"].items()},
        "times": times, "engine": {**engine.info(), "reused": reused},
        "merge_inputs": {k: v for k, v in plan_info.items() if k != "reused"},
        "seeds": {"seed": int(cfg.seed), "fewshot": int(cfg.seed), "bootstrap": int(cfg.seed),
                  **{k: v for k, v in knobs.items() if "seed" in k}},
        "provenance": {"git": provenance.git_state(), "packages": provenance.package_versions(),
                       "machine": provenance.machine(),
                       "checkpoints": source_hashes(cfg, pre["roles"])},
        "config": provenance.redact(container),
    }
    path = store.write(record)
    icl, if_ = (float("nan") if v is None else v for v in (record["summary"]["icl"], record["summary"]["if"]))
    log.info("%s: icl=%.3f if=%.3f -> %s", pid, icl, if_, path)
    tracking.log_point(container.get("tracking") or {}, sweep_dir, record)
    return {"point_id": pid, "skipped": False, **record["summary"]}


@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="config")
def _hydra_main(cfg: DictConfig) -> Any:
    for k, v in offline_env(Path(cfg.results_dir) / ".cache").items():
        if cfg.get("offline", True) or k in ("NLTK_DATA", "MPLCONFIGDIR"):
            os.environ.setdefault(k, v)
    try:
        return run_point(cfg)
    except _user_errors() as e:
        log.error("%s: %s", type(e).__name__, e)
        raise SystemExit(f"mergesweep: error: {e}") from None


def main() -> None:
    """Console script ``mergesweep``."""
    _hydra_main()


if __name__ == "__main__":
    main()
