"""The inputs a merge plan holds: every tensor's anchor, fine-tuned and reference reads, resident or streamed.

Why this shape: a sweep visits many points of one pair, so the inputs are read once and kept (on the engine's
device, or on the CPU), each in its checkpoint dtype or in ``storage_dtype`` where that is narrower, fitted to
instruct's row count (``rows.py``). In streaming mode (``storage_device="disk"``) nothing is kept: each point
reads each tensor again, in blocks of rows when the plan asks, so peak memory is about one block's inputs.
Non-float tensors (fp8, ints, bools) are not merged; they pass through from the anchor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial

import torch
from tqdm.auto import tqdm

from ..guards import FiniteCheck
from ..weights.checkpoints import Checkpoint
from ..weights.tensor_stores import Scratch
from .base import TensorInfo, classify
from .rows import VocabRows, fit_rows, read_fitted

# Rows of one tensor's inputs: (anchor, fine-tuned ends, reference or None when it is the anchor).
Block = tuple[torch.Tensor, list[torch.Tensor], torch.Tensor | None]


@dataclass
class TensorInputs:
    """One float tensor: what it is, its output row count, and (resident mode) its inputs."""

    info: TensorInfo
    shape: tuple[int, ...] = ()  # output shape (instruct's, when its vocabulary is larger)
    rows_from: int | None = None  # rows >= this come from instruct at every lam (added vocabulary)
    anchor: torch.Tensor | None = None
    ends: list[torch.Tensor] = field(default_factory=list)
    ref: torch.Tensor | None = None


class PlanInputs:
    """Loads (or, streaming, indexes) the inputs of every tensor; hands out blocks of rows per point.

    ``home``: where resident inputs live (ignored when ``streaming``). ``check_finite``: every input read must be
    finite, named by checkpoint and tensor (``guards.py``); resident inputs are checked here, once, streamed ones
    by the caller per read (``queue_checks``).
    """

    def __init__(
        self,
        anchor: Checkpoint,
        finetuned: Sequence[Checkpoint],
        reference: Checkpoint,
        *,
        home: str,
        streaming: bool,
        storage_dtype: torch.dtype,
        check_finite: bool,
        progress: bool,
    ) -> None:
        self.anchor, self.finetuned, self.reference = anchor, list(finetuned), reference
        self.ref_is_anchor = reference is anchor
        self.home, self.streaming, self.storage_dtype = home, streaming, storage_dtype
        self.check_finite = check_finite
        self.entries: dict[str, TensorInputs] = {}
        self.other: dict[str, torch.Tensor | None] = {}  # passthrough tensors (None: read per point)
        self._narrowed: set[str] = set()
        self._buffers: dict[int, torch.Tensor] = {}  # streaming: recycled read buffers (``block(recycle=)``)
        self._rows = VocabRows(anchor, reference, self.finetuned[0] if self.finetuned else None)
        self._load(progress)

    def _load(self, progress: bool) -> None:
        check = FiniteCheck("merge input: ")
        n_layers = self.anchor.num_layers
        out_ck = self.finetuned[0] if self.finetuned else self.anchor
        for name in tqdm(self.anchor.names, desc="load merge inputs", disable=not progress, leave=False):
            if not _is_float(self.anchor.dtypes[name]):
                self.other[name] = None if self.streaming else _read(self.anchor, name, self.home)
                continue
            e = TensorInputs(info=classify(name, n_layers), shape=tuple(out_ck.shapes[name]))
            e.rows_from = self._rows.shared(name)
            if not self.streaming:
                e.anchor, e.ends, e.ref = self._resident(name)
                self.queue_checks(check, name, (e.anchor, e.ends, e.ref))
            self.entries[name] = e
        check.raise_if_bad()

    def notes(self) -> dict:
        """What loading changed, for the record: vocabulary rows fitted, tensors stored narrower."""
        notes: dict = self._rows.notes()
        if self._narrowed:
            notes["stored_in"] = {
                "dtype": str(self.storage_dtype).replace("torch.", ""),
                "tensors": len(self._narrowed),
            }
        return notes

    def queue_checks(self, check: FiniteCheck, name: str, block: Block) -> None:
        """Queue the finiteness check of one tensor's inputs, each named by its checkpoint (see guards.py)."""
        if not self.check_finite:
            return
        a, ends, ref = block
        pairs = [(self.anchor, a), *zip(self.finetuned, ends)] + ([(self.reference, ref)] if ref is not None else [])
        for ck, t in pairs:
            check.add(f"checkpoint {ck.path}, tensor {name!r}", t)

    def _resident(self, name: str) -> Block:
        """One tensor's inputs as kept: fitted to instruct's row count, checkpoint dtype or narrower."""
        ends = [self._store(name, _read(ft, name, self.home)) for ft in self.finetuned]
        a = self._store(name, _read(self.anchor, name, self.home))
        ref = None if self.ref_is_anchor else self._store(name, _read(self.reference, name, self.home))
        if ends:
            a = fit_rows(a, ends[0])
            ref = None if ref is None else fit_rows(ref, ends[0])
        return a, ends, ref

    def _store(self, name: str, t: torch.Tensor) -> torch.Tensor:
        """Checkpoint dtype, or ``storage_dtype`` where narrower (then noted)."""
        if t.element_size() > torch.empty((), dtype=self.storage_dtype).element_size():
            t = t.to(self.storage_dtype)
            self._narrowed.add(name)
        return t

    def block(self, name: str, e: TensorInputs, start: int | None, stop: int | None, recycle: int = 0) -> Block:
        """Rows ``start:stop`` of (anchor, ends, ref): slices of resident tensors, or reads from disk.

        ``recycle`` (streaming): read blocks of up to this many bytes per input into buffers kept for the next
        block, so a streamed point allocates nothing. Only for callers that are done with a block's tensors
        (and everything computed from them) before asking for the next one; 0 = fresh memory per read.
        """
        if not self.streaming:
            assert e.anchor is not None

            def cut(t: torch.Tensor) -> torch.Tensor:
                return t if start is None else t[start:stop]

            return cut(e.anchor), [cut(t) for t in e.ends], None if e.ref is None else cut(e.ref)
        fill = self.finetuned[0] if self.finetuned else None
        rows = e.shape[0] if e.shape else 0

        def buf(slot: int) -> Scratch | None:
            return partial(self._recycled, slot, cap=recycle) if recycle > 0 else None

        a = read_fitted(self.anchor, name, start, stop, rows, fill, buf(0))
        ref = None if self.ref_is_anchor else read_fitted(self.reference, name, start, stop, rows, fill, buf(1))
        return a, [ft.read_rows(name, start, stop, buf(2 + i)) for i, ft in enumerate(self.finetuned)], ref

    def _recycled(self, slot: int, need: int, cap: int) -> torch.Tensor | None:
        """The kept read buffer of one input slot (anchor, reference, each fine-tune), grown to ``need`` bytes;
        None (a fresh read) above ``cap``."""
        if need > cap:
            return None
        b = self._buffers.get(slot)
        if b is None or b.numel() < need:
            b = self._buffers[slot] = torch.empty(need, dtype=torch.uint8)
        return b

    def converts(self, e: TensorInputs, device: torch.device) -> bool:
        """Whether inputs must be read, moved or widened first (else blocks would only add a copy)."""
        if self.streaming:
            return True
        return any(
            t.dtype != torch.float32 or t.device != device
            for t in [e.anchor, *e.ends, *([e.ref] if e.ref is not None else [])]
            if t is not None
        )

    def resident_bytes(self) -> int:
        """Bytes held: every tensor's resident inputs and the passthrough tensors."""
        n = sum(_nbytes(e.anchor) + _nbytes(e.ref) + sum(_nbytes(t) for t in e.ends) for e in self.entries.values())
        return n + sum(_nbytes(t) for t in self.other.values())


def _nbytes(t: torch.Tensor | None) -> int:
    return 0 if t is None else t.numel() * t.element_size()


def _read(ck: Checkpoint, name: str, device: str) -> torch.Tensor:
    """A tensor in memory of its own (plain reads, not a view of a memory map: a resident input must not
    change or fault in from disk mid-sweep), on ``device``."""
    return ck.read_rows(name).to(device)


def _is_float(dtype: str) -> bool:
    """Merge only the dtypes fp32 arithmetic represents exactly; fp8/int/bool tensors pass through."""
    return dtype in ("float16", "bfloat16", "float32", "float64")
