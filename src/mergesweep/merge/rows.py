"""Vocabulary rows: fit every merge input to instruct's row count, and note what that changed.

Why: an instruct model often adds tokens (chat markers) to its vocabulary, so its embedding and head have more
rows than the base's; sometimes a base has rows instruct dropped. The merged model keeps instruct's vocabulary
(the engine runs instruct's config and tokenizer), so rows instruct added are instruct's at every lam (their task
vector is zero and the method's output rows are overwritten) and rows only the base has are dropped. Both change
what lam means for those rows, so both are noted in the record (``vocab_rows_from_instruct``,
``vocab_rows_dropped``).
"""

from __future__ import annotations

import torch

from ..weights.checkpoints import TORCH_DTYPES, Checkpoint
from ..weights.tensor_stores import Scratch


class VocabRows:
    """Row fitting for one plan's tensors: which rows all inputs share, and the notes for the record."""

    def __init__(self, anchor: Checkpoint, reference: Checkpoint, out: Checkpoint | None) -> None:
        self.anchor, self.reference = anchor, reference
        self.out = out  # the first fine-tuned checkpoint (instruct): its row counts are the output's
        self._added: dict[str, dict[str, int]] = {}
        self._dropped: dict[str, dict[str, int]] = {}

    def shared(self, name: str) -> int | None:
        """Rows every input has when instruct has more (rows >= this are instruct's), else None; notes both cases."""
        if self.out is None or not self.out.shapes[name]:
            return None
        out_rows = self.out.shapes[name][0]
        rows = (self.anchor.shapes[name][0], self.reference.shapes[name][0])
        if min(rows) < out_rows:
            self._added[name] = {"base_rows": min(rows), "instruct_rows": out_rows}
        if max(rows) > out_rows:
            self._dropped[name] = {"base_rows": max(rows), "instruct_rows": out_rows}
        return min(rows) if min(rows) < out_rows else None

    def notes(self) -> dict[str, dict[str, dict[str, int]]]:
        """The record's notes: tensors whose added rows come from instruct, and tensors that lost base rows."""
        notes = {}
        if self._added:
            notes["vocab_rows_from_instruct"] = self._added
        if self._dropped:  # the merged model has instruct's vocabulary: the base's extra rows cannot be kept
            notes["vocab_rows_dropped"] = self._dropped
        return notes


def fit_rows(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Give ``t`` the row count of ``like`` (instruct): added rows are instruct's, surplus rows dropped."""
    if t.shape[0] == like.shape[0]:
        return t
    out = like.to(t.dtype, copy=True)
    n = min(t.shape[0], like.shape[0])
    out[:n] = t[:n]
    return out


def read_fitted(
    ck: Checkpoint,
    name: str,
    start: int | None,
    stop: int | None,
    rows: int,
    fill: Checkpoint | None,
    scratch: Scratch | None = None,
) -> torch.Tensor:
    """Rows ``start:stop`` of ``ck``'s tensor as if it had ``rows`` rows: rows it lacks are read from ``fill``
    (instruct), cast to ``ck``'s dtype; what ``fit_rows`` does for resident inputs, without reading it all.
    ``scratch``: recycled buffers for the read (see ``Checkpoint.read_rows``; unused when rows are filled)."""
    own = ck.shapes[name][0] if ck.shapes[name] else None
    if fill is None or own is None or own == rows:
        return ck.read_rows(name, start, stop, scratch)
    lo, hi, _ = slice(start, stop).indices(rows)
    have = min(own, rows)
    head = ck.read_rows(name, lo, min(hi, have)) if lo < have else None
    tail = fill.read_rows(name, max(lo, have), hi) if hi > have else None
    if head is None:
        assert tail is not None  # lo >= have and the block is not empty
        return tail.to(TORCH_DTYPES[ck.dtypes[name]])
    return head if tail is None else torch.cat([head, tail.to(head.dtype)])


def task_vector(ft: torch.Tensor, ref: torch.Tensor, rows_from: int | None) -> torch.Tensor:
    """``ft - ref`` in fp32; rows instruct added (beyond the base vocabulary) get a zero delta."""
    d = ft - ref
    if rows_from is not None:
        d[rows_from:] = 0
    return d
