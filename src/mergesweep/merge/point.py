"""One sweep point as a plan produces it: what it is merged with (``PointArgs``), what comes back (``MergedPoint``).

Why a result object: a point's tensors are yielded one by one (never collected into a state dict), so the time
spent merging them is known only once the consumer has taken the last one. That time used to be left on the plan
(``last_merge_s``) for the engine to read afterwards: a side effect of an earlier call, silently stale when a
point was not run to its end. Here it belongs to the point, and asking for it early is an error.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from ..guards import FiniteCheck
from .base import MergeFn


@dataclass(frozen=True)
class PointArgs:
    """What every tensor of one point is merged with: the walk's constants, handed down as one object."""

    method: MergeFn
    lam: float
    knobs: dict[str, Any]
    device: torch.device
    pass_ends: bool  # the method gets the fine-tuned tensors themselves (``uses_ends``, reference = anchor)
    elementwise: bool  # the method may run on blocks of rows, into a given output (``@elementwise``)
    input_check: FiniteCheck  # streamed inputs' norms, read back once the point is done


Tensors = Generator[tuple[str, torch.Tensor], None, float]  # yields (name, tensor); returns the merge seconds


class MergedPoint:
    """The ``(name, tensor)`` pairs of one point, produced as they are iterated (once), and the merge time."""

    def __init__(self, tensors: Tensors) -> None:
        self._tensors = tensors
        self._taken = False
        self._merge_s: float | None = None

    def __iter__(self) -> Iterator[tuple[str, torch.Tensor]]:
        if self._taken:
            raise RuntimeError("a merged point's tensors can be taken once; build the point again")
        self._taken = True
        return self._run()

    def _run(self) -> Iterator[tuple[str, torch.Tensor]]:
        self._merge_s = yield from self._tensors

    @property
    def merge_s(self) -> float:
        """Seconds spent producing the tensors (streamed reads included, the consumer's time excluded)."""
        if self._merge_s is None:
            raise RuntimeError("merge_s is known only once every tensor of the point has been taken")
        return self._merge_s

    def switch_times(self, total_s: float) -> dict[str, float]:
        """An engine's timings for a switch of ``total_s`` seconds that consumed this point: the merge, and the
        rest (``swap_s``: copying or loading the tensors into the engine)."""
        return {"merge_s": self.merge_s, "swap_s": max(0.0, total_s - self.merge_s)}
