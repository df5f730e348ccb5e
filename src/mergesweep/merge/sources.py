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

from typing import Any, Mapping

import torch

from ..checkpoints import Checkpoint, resolve
from . import get_method
from .base import MergeConfigError
from .lora import LoraAdapter
from .plan import MergePlan

ANCHORS = ("base", "instruct", "target")
DELTAS = ("instruct", "finetuned", "all", "adapter")
# Fallbacks when a merge config (e.g. from the export CLI) does not say; the conf/merge YAMLs are explicit.
METHOD_SOURCES: dict[str, tuple[str, str]] = {
    "residual": ("target", "instruct"),
    "adapter_transfer": ("instruct", "adapter"),
    "task_arithmetic": ("base", "all"),
    "ties": ("base", "all"),
    "dare_linear": ("base", "all"),
    "dare_ties": ("base", "all"),
    "model_stock": ("base", "all"),
}
MIN_DELTAS = {"model_stock": 2}


def merge_sources(merge_cfg: Mapping[str, Any]) -> tuple[str, str]:
    """``(anchor role, deltas role)`` of a merge config, validated."""
    name = str(merge_cfg.get("name", ""))
    default_anchor, default_deltas = METHOD_SOURCES.get(name, ("base", "instruct"))
    anchor = str(merge_cfg.get("anchor") or default_anchor)
    deltas = str(merge_cfg.get("deltas") or default_deltas)
    if anchor not in ANCHORS:
        raise MergeConfigError(f"merge.anchor must be one of {ANCHORS}, got {anchor!r}")
    if deltas not in DELTAS:
        raise MergeConfigError(f"merge.deltas must be one of {DELTAS}, got {deltas!r}")
    if anchor == "instruct" and deltas != "adapter":
        raise MergeConfigError(f"merge {name}: anchor instruct with deltas {deltas} would add instruct's own "
                               "task vector to itself; use anchor base (or deltas adapter)")
    return anchor, deltas


def _paths(model_cfg: Mapping[str, Any], key: str, method: str) -> list[str]:
    """``model.<key>`` as a list of paths; a clear error naming the key when it is missing."""
    v = model_cfg.get(key)
    if v is None or v == "" or (not isinstance(v, str) and len(v) == 0):
        raise MergeConfigError(f"method {method} needs model.{key} (set it in the model config or on the "
                               f"command line, e.g. +model.{key}=/path/to/checkpoint)")
    return [str(v)] if isinstance(v, str) else [str(x) for x in v]


def build_plan(model_cfg: Mapping[str, Any], merge_cfg: Mapping[str, Any], device: str,
               storage_device: str | None, storage_dtype: torch.dtype, progress: bool = True) -> MergePlan:
    """The MergePlan for one (model family, merge method) pair.

    ``model_cfg`` keys: ``base``, ``instruct`` (paths or hub ids), optional ``target``, ``finetuned`` (list),
    ``adapter`` (LoRA dir), ``allow_pickle`` (default false) and ``revision`` (applied to every hub id).
    Raises ``MergeConfigError`` for a missing key or bad roles, ``CheckpointError`` for bad checkpoints.
    """
    name = str(merge_cfg.get("name") or "")
    get_method(name)  # unknown names fail before any I/O
    anchor_role, delta_role = merge_sources(merge_cfg)
    allow = bool(model_cfg.get("allow_pickle") or False)
    rev = model_cfg.get("revision")
    cache: dict[str, Checkpoint] = {}

    def ckpt(path: str) -> Checkpoint:
        if path not in cache:
            cache[path] = Checkpoint(resolve(path, rev), allow_pickle=allow)
        return cache[path]

    def one(key: str) -> Checkpoint:
        return ckpt(_paths(model_cfg, key, name)[0])

    adapter = None
    if delta_role == "adapter":
        adapter = LoraAdapter(resolve(_paths(model_cfg, "adapter", name)[0], rev), allow_pickle=allow)
        finetuned: list[Checkpoint] = []
    else:
        finetuned = [one("instruct")] if delta_role in ("instruct", "all") else []
        if delta_role in ("finetuned", "all") and (delta_role == "finetuned" or model_cfg.get("finetuned")):
            finetuned += [ckpt(p) for p in _paths(model_cfg, "finetuned", name)]
    need = MIN_DELTAS.get(name, 1)
    if delta_role != "adapter" and len(finetuned) < need:
        raise MergeConfigError(f"method {name} needs >= {need} fine-tuned checkpoints of the same base; got "
                               f"{len(finetuned)} (list the others in model.finetuned)")
    if anchor_role == "base":
        anchor, reference = one("base"), None
    else:
        anchor = one(anchor_role)
        reference = one("base") if delta_role != "adapter" else None
    return MergePlan(anchor=anchor, finetuned=finetuned, reference=reference, device=device,
                     storage_device=storage_device, storage_dtype=storage_dtype, progress=progress,
                     adapter=adapter)
