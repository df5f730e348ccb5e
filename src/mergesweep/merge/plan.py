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
files (page cache, not process memory), block by block into recycled buffers, so peak memory is about one
block's inputs; use it when the pair does not fit beside the engine. Reference != anchor (instruction
residuals) adds the reference to what is held; a LoRA adapter (``adapter_transfer``) holds only its small
factors. An engine that knows where each tensor goes passes ``build(into=...)``, and the merge writes there:
no output tensor at all.

The seams: ``inputs.py`` loads and holds the inputs (narrowing, streaming reads), ``rows.py`` fits them to
instruct's vocabulary, ``buffers.py`` pools output tensors, ``point.py`` is what one point hands back (its
tensors and merge time); this module validates the sources and walks one point through the method.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, overload

import torch

from ..guards import FiniteCheck
from ..weights.checkpoints import Checkpoint, CheckpointError, check_compatible
from .base import MergeFn, TensorInfo, check_knobs
from .buffers import OutputPool
from .inputs import Block, PlanInputs, TensorInputs
from .lora import LoraAdapter
from .point import MergedPoint, PointArgs, Tensors
from .rows import task_vector


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
    # True: output tensors of elementwise methods are recycled (buffers.py), so a yielded tensor is only valid
    # until the point is advanced (fine for engines that copy each tensor into their weights as it arrives; not
    # for callers that collect a state dict). Saves faulting in fresh pages for every point. Fixed at construction.
    reuse_outputs: bool = False
    # Every input tensor (once, at load; streaming: per read) and every merged tensor (per point) must be
    # finite: a NaN weight or an overflowing strength fails the point instead of giving NaN log-probs (guards.py).
    check_finite: bool = True
    notes: dict = field(default_factory=dict, init=False)  # what the record should know about the inputs

    def __post_init__(self) -> None:
        if not self.finetuned and self.adapter is None:
            raise CheckpointError("a merge plan needs at least one fine-tuned checkpoint or a LoRA adapter")
        self.finetuned = list(self.finetuned)
        ref = self.reference if self.reference is not None else self.anchor
        self._check_sources(ref)
        if self.adapter is not None:
            self.adapter.check(self.anchor)
            self.notes["adapter"] = {
                "path": str(self.adapter.path),
                "tensors": len(self.adapter.names),
                **self.adapter.config,
            }
        self.streaming = self.storage_device == "disk"
        self.storage_device = self.storage_device or self.device
        home = "cpu" if self.streaming else self.storage_device
        if self.adapter is not None:
            self.adapter.to(home)
        if self.block_elems == 0:
            self.block_elems = 1 << 20 if torch.device(self.device).type == "cpu" else 1 << 26
        dropped = sorted({n for c in [self.anchor, ref, *self.finetuned] for n in c.dropped})
        if dropped:
            self.notes["tied_head_copies_ignored"] = dropped
        self._inputs = PlanInputs(
            self.anchor,
            self.finetuned,
            ref,
            home=home,
            streaming=self.streaming,
            storage_dtype=self.storage_dtype,
            check_finite=self.check_finite,
            progress=self.progress,
        )
        self.notes.update(self._inputs.notes())
        self._pool = OutputPool(self.reuse_outputs)

    def _check_sources(self, ref: Checkpoint) -> None:
        """Every fine-tune (and the anchor) matches the reference; fine-tunes share one vocabulary."""
        for i, ft in enumerate(self.finetuned):
            check_compatible(ref, ft, "base", f"finetuned[{i}]" if len(self.finetuned) > 1 else "instruct")
            if i and any(ft.shapes[n] != self.finetuned[0].shapes[n] for n in ft.names):
                raise CheckpointError(
                    f"fine-tuned checkpoints {self.finetuned[0].path} and {ft.path} differ in "
                    "vocabulary size; merge them against a common vocabulary first"
                )
        if ref is not self.anchor:
            check_compatible(ref, self.anchor, "base", "anchor")

    # --- public view --------------------------------------------------------------------------------
    @property
    def names(self) -> list[str]:
        return list(self._inputs.entries) + list(self._inputs.other)

    def infos(self) -> dict[str, TensorInfo]:
        return {n: e.info for n, e in self._inputs.entries.items()}

    def resident_bytes(self) -> int:
        """Bytes the plan keeps resident (inputs + passthrough tensors + adapter factors)."""
        n = self._inputs.resident_bytes()
        if self.adapter is not None:
            n += sum(
                a.numel() * a.element_size() + b.numel() * b.element_size()
                for a, b, _, _ in self.adapter.factors.values()
            )
        return n

    # --- one point ----------------------------------------------------------------------------------
    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Shape of every merged tensor a point yields (instruct's, where its vocabulary is larger)."""
        return {n: e.shape for n, e in self._inputs.entries.items()}

    def build(
        self,
        method: MergeFn,
        lam: float,
        out_dtype: torch.dtype,
        *,
        into: Mapping[str, Sequence[torch.Tensor]] | None = None,
        **knobs: Any,
    ) -> MergedPoint:
        """One point: its ``(name, merged tensor)`` pairs come as the returned ``MergedPoint`` is iterated (once);
        fp32 arithmetic, cast to ``out_dtype`` at the end. Knobs are checked now, before any work.

        ``into``: name -> tensors (slices of an engine's live parameters) that this point's merged tensor is
        written straight into instead of being yielded: no output buffer, no second copy
        (``engines/param_views.py`` finds them). A target of another dtype than ``out_dtype`` gets the value
        rounded to ``out_dtype`` first, as a loader copying the yielded tensor would. Names not in it are
        yielded as usual.

        The point's ``merge_s``, once it is exhausted, is the time spent producing it (reads in streaming mode
        and writes ``into`` targets included, the consumer's time excluded). With ``reuse_outputs`` a yielded
        tensor is only valid until the iteration is advanced (see the field's comment).
        """
        check_knobs(method, knobs)
        args = PointArgs(
            method=method,
            lam=lam,
            knobs=knobs,
            device=torch.device(self.device),
            pass_ends=bool(getattr(method, "uses_ends", False)) and self._inputs.ref_is_anchor and self.adapter is None,
            elementwise=bool(getattr(method, "elementwise", False)),
            input_check=FiniteCheck("merge input: "),
        )
        return MergedPoint(self._walk(args, out_dtype, into or {}))

    def _walk(self, p: PointArgs, out_dtype: torch.dtype, into: Mapping[str, Sequence[torch.Tensor]]) -> Tensors:
        """Every tensor of the point, merged then yielded (or written ``into``); returns the seconds merging."""
        t_merge = 0.0
        out_check = FiniteCheck(f"merged point ({getattr(p.method, '__name__', p.method)}, lam={p.lam!r}): ")
        for name, e in self._inputs.entries.items():
            t0 = time.perf_counter()
            if dests := into.get(name):
                self._write(p, name, e, out_dtype, dests)
                if self.check_finite:
                    out_check.add(f"tensor {name!r}", dests[0])
                t_merge += time.perf_counter() - t0
                continue
            out, pooled = self._produce(p, name, e, out_dtype)
            if self.check_finite:
                out_check.add(f"tensor {name!r}", out)
            t_merge += time.perf_counter() - t0
            yield name, out
            if pooled:
                self._pool.give_back(out)  # the consumer is done with it
            del out
        p.input_check.raise_if_bad()  # streaming reads (resident inputs were checked at load)
        out_check.raise_if_bad()
        for name, t in self._inputs.other.items():
            yield name, (self.anchor.get(name, self.device) if t is None else t.to(self.device))
        return t_merge

    def _produce(
        self, p: PointArgs, name: str, e: TensorInputs, out_dtype: torch.dtype, target: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, bool]:
        """One merged tensor in ``out_dtype``: written into ``target`` when given (same dtype), else into a pooled
        buffer (elementwise methods) or a fresh tensor. Returns it and whether it came from the pool."""
        if p.elementwise and len(e.shape) >= 1:
            out = self._pool.take(e.shape, out_dtype, p.device) if target is None else target
            self._merge_into(out, p, name, e)
            return out, target is None
        out = self._merge(p, e, self._inputs.block(name, e, None, None), 0).to(out_dtype)
        if target is not None:
            target.copy_(out)
        return (out if target is None else target), False

    def _write(
        self, p: PointArgs, name: str, e: TensorInputs, out_dtype: torch.dtype, dests: Sequence[torch.Tensor]
    ) -> None:
        """One merged tensor written into ``dests[0]`` (then copied to any other), never held elsewhere; a target
        of another dtype gets it rounded to ``out_dtype`` first (what a loader given the tensor would store)."""
        if tuple(dests[0].shape) != e.shape:
            raise ValueError(f"{name}: cannot write a {e.shape} tensor into {tuple(dests[0].shape)}")
        direct = dests[0].dtype == out_dtype
        out, pooled = self._produce(p, name, e, out_dtype, dests[0] if direct else None)
        for d in dests[1:] if direct else dests:
            d.copy_(out)
        if pooled:
            self._pool.give_back(out)

    def _merge_into(self, out: torch.Tensor, p: PointArgs, name: str, e: TensorInputs) -> None:
        """An elementwise method written into ``out``: whole when its inputs are fp32 on ``device`` already
        (one fused pass straight into ``out``), else in blocks of rows so fp32 temporaries stay small."""
        rows, numel = e.shape[0], math.prod(e.shape)
        direct = out.dtype == torch.float32
        if (
            rows > 1
            and numel > self.block_elems > 0
            and (self._inputs.converts(e, p.device) or not direct)
            and self.adapter is None
        ):
            step = max(1, self.block_elems * rows // numel)
        else:
            step = rows
        # each block's result is in ``dst`` before the next block is read: streamed reads can recycle buffers
        recycle = self._read_buffer_bytes() if self.streaming else 0
        for r0 in range(0, rows, step):
            r1 = min(rows, r0 + step)
            whole = step == rows
            dst = out if whole else out[r0:r1]
            lo, hi = (None, None) if whole else (r0, r1)
            block = self._inputs.block(name, e, lo, hi, recycle=recycle)
            res = self._merge(p, e, block, r0, out=dst if direct else None)
            if res is not dst:
                dst.copy_(res)

    def _read_buffer_bytes(self) -> int:
        """Largest read that goes into a recycled buffer: one block of the widest input dtype (8 bytes covers
        fp64); each buffer grows only to the reads it serves."""
        return max(self.block_elems, 1 << 16) * 8 if self.block_elems > 0 else 0

    def _merge(
        self, p: PointArgs, e: TensorInputs, block: Block, r0: int, out: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The method on one block of rows (or the whole tensor), fp32 in and out (into ``out`` if given)."""
        a, ends, ref = block
        a32 = _f32(a, p.device)
        ends32 = [_f32(t, p.device) for t in ends]
        ref32 = a32 if ref is None else _f32(ref, p.device)
        if self.streaming:
            self._inputs.queue_checks(p.input_check, e.info.name, (a32, ends32, None if ref is None else ref32))
        del a, ends, ref, block  # streaming: drop the raw reads before the method allocates
        rows_from = None if e.rows_from is None else max(0, e.rows_from - r0)
        thunks: list[Callable[[], torch.Tensor]] = [partial(task_vector, f, ref32, rows_from) for f in ends32]
        if self.adapter is not None and (d := self.adapter.delta(e.info.name, p.device)) is not None:
            delta: torch.Tensor = d
            thunks.append(lambda: delta)
        extra: dict = {"ends": ends32} if p.pass_ends else {}
        if out is not None:
            extra["out"] = out
        info = e.info if rows_from is None else dataclasses.replace(e.info, shared_rows=rows_from)
        res = p.method(a32, LazyDeltas(thunks), lam=p.lam, info=info, **p.knobs, **extra)
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

    @overload
    def __getitem__(self, i: int) -> torch.Tensor: ...

    @overload
    def __getitem__(self, i: slice) -> list[torch.Tensor]: ...

    def __getitem__(self, i: int | slice) -> torch.Tensor | list[torch.Tensor]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if i not in self._cache:
            self._cache[i] = self._thunks[i]()
        return self._cache[i]


def _f32(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """To ``device`` in fp32 (no copy when it already is: the method must treat it as read-only)."""
    return t.to(device=device, dtype=torch.float32, non_blocking=True)
