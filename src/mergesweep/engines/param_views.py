"""Where each checkpoint tensor lands in a live model: found once, by watching the model's own weight loaders.

Why: an in-place point used to be merged into a buffer that ``model.load_weights`` then copied into the live
parameter, so a switch held one more tensor per shape (the 545 MB tied embedding of a Qwen2.5-0.5B: +0.3x of
the model) and copied every byte twice. Merging straight into the parameter costs neither. But which slice of
which parameter a checkpoint tensor fills is the model's business (fused q/k/v and gate/up shards, tied heads,
renamed prefixes), so rather than re-deriving vLLM's name mapping, ``find_param_views`` asks the loaders.

How: each tensor name is sent through ``model.load_weights`` alone, as a memory-free stand-in of the right
shape and dtype (one element, expanded), under a ``TorchFunctionMode`` that watches what the loader does with
it. A loader that only takes views of it (same shape, dtype and device) and reads its metadata, then copies it
into a tensor that is a contiguous slice of one parameter, reveals that slice, and the copy is skipped. Any
other use stops the probe of that name: arithmetic, a transpose or split, a cast, a partial slice, reading its
values, a copy into a buffer, reading the parameter's values after the copy (a derived cache), and any write
at all (a ``TorchDispatchMode`` below refuses every mutating aten op, ``torch.ops`` calls and ``set_``
included, except on empty slices). The name then keeps going through ``load_weights`` at every point. So the
shortcut is taken only where it does exactly what the loader would, and probing never changes the model.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch._ops import OpOverload
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

# Ops that hand the stand-in on unchanged when applied to it (checked: same shape, dtype and device).
_SAME_VALUES = {"detach", "narrow", "view", "reshape", "view_as", "reshape_as", "contiguous", "to", "type_as",
                "data.__get__"}  # fmt: skip
# Ops that read a tensor's metadata only (anything else that reads values stops the probe).
_METADATA = {"size", "dim", "numel", "nelement", "stride", "storage_offset", "is_contiguous", "element_size",
             "is_floating_point", "is_complex", "__len__", "shape.__get__", "dtype.__get__", "device.__get__",
             "ndim.__get__", "layout.__get__", "is_cuda.__get__", "is_cpu.__get__", "is_meta.__get__",
             "requires_grad.__get__", "is_sparse.__get__", "is_quantized.__get__"}  # fmt: skip
Layout = tuple[int, int, tuple[int, ...], tuple[int, ...]]  # storage pointer, offset, stride, shape


class _NotDirect(BaseException):
    """The loader did something other than copy the tensor whole into a parameter slice. A BaseException, so a
    loader's own ``except Exception`` fallback cannot swallow it (a sticky flag catches a bare ``except``)."""


@dataclass
class ParamViews:
    """Checkpoint name -> the parameter slices it is copied into; the rest go through ``load_weights``."""

    dests: dict[str, list[torch.Tensor]] = field(default_factory=dict)
    params_of: dict[str, list[str]] = field(default_factory=dict)  # name -> parameter of each of its slices
    via_loader: list[str] = field(default_factory=list)
    covered: set[str] = field(default_factory=set)  # parameters the direct slices fill whole
    layouts: dict[str, Layout] = field(default_factory=dict)  # each parameter as it was when probed

    @classmethod
    def by_name(cls, model: Any, shapes: Mapping[str, tuple[int, ...]]) -> ParamViews:
        """For models whose parameters are named and shaped as the checkpoint (transformers): one-to-one."""
        params = dict(model.named_parameters())
        views = cls(layouts={n: _layout(p) for n, p in params.items()})
        for name, shape in shapes.items():
            p = params.get(name)
            if p is not None and tuple(p.shape) == tuple(shape):
                views.dests[name], views.params_of[name] = [p.data], [name]
            else:
                views.via_loader.append(name)
        views.covered = {p for ps in views.params_of.values() for p in ps}
        return views

    def check_live(self, model: Any) -> None:
        """Fail if a parameter with recorded slices was re-pointed since (new storage, or another view of it:
        vLLM permutes some parameters' ``data`` in place), so a write can never land in a stale tensor."""
        live = dict(model.named_parameters())
        for pname in {p for ps in self.params_of.values() for p in ps}:
            if pname not in live or _layout(live[pname]) != self.layouts.get(pname):
                raise RuntimeError(f"parameter {pname} changed its storage or layout since its slices were recorded")

    def summary(self) -> str:
        return f"{len(self.dests)} tensors merged straight into parameters, {len(self.via_loader)} via load_weights"


def find_param_views(model: Any, shapes: Mapping[str, tuple[int, ...]], dtype: torch.dtype) -> ParamViews:
    """Probe ``model.load_weights`` once per name (see the module docstring); the live weights are not changed."""
    params = dict(model.named_parameters())
    storages = {p.untyped_storage().data_ptr(): n for n, p in params.items()}
    views = ParamViews(layouts={n: _layout(p) for n, p in params.items()})
    for name, shape in shapes.items():
        watch = _Watch(torch.zeros((), dtype=dtype).expand(shape))
        try:
            with torch.no_grad(), _NoWrites(watch), watch:
                model.load_weights(iter([(name, watch.probe)]))
        except _NotDirect:
            watch.aborted = True
        owners = [storages.get(d.untyped_storage().data_ptr()) for d in watch.dests]
        if watch.aborted or not owners or None in owners:  # nothing copied, or into a buffer or a temporary
            views.via_loader.append(name)
        else:
            views.dests[name], views.params_of[name] = watch.dests, [str(o) for o in owners]
    _keep_whole_params(views, params)
    return views


class _Watch(TorchFunctionMode):
    """Follows the stand-in through one ``load_weights`` call; records (and skips) whole copies of it."""

    def __init__(self, probe: torch.Tensor) -> None:
        super().__init__()
        self.probe = probe
        self.same = {id(probe): probe}  # tensors carrying the stand-in's values unchanged (kept: ids stay unique)
        self.dests: list[torch.Tensor] = []
        self.dest_storages: set[int] = set()
        self.aborted = False

    def __torch_function__(
        self, func: Callable[..., Any], types: tuple[type, ...], args: tuple = (), kwargs: dict | None = None
    ) -> Any:
        kwargs = kwargs or {}
        op = _op_name(func)
        first: Any = args[0] if args else None  # the tensor a method is called on
        tensors = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        touched = any(id(t) in self.same for t in tensors)
        if touched and op == "copy_" and len(args) == 2 and not kwargs and self._carries(args[1], first):
            return self._record(first)
        if touched and op == "__setitem__" and len(args) == 3 and self._carries(args[2], first):
            self._record(first[args[1]])
            return None
        if _writes(op, kwargs) and (touched or not (isinstance(first, torch.Tensor) and first.numel() == 0)):
            self._stop(op)  # any other write: the loader does more than a copy (nothing is written now)
        reads_dest = not touched and any(t.untyped_storage().data_ptr() in self.dest_storages for t in tensors)
        if not touched and not reads_dest:
            return func(*args, **kwargs)
        out = func(*args, **kwargs)
        if op in _METADATA:
            return out
        if touched and op in _SAME_VALUES and id(first) in self.same and _same_kind(out, self.probe):
            self.same[id(out)] = out
            return out
        outs = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
        if reads_dest and outs and all(t.untyped_storage().data_ptr() in self.dest_storages for t in outs):
            return out  # a view of the parameter (e.g. the padding rows after the copied ones)
        self._stop(op)

    def _carries(self, src: Any, dst: Any) -> bool:
        return id(src) in self.same and id(dst) not in self.same and isinstance(dst, torch.Tensor)

    def _record(self, dest: torch.Tensor) -> torch.Tensor:
        if tuple(dest.shape) != tuple(self.probe.shape) or not dest.is_contiguous():
            self._stop("copy into a differently shaped or strided slice")
        self.dests.append(dest)
        self.dest_storages.add(dest.untyped_storage().data_ptr())
        return dest

    def _stop(self, why: str) -> None:
        self.aborted = True
        raise _NotDirect(why)


class _NoWrites(TorchDispatchMode):
    """Refuses every mutating aten op while probing (``torch.ops.aten.copy_``, ``index_put_``, ``set_``: forms
    the function-level watch does not see by name), except on empty tensors (a loader zeroing no padding rows)."""

    def __init__(self, watch: _Watch) -> None:
        super().__init__()
        self.watch = watch

    def __torch_dispatch__(
        self, func: OpOverload, types: tuple[type, ...], args: tuple = (), kwargs: dict | None = None
    ) -> Any:
        kwargs = kwargs or {}
        if func._schema.is_mutable and not (args and isinstance(args[0], torch.Tensor) and args[0].numel() == 0):
            self.watch._stop(str(func))
        return func(*args, **kwargs)


def _same_kind(t: Any, probe: torch.Tensor) -> bool:
    """Same shape, dtype and device (a reinterpreting ``view(dtype)`` or a cast changes values)."""
    return isinstance(t, torch.Tensor) and (t.shape, t.dtype, t.device) == (probe.shape, probe.dtype, probe.device)


def _layout(p: torch.Tensor) -> Layout:
    return p.untyped_storage().data_ptr(), int(p.storage_offset()), tuple(p.stride()), tuple(p.shape)


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
