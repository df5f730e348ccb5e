"""The MergePlan: load a pair (or more) once, then produce any sweep point tensor by tensor.

Why a plan: a sweep visits many points of the same pair. Reading checkpoints per point would dominate the
cost, so the plan keeps the inputs resident (on the engine's device, or on the CPU in streaming mode) and
each point is one fused pass of the method over them. Points are *yielded*, never materialised as a whole
state dict, so the engine can load each tensor as it comes.

What stays resident: the anchor and the fine-tuned tensors themselves (not fp32 task vectors), each in its
checkpoint dtype, or in ``storage_dtype`` where that is narrower. Task vectors ``finetuned - reference`` are
formed in fp32 per tensor when a method asks for them. This is lossless (bf16 weights stay bf16, yet every
difference is taken in fp32), costs 2x the model size for a pair instead of 1x + 2x (fp32 deltas), and lets
interpolating methods use ``lerp(anchor, finetuned, lam)``, which is exact at lam=0 and 1.

``storage_device="disk"`` keeps nothing resident: every point re-reads each tensor from the safetensors
files (page cache, not process memory), so peak memory is about one tensor's inputs; use it when the pair
does not fit beside the engine. Reference != anchor (instruction residuals) adds the reference to what is
held; a LoRA adapter (``adapter_transfer``) holds only its small factors.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

import torch
from tqdm.auto import tqdm

from ..checkpoints import TORCH_DTYPES, Checkpoint, CheckpointError, check_compatible
from .base import MergeFn, TensorInfo, check_knobs, classify
from .lora import LoraAdapter


@dataclass
class _Entry:
    """One float tensor: where it sits, its output row count, and (resident mode) its inputs."""

    info: TensorInfo
    shape: tuple[int, ...] = ()  # output shape (instruct's, when its vocabulary is larger)
    rows_from: int | None = None  # rows >= this come from instruct at every lam (added vocabulary)
    anchor: torch.Tensor | None = None
    ends: list[torch.Tensor] = field(default_factory=list)
    ref: torch.Tensor | None = None


@dataclass
class MergePlan:
    """Inputs for one model family: the ``anchor`` and the fine-tuned checkpoints (or a LoRA adapter).

    ``reference`` is what task vectors are taken against (the base); it defaults to ``anchor``. For
    instruction residuals the anchor is a third checkpoint and the reference the base.
    ``storage_device``: None = ``device``; a device name = keep inputs there and move them per tensor;
    ``"disk"`` = keep nothing, read per tensor per point.
    ``block_elems``: elementwise methods (``@elementwise``) work through big tensors in blocks of about this
    many elements whenever inputs must first be read, moved or widened to fp32, so those temporaries stay
    cache-sized (CPU) and streaming never holds a whole input; 0 = automatic (2**20 on CPU, 2**26
    elsewhere), negative = never. fp32 inputs already on ``device`` go through whole (one fused pass).
    """

    anchor: Checkpoint
    finetuned: Sequence[Checkpoint]
    reference: Checkpoint | None = None
    device: str = "cpu"
    storage_device: str | None = None
    storage_dtype: torch.dtype = torch.float32
    progress: bool = True
    adapter: LoraAdapter | None = None
    block_elems: int = 0
    # True: output tensors of elementwise methods are recycled, so a yielded tensor is only valid until the
    # generator is advanced (fine for engines that copy each tensor into their weights as it arrives; not
    # for callers that collect a state dict). Saves faulting in fresh pages for every point.
    reuse_outputs: bool = False
    notes: dict = field(default_factory=dict)
    last_merge_s: float = 0.0

    def __post_init__(self) -> None:
        if not self.finetuned and self.adapter is None:
            raise CheckpointError("a merge plan needs at least one fine-tuned checkpoint or a LoRA adapter")
        self.finetuned = list(self.finetuned)
        ref = self.reference if self.reference is not None else self.anchor
        self._ref_is_anchor = ref is self.anchor
        self._ref = ref
        for i, ft in enumerate(self.finetuned):
            check_compatible(ref, ft, "base", f"finetuned[{i}]" if len(self.finetuned) > 1 else "instruct")
            if i and any(ft.shapes[n] != self.finetuned[0].shapes[n] for n in ft.names):
                raise CheckpointError(f"fine-tuned checkpoints {self.finetuned[0].path} and {ft.path} differ in "
                                      "vocabulary size; merge them against a common vocabulary first")
        if not self._ref_is_anchor:
            check_compatible(ref, self.anchor, "base", "anchor")
        if self.adapter is not None:
            self.adapter.check(self.anchor)
            self.notes["adapter"] = {"path": str(self.adapter.path), "tensors": len(self.adapter.names),
                                     **self.adapter.config}
        self.streaming = self.storage_device == "disk"
        self.storage_device = self.storage_device or self.device
        self._home = "cpu" if self.streaming else self.storage_device
        if self.adapter is not None:
            self.adapter.to(self._home)
        if self.block_elems == 0:
            self.block_elems = 1 << 20 if torch.device(self.device).type == "cpu" else 1 << 26
        dropped = sorted({n for c in [self.anchor, ref, *self.finetuned] for n in c.dropped})
        if dropped:
            self.notes["tied_head_copies_ignored"] = dropped
        self._entries: dict[str, _Entry] = {}
        self._other: dict[str, torch.Tensor | None] = {}
        self._narrowed: set[str] = set()
        self._pool: dict[tuple, torch.Tensor] = {}
        self._load()

    # --- loading ------------------------------------------------------------------------------------
    def _load(self) -> None:
        n_layers = self.anchor.num_layers
        padded: dict[str, dict] = {}
        bar = tqdm(self.anchor.names, desc="load merge inputs", disable=not self.progress, leave=False)
        for name in bar:
            if not _is_float(self.anchor.dtypes[name]):
                self._other[name] = None if self.streaming else _load(self.anchor, name, self._home)
                continue
            entry = _Entry(info=classify(name, n_layers),
                           shape=tuple((self.finetuned[0] if self.finetuned else self.anchor).shapes[name]))
            rows = self._rows(name)
            if rows is not None:
                entry.rows_from = rows[0]
                padded[name] = {"base_rows": rows[0], "instruct_rows": rows[1]}
            if not self.streaming:
                entry.anchor, entry.ends, entry.ref = self._resident(name)
            self._entries[name] = entry
        if padded:
            self.notes["vocab_rows_from_instruct"] = padded
        if self._narrowed:
            self.notes["stored_in"] = {"dtype": str(self.storage_dtype).replace("torch.", ""),
                                       "tensors": len(self._narrowed)}

    def _rows(self, name: str) -> tuple[int, int] | None:
        """(rows both sides have, instruct rows) when instruct's vocabulary is larger, else None."""
        if not self.finetuned or not self.finetuned[0].shapes[name]:
            return None
        out_rows = self.finetuned[0].shapes[name][0]
        have = min(self.anchor.shapes[name][0], self._ref.shapes[name][0])
        return (have, out_rows) if have < out_rows else None

    def _resident(self, name: str) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor | None]:
        """One tensor's inputs as kept: fitted to instruct's row count, checkpoint dtype or narrower."""
        ends = [self._store(name, _load(ft, name, self._home)) for ft in self.finetuned]
        a = self._store(name, _load(self.anchor, name, self._home))
        ref = None if self._ref_is_anchor else self._store(name, _load(self._ref, name, self._home))
        if ends:
            a = _fit_rows(a, ends[0])
            ref = None if ref is None else _fit_rows(ref, ends[0])
        return a, ends, ref

    def _store(self, name: str, t: torch.Tensor) -> torch.Tensor:
        """Checkpoint dtype, or ``storage_dtype`` where narrower (then noted)."""
        if t.element_size() > torch.empty((), dtype=self.storage_dtype).element_size():
            t = t.to(self.storage_dtype)
            self._narrowed.add(name)
        return t

    def _block(self, name: str, e: _Entry, start: int | None, stop: int | None):
        """Rows ``start:stop`` of (anchor, ends, ref): slices of resident tensors, or fresh reads from disk."""
        if not self.streaming:
            cut = (lambda t: t) if start is None else (lambda t: t[start:stop])
            return cut(e.anchor), [cut(t) for t in e.ends], None if e.ref is None else cut(e.ref)
        fill = self.finetuned[0] if self.finetuned else None

        def read(ck: Checkpoint) -> torch.Tensor:
            """Rows of ``ck`` fitted to instruct's row count (added rows read from instruct)."""
            rows = ck.shapes[name][0] if ck.shapes[name] else None
            if fill is None or rows is None or rows == e.shape[0]:
                return ck.read_rows(name, start, stop)
            lo, hi, _ = slice(start, stop).indices(e.shape[0])
            have = min(rows, e.shape[0])
            head = ck.read_rows(name, lo, min(hi, have)) if lo < have else None
            tail = fill.read_rows(name, max(lo, have), hi) if hi > have else None
            if head is None:
                return tail.to(TORCH_DTYPES[ck.dtypes[name]])
            return head if tail is None else torch.cat([head, tail.to(head.dtype)])

        return read(self.anchor), [ft.read_rows(name, start, stop) for ft in self.finetuned], \
            None if self._ref_is_anchor else read(self._ref)

    # --- public view --------------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return list(self._entries) + list(self._other)

    def infos(self) -> dict[str, TensorInfo]:
        return {n: e.info for n, e in self._entries.items()}

    def resident_bytes(self) -> int:
        """Bytes the plan keeps resident (inputs + passthrough tensors + adapter factors)."""
        def nb(t: torch.Tensor | None) -> int:
            return 0 if t is None else t.numel() * t.element_size()
        n = sum(nb(e.anchor) + nb(e.ref) + sum(nb(t) for t in e.ends) for e in self._entries.values())
        n += sum(nb(t) for t in self._other.values())
        if self.adapter is not None:
            n += sum(nb(a) + nb(b) for a, b, _, _ in self.adapter.factors.values())
        return n

    # --- one point ----------------------------------------------------------------------------------
    def build(self, method: MergeFn, lam: float, out_dtype: torch.dtype, **knobs) -> Iterator[tuple[str, torch.Tensor]]:
        """Yield ``(name, merged tensor)`` for one point; fp32 arithmetic, cast to ``out_dtype`` at the end.

        ``last_merge_s`` is set, once the point is exhausted, to the time spent producing it (reads in
        streaming mode included, the consumer's time excluded). With ``reuse_outputs`` a yielded tensor is
        only valid until the generator is advanced (see the field's comment).
        """
        check_knobs(method, knobs)
        pass_ends = bool(getattr(method, "uses_ends", False)) and self._ref_is_anchor and self.adapter is None
        elementwise = bool(getattr(method, "elementwise", False))
        dev = torch.device(self.device)
        t_merge = 0.0
        for name, e in self._entries.items():
            t0 = time.perf_counter()
            if elementwise and len(e.shape) >= 1:
                out = self._output(e.shape, out_dtype, dev)
                self._merge_into(out, method, name, e, lam, knobs, pass_ends, dev)
            else:
                out = self._merge(method, e, self._block(name, e, None, None), 0, lam, knobs, pass_ends, dev)
                out = out.to(out_dtype)
            t_merge += time.perf_counter() - t0
            yield name, out
            if self.reuse_outputs and elementwise and len(e.shape) >= 1:
                self._pool[(e.shape, out_dtype)] = out  # the consumer is done with it
            del out
        for name, t in self._other.items():
            yield name, (self.anchor.get(name, self.device) if t is None else t.to(self.device))
        self.last_merge_s = t_merge

    def _output(self, shape: tuple[int, ...], dtype: torch.dtype, dev: torch.device) -> torch.Tensor:
        """A fresh output tensor, or (``reuse_outputs``) the pooled one of this shape: no new pages to fault in."""
        if self.reuse_outputs and (buf := self._pool.pop((shape, dtype), None)) is not None:
            return buf
        return torch.empty(shape, dtype=dtype, device=dev)

    def _merge_into(self, out: torch.Tensor, method: MergeFn, name: str, e: _Entry, lam: float, knobs: dict,
                    pass_ends: bool, dev: torch.device) -> None:
        """An elementwise method written into ``out``: whole when its inputs are fp32 on ``device`` already
        (one fused pass straight into ``out``), else in blocks of rows so fp32 temporaries stay small."""
        rows, numel = e.shape[0], math.prod(e.shape)
        direct = out.dtype == torch.float32
        if rows > 1 and numel > self.block_elems > 0 and (self._converts(e) or not direct) and self.adapter is None:
            step = max(1, self.block_elems * rows // numel)
        else:
            step = rows
        for r0 in range(0, rows, step):
            r1 = min(rows, r0 + step)
            whole = step == rows
            dst = out if whole else out[r0:r1]
            block = self._block(name, e, None, None) if whole else self._block(name, e, r0, r1)
            res = self._merge(method, e, block, r0, lam, knobs, pass_ends, dev, out=dst if direct else None)
            if res is not dst:
                dst.copy_(res)

    def _converts(self, e: _Entry) -> bool:
        """Whether inputs must be read, moved or widened first (else blocks would only add a copy)."""
        if self.streaming:
            return True
        dev = torch.device(self.device)
        return any(t.dtype != torch.float32 or t.device != dev
                   for t in [e.anchor, *e.ends, *([e.ref] if e.ref is not None else [])])

    def _merge(self, method: MergeFn, e: _Entry, block, r0: int, lam: float, knobs: dict, pass_ends: bool,
               dev: torch.device, out: torch.Tensor | None = None) -> torch.Tensor:
        """The method on one block of rows (or the whole tensor), fp32 in and out (into ``out`` if given)."""
        a, ends, ref = block
        a32 = _f32(a, dev)
        ends32 = [_f32(t, dev) for t in ends]
        ref32 = a32 if ref is None else _f32(ref, dev)
        del a, ends, ref, block  # streaming: drop the raw reads before the method allocates
        rows_from = None if e.rows_from is None else max(0, e.rows_from - r0)
        thunks: list[Callable[[], torch.Tensor]] = [
            (lambda f=f: _task_vector(f, ref32, rows_from)) for f in ends32]
        if self.adapter is not None and (d := self.adapter.delta(e.info.name, dev)) is not None:
            thunks.append(lambda d=d: d)
        extra: dict = {"ends": ends32} if pass_ends else {}
        if out is not None:
            extra["out"] = out
        res = method(a32, LazyDeltas(thunks), lam=lam, info=e.info, **knobs, **extra)
        if res.data_ptr() == a32.data_ptr():  # never hand out (or let anyone modify) a resident input
            res = res.clone()
        if rows_from is not None and rows_from < res.shape[0]:
            res[rows_from:] = ends32[0][rows_from:]
        return res


class LazyDeltas(Sequence[torch.Tensor]):
    """Task vectors computed (once each) on first access: methods that interpolate never pay for them."""

    def __init__(self, thunks: Sequence[Callable[[], torch.Tensor]]) -> None:
        self._thunks = list(thunks)
        self._cache: dict[int, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self._thunks)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if i not in self._cache:
            self._cache[i] = self._thunks[i]()
        return self._cache[i]


def _load(ck: Checkpoint, name: str, device: str) -> torch.Tensor:
    """A tensor in memory of its own (plain reads, not a view of a memory map: a resident input must not
    change or fault in from disk mid-sweep), on ``device``."""
    return ck.read_rows(name).to(device)


def _is_float(dtype: str) -> bool:
    """Merge only the dtypes fp32 arithmetic represents exactly; fp8/int/bool tensors pass through."""
    return dtype in ("float16", "bfloat16", "float32", "float64")


def _f32(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """To ``device`` in fp32 (no copy when it already is: the method must treat it as read-only)."""
    return t.to(device=device, dtype=torch.float32, non_blocking=True)


def _task_vector(ft: torch.Tensor, ref: torch.Tensor, rows_from: int | None) -> torch.Tensor:
    """``ft - ref`` in fp32; rows instruct added (beyond the base vocabulary) get a zero delta."""
    d = ft - ref
    if rows_from is not None:
        d[rows_from:] = 0
    return d


def _fit_rows(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Give ``t`` the row count of ``like`` (instruct): added rows are instruct's, surplus rows dropped."""
    if t.shape[0] == like.shape[0]:
        return t
    out = like.to(t.dtype, copy=True)
    n = min(t.shape[0], like.shape[0])
    out[:n] = t[:n]
    return out
