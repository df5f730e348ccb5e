"""Where each checkpoint tensor lands in a live model: found once, by watching the model's own weight loaders.

Why: an in-place point used to be merged into a buffer that ``model.load_weights`` then copied into the live
parameter, so a switch held one more tensor per shape (the 545 MB tied embedding of a Qwen2.5-0.5B: +0.3x of
the model) and copied every byte twice. Merging straight into the parameter costs neither. But which slice of
which parameter a checkpoint tensor fills is the model's business (fused q/k/v and gate/up shards, tied heads,
renamed prefixes), so rather than re-deriving vLLM's name mapping, ``find_param_views`` asks the loaders.

How: each tensor name is sent through ``model.load_weights`` alone, as a memory-free stand-in of the right
shape and dtype (one element, expanded), under a ``TorchFunctionMode`` that watches what the loader does with
it. A loader that only takes shape-preserving views and then copies it into a tensor that is a contiguous
slice of one parameter reveals that slice, and the copy is skipped (the live weights are not touched). Any
other use (a transpose, a split, arithmetic, a slice of part of it, a copy into a buffer) and any other write
the loader attempts (zeroing padding rows, say) stops the probe of that name before anything is written, and
the name keeps going through ``load_weights`` at every point. So the shortcut is taken only where it does
exactly what the loader would, and probing never changes the model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_flatten

# Ops that hand the stand-in on unchanged when applied to it (same values, same shape, same element order).
_SAME_VALUES = {"detach", "narrow", "view", "reshape", "view_as", "reshape_as", "contiguous", "to", "type_as",
                "data.__get__"}  # fmt: skip


class _NotDirect(Exception):
    """The loader did something with the tensor other than copying it whole into a parameter slice."""


@dataclass
class ParamViews:
    """Checkpoint name -> the parameter slices it is copied into; the rest go through ``load_weights``."""

    dests: dict[str, list[torch.Tensor]] = field(default_factory=dict)
    params_of: dict[str, list[str]] = field(default_factory=dict)  # name -> parameter of each of its slices
    via_loader: list[str] = field(default_factory=list)
    covered: set[str] = field(default_factory=set)  # parameters the direct slices fill whole

    def check_live(self, model: Any) -> None:
        """Fail if a recorded slice no longer aliases its parameter (the model replaced a parameter's storage)."""
        live = {n: p.untyped_storage().data_ptr() for n, p in model.named_parameters()}
        for name, views in self.dests.items():
            for v, pname in zip(views, self.params_of[name]):
                if v.untyped_storage().data_ptr() != live.get(pname):
                    raise RuntimeError(f"parameter {pname} was reallocated since its slices were recorded ({name})")

    def summary(self) -> str:
        return f"{len(self.dests)} tensors merged straight into parameters, {len(self.via_loader)} via load_weights"


def find_param_views(model: Any, shapes: Mapping[str, tuple[int, ...]], dtype: torch.dtype) -> ParamViews:
    """Probe ``model.load_weights`` once per name (see the module docstring); the live weights are not changed."""
    storages = {p.untyped_storage().data_ptr(): n for n, p in model.named_parameters()}
    views = ParamViews()
    for name, shape in shapes.items():
        watch = _Watch(torch.zeros((), dtype=dtype).expand(shape))
        try:
            with torch.no_grad(), watch:
                model.load_weights(iter([(name, watch.probe)]))
        except _NotDirect:
            watch.dests = []
        owners = [storages.get(d.untyped_storage().data_ptr()) for d in watch.dests]
        if not owners or None in owners:  # nothing copied, or copied into a buffer or a temporary
            views.via_loader.append(name)
        else:
            views.dests[name], views.params_of[name] = watch.dests, [o for o in owners if o is not None]
    _keep_whole_params(views, dict(model.named_parameters()))
    return views


class _Watch(TorchFunctionMode):
    """Follows the stand-in through one ``load_weights`` call; records (and skips) whole copies of it."""

    def __init__(self, probe: torch.Tensor) -> None:
        super().__init__()
        self.probe = probe
        self.same = {id(probe): probe}  # tensors carrying the stand-in's values unchanged (kept: ids stay unique)
        self.dests: list[torch.Tensor] = []

    def __torch_function__(self, func, types, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        op = _op_name(func)
        first: Any = args[0] if args else None  # the tensor a method is called on
        touched = any(isinstance(t, torch.Tensor) and id(t) in self.same for t in tree_flatten((args, kwargs))[0])
        if touched and op == "copy_" and id(first) not in self.same and id(args[1]) in self.same and not kwargs:
            return self._record(first)
        if touched and op == "__setitem__" and id(first) not in self.same and id(args[2]) in self.same:
            self._record(first[args[1]])
            return None
        if _writes(op, kwargs) and not (isinstance(first, torch.Tensor) and first.numel() == 0 and not touched):
            raise _NotDirect(op)  # any other write: the loader does more than a copy (nothing is written now)
        out = func(*args, **kwargs)
        if not touched:
            return out
        if not any(isinstance(t, torch.Tensor) for t in tree_flatten(out)[0]):
            return out  # shape, dtype, numel, ...: reading metadata changes nothing
        if op in _SAME_VALUES and id(first) in self.same and tuple(out.shape) == tuple(self.probe.shape):
            self.same[id(out)] = out
            return out
        raise _NotDirect(op)

    def _record(self, dest: torch.Tensor) -> torch.Tensor:
        if tuple(dest.shape) != tuple(self.probe.shape) or not dest.is_contiguous():
            raise _NotDirect("copy into a differently shaped or strided slice")
        self.dests.append(dest)
        return dest


def _writes(op: str, kwargs: dict) -> bool:
    """In-place ops (``fill_``, ``copy_``), item and attribute assignment, and ``out=`` forms."""
    return (op.endswith("_") and not op.endswith("__")) or op in ("__setitem__", "__set__") or "out" in kwargs


def _op_name(func: Any) -> str:
    """``narrow``, ``copy_``, ``data.__get__`` (property reads come as the descriptor's ``__get__``)."""
    name = getattr(func, "__name__", "?")
    if name == "__get__":
        return f"{getattr(getattr(func, '__self__', None), '__name__', '?')}.__get__"
    return name


def _keep_whole_params(views: ParamViews, params: Mapping[str, torch.Tensor]) -> None:
    """Direct writes only for parameters the recorded slices fill exactly once (no gap, no overlap); names
    that reach any other parameter (padded vocabulary rows, a fused weight with one shard via the loader)
    go back to ``load_weights``, so a parameter is refreshed by one route only. Repeats until stable (sending
    a name back can leave another parameter with a gap)."""
    while True:
        whole = _whole(views, params)
        back = [n for n, ps in views.params_of.items() if not set(ps) <= whole]
        if not back:
            views.covered = whole
            return
        for name in back:
            del views.dests[name], views.params_of[name]
            views.via_loader.append(name)


def _whole(views: ParamViews, params: Mapping[str, torch.Tensor]) -> set[str]:
    """Parameters whose elements the recorded slices cover exactly once."""
    spans: dict[str, list[tuple[int, int]]] = {}
    for name, dests in views.dests.items():
        for d, pname in zip(dests, views.params_of[name]):
            start = int(d.storage_offset())
            spans.setdefault(pname, []).append((start, start + d.numel()))
    whole = set()
    for pname, s in spans.items():
        s, p = sorted(s), params[pname]
        ends_meet = all(a[1] == b[0] for a, b in zip(s, s[1:]))
        if ends_meet and s[0][0] == p.storage_offset() and s[-1][1] == p.storage_offset() + p.numel():
            whole.add(pname)
    return whole
