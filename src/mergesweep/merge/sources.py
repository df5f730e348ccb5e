"""Which checkpoints a merge reads: the merge YAML names roles, the model config names paths.

A merge YAML says what it starts from and what it adds::

    anchor: base | instruct | target          (default base)
    deltas: instruct | finetuned | all | adapter   (default instruct)

* ``instruct``: one task vector, instruct - base.
* ``finetuned``: one per path in ``model.finetuned`` (other fine-tunes of the same base).
* ``all``: instruct first, then ``model.finetuned`` (multi-model task arithmetic, TIES, DARE, Model Stock).
* ``adapter``: the LoRA adapter at ``model.adapter`` (anchor is then normally ``instruct``).

Task vectors are always taken against ``model.base``; with ``anchor: target`` (instruction residuals) the
anchor is ``model.target`` and the base only serves as the reference. Why split roles from paths: one
method YAML then works for every model family, and a missing path fails here, before any weights load,
with a message naming the key to set.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from ..weights.checkpoints import Checkpoint, resolve
from . import get_method
from .base import MergeConfigError
from .lora import LoraAdapter
from .plan import MergePlan
from .spec import ANCHORS, DELTAS, METHOD_SOURCES, MIN_DELTAS, MergeSpec, merge_spec

__all__ = [
    "ANCHORS",
    "DELTAS",
    "METHOD_SOURCES",
    "MIN_DELTAS",
    "build_plan",
    "merge_sources",
    "plan_roles",
    "point_roles",
]

Merge = MergeSpec | Mapping[str, Any]  # a typed spec, or the plain form engines and mergesweep-export hand over


def merge_sources(merge: Merge) -> tuple[str, str]:
    """``(anchor role, deltas role)`` of a merge, validated (``MergeSpec.sources``; a plain dict without them gets
    the method's, ``spec.METHOD_SOURCES``)."""
    return _typed(merge).sources()


def _typed(merge: Merge) -> MergeSpec:
    return merge if isinstance(merge, MergeSpec) else merge_spec(merge)


def _paths(model_cfg: Mapping[str, Any], key: str, method: str) -> list[str]:
    """``model.<key>`` as a list of paths; a clear error naming the key when it is missing."""
    v = model_cfg.get(key)
    if v is None or v == "" or (not isinstance(v, str) and len(v) == 0):
        raise MergeConfigError(
            f"method {method} needs model.{key} (set it in the model config or on the "
            f"command line, e.g. +model.{key}=/path/to/checkpoint)"
        )
    return [str(v)] if isinstance(v, str) else [str(x) for x in v]


def plan_roles(model_cfg: Mapping[str, Any], merge_cfg: Merge) -> dict[str, str]:
    """The checkpoints a merge reads, by role: its anchor, ``base`` as the reference of task vectors when the
    anchor is another model, ``instruct`` and ``finetuned[i]`` as deltas, or ``adapter``. The one place that
    turns a merge's roles into paths; a missing key or too few fine-tunes raise MergeConfigError here."""
    spec = _typed(merge_cfg)
    name = spec.name
    anchor, deltas = spec.sources()
    if deltas == "adapter":
        keys = [anchor, "adapter"]
    else:
        keys = (
            [anchor] + (["base"] if anchor != "base" else []) + (["instruct"] if deltas in ("instruct", "all") else [])
        )
    roles = {k: _paths(model_cfg, k, name)[0] for k in dict.fromkeys(keys)}
    if deltas == "finetuned" or (deltas == "all" and model_cfg.get("finetuned")):
        roles.update({f"finetuned[{i}]": p for i, p in enumerate(_paths(model_cfg, "finetuned", name))})
    n_deltas = sum(1 for k in roles if k.startswith("finetuned[")) + (deltas in ("instruct", "all"))
    need = MIN_DELTAS.get(name, 1)
    if deltas != "adapter" and n_deltas < need:
        raise MergeConfigError(
            f"method {name} needs >= {need} fine-tuned checkpoints of the same base; got "
            f"{n_deltas} (list the others in model.finetuned)"
        )
    return roles


def point_roles(model_cfg: Mapping[str, Any], merge_cfg: Merge) -> dict[str, str]:
    """Every checkpoint one sweep point reads, by role (what its record hashes): ``base`` and ``instruct``
    always (the engine loads instruct's config and tokenizer, preflight checks base against instruct), then
    the merge's own roles (``plan_roles``)."""
    spec = _typed(merge_cfg)
    roles = {k: _paths(model_cfg, k, spec.name)[0] for k in ("base", "instruct")}
    return {**roles, **plan_roles(model_cfg, spec)}


def build_plan(
    model_cfg: Mapping[str, Any],
    merge_cfg: Merge,
    device: str,
    storage_device: str | None,
    storage_dtype: torch.dtype,
    progress: bool = True,
    reuse_outputs: bool = False,
) -> MergePlan:
    """The MergePlan for one (model family, merge method) pair.

    ``model_cfg`` keys: ``base``, ``instruct`` (paths or hub ids), optional ``target``, ``finetuned`` (list),
    ``adapter`` (LoRA dir), ``allow_pickle`` (default false) and ``revision`` (applied to every hub id).
    ``reuse_outputs``: recycle output buffers across points (``MergePlan.reuse_outputs``; only for consumers
    that copy each tensor away before taking the next).
    Raises ``MergeConfigError`` for a missing key or bad roles, ``CheckpointError`` for bad checkpoints.
    """
    spec = _typed(merge_cfg)
    get_method(spec.name)  # unknown names fail before any I/O
    anchor_role, delta_role = spec.sources()
    roles = plan_roles(model_cfg, spec)
    allow = bool(model_cfg.get("allow_pickle") or False)
    rev = model_cfg.get("revision")
    ckpt = _checkpoint_opener(roles, rev, allow)
    finetuned: list[Checkpoint] = []
    reference: Checkpoint | None = None
    adapter: LoraAdapter | None = None
    if delta_role == "adapter":
        anchor = ckpt(anchor_role)
        adapter = LoraAdapter(resolve(roles["adapter"], rev), allow_pickle=allow)
    else:
        finetuned = [ckpt(r) for r in roles if r == "instruct" or r.startswith("finetuned[")]
        anchor = ckpt(anchor_role)
        reference = None if anchor_role == "base" else ckpt("base")
    return MergePlan(
        anchor=anchor,
        finetuned=finetuned,
        reference=reference,
        device=device,
        storage_device=storage_device,
        storage_dtype=storage_dtype,
        progress=progress,
        adapter=adapter,
        reuse_outputs=reuse_outputs,
    )


def _checkpoint_opener(roles: Mapping[str, str], rev: str | None, allow: bool) -> Callable[[str], Checkpoint]:
    """``role -> Checkpoint``, opening each path once: roles that name the same folder share one ``Checkpoint``
    (one index read, one set of open files) instead of two equal ones."""
    cache: dict[str, Checkpoint] = {}

    def ckpt(role: str) -> Checkpoint:
        if roles[role] not in cache:
            cache[roles[role]] = Checkpoint(resolve(roles[role], rev), allow_pickle=allow)
        return cache[roles[role]]

    return ckpt
