"""What a sweep point is before any engine starts: its strength, its checkpoints by role, its checks, its id.

The Hydra job (``cli.py``), the multirun callback that checks every job up front (``callbacks.py``), the block
sweeper, ``status`` and ``verify`` all need the same answers to "which point is this and is it runnable?"; they
live here, below all of them, so that none of them imports the job module back.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, cast

from omegaconf import DictConfig, OmegaConf

from ..checks.check import check_before_download
from ..checks.preflight import knob_values, suite, tokenizer_files, writable
from ..checks.sizing import size
from ..engines.spec import EngineSpec, engine_spec
from ..evals.spec import SuiteSpec, suite_spec
from ..merge.sources import point_roles
from ..merge.spec import MergeSpec, merge_spec
from ..paths import register_resolvers
from ..report.spec import TrackingSpec, tracking_spec
from ..store.identity import id_subset, point_id
from ..weights.checkpoints import Checkpoint, check_compatible, dir_hashes, resolve
from ..weights.spec import ModelSpec, StorageSpec, model_spec, storage_spec
from .spec import RunSpec, run_spec

register_resolvers()


@dataclass(frozen=True)
class Preflight:
    """What the pre-engine checks established: the exact strength and the two checkpoints every method reads
    (opened, headers parsed, compatible), and every checkpoint path the point reads, by role."""

    lam: float
    model: ModelSpec  # validated
    merge: MergeSpec  # validated: the method, its roles, its knobs' names and values at this strength
    suite: SuiteSpec  # validated: parts, numbers, tasks and their data
    base: Checkpoint
    instruct: Checkpoint
    roles: dict[str, str]
    engine: EngineSpec  # validated; ``max_model_len``/``kv_cache_gib`` as set (``auto`` is sized in engine_sizes)
    storage: StorageSpec  # validated
    run: RunSpec  # validated: strength, seed, bootstrap, force, offline, the sweep folder (``run.sweep_dir()``)
    tracking: TrackingSpec  # validated
    engine_sizes: dict[str, Any] = field(default_factory=dict)  # sizing.Sizing.record(): max_model_len, KV cache

    def sized_engine(self) -> EngineSpec:
        """The engine spec to start: ``auto`` lengths and KV cache replaced by the numbers the sizing chose."""
        sized = {k: self.engine_sizes[k] for k in ("max_model_len", "kv_cache_gib") if k in self.engine_sizes}
        return dataclasses.replace(self.engine, **sized)


def strength(cfg: Any) -> float:
    """``cfg.strength`` as a float, or a ConfigError that says what was given (``RunSpec.lam``)."""
    return run_spec(cfg).lam


def preflight(cfg: DictConfig) -> Preflight:
    """Cheap checks before heavy work: every number, name, knob value, suite task, checkpoint and the results
    folder (``checks/preflight.py``); the multirun callback runs this for every job before the first one starts."""
    run, model = run_spec(cfg).validate(), model_spec(cfg.model).validate()
    lam, folder = run.lam, run.sweep_dir()
    merge = merge_spec(cfg.merge).validate()
    roles = source_paths(cfg)
    knob_values(merge, lam, n_deltas(roles))
    engine, storage = engine_spec(cfg.engine).validate(), storage_spec(cfg.storage).validate()
    tracking = tracking_spec(cfg.tracking).validate()
    suite_ = suite_spec(cfg.suite)
    suite(suite_)
    allow_pickle, offline = model.allow_pickle, run.offline
    if not offline:  # headers only, before any weight download
        check_before_download(container(cfg))
    base = Checkpoint(resolve(model.base, model.revision, offline), allow_pickle=allow_pickle)
    instruct = Checkpoint(resolve(model.instruct, model.revision, offline), allow_pickle=allow_pickle)
    check_compatible(base, instruct)
    tokenizer_files(instruct.path)
    writable(folder)

    sizes = size(engine, suite_, str(instruct.path)).record()
    return Preflight(
        lam=lam,
        model=model,
        merge=merge,
        suite=suite_,
        base=base,
        instruct=instruct,
        roles=roles,
        engine=engine,
        storage=storage,
        run=run,
        tracking=tracking,
        engine_sizes=sizes,
    )


def source_paths(cfg: DictConfig) -> dict[str, str]:
    """Every checkpoint this point reads, by role (base, instruct, target, adapter, finetuned[i])."""
    return point_roles(cfg.model, merge_spec(cfg.merge))


def n_deltas(roles: dict[str, str]) -> int:
    """How many task vectors a point's method sees: instruct's and each other fine-tune's (the dry runs use as many)."""
    return sum(r == "instruct" or r.startswith("finetuned") for r in roles)


def source_hashes(cfg: DictConfig, roles: dict[str, str]) -> dict[str, dict[str, str]]:
    """sha256 of every weight/config/tokenizer file of every checkpoint this point reads, by role (cached by
    resolved path, size and mtime in ``checkpoints.file_sha256``)."""
    revision = model_spec(cfg.model).revision
    return {role: dir_hashes(resolve(path, revision)) for role, path in roles.items()}


def identify(cfg: DictConfig) -> tuple[str, dict[str, dict[str, str]]]:
    """The point id of ``cfg`` and the checkpoint hashes it rests on (see ``identity.py``): exact strength,
    checkpoint contents (hashes cached by path, size and mtime), the config parts that change results."""
    hashes = source_hashes(cfg, source_paths(cfg))
    return point_id(cfg.model.family, cfg.merge.name, strength(cfg), id_subset(container(cfg), hashes)), hashes


def container(cfg: Any) -> dict[str, Any]:
    """The resolved config as plain dicts (what records store and point ids are made of).

    A typed node's keys that exist only when given (its class's ``WHEN_SET``) are left out while they hold their
    field's default (``None`` for ``HFEngineSpec.attn_implementation``, ``{}`` or ``MISSING`` for ``objective`` and
    ``judge_model`` of ``app/spec.ConfigSchema``): a config that does not set them is the data it was before the
    schema declared them (``engines/spec.py``, ``app/spec.py``)."""
    return cast("dict[str, Any]", _without_unset(cfg, OmegaConf.to_container(cfg, resolve=True)))


def _without_unset(node: Any, data: Any) -> Any:
    if not isinstance(node, DictConfig) or not isinstance(data, dict):
        return data
    typed = OmegaConf.get_type(node)
    unset = getattr(typed, "WHEN_SET", ())
    fields = dataclasses.fields(typed) if unset and dataclasses.is_dataclass(typed) else ()
    defaults = {f.name: _default(f) for f in fields if f.name in unset}
    return {
        k: _without_unset(node.get(k), v) if isinstance(v, dict) else v
        for k, v in data.items()
        if not (k in defaults and v == defaults[k])
    }


def _default(f: dataclasses.Field[Any]) -> Any:
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
