"""Output buffers of elementwise merges: fresh per point, or recycled across points.

Why recycle: a sweep writes the same shapes point after point, and on a CPU faulting in fresh pages for every
output costs about as much as the merge itself (``scripts/bench_merge.py``: ``copy_fresh_alloc`` against
``copy_recycled``). Recycling is safe only for consumers that copy each tensor away before asking for the next
(the transformers engine); vLLM's layerwise reload keeps tensors until a whole layer has arrived, and the
exporter collects shards, so those get fresh tensors.
"""

from __future__ import annotations

import torch


class OutputPool:
    """One buffer per (shape, dtype) when ``reuse``; otherwise every ``take`` allocates."""

    def __init__(self, reuse: bool) -> None:
        self.reuse = reuse
        self._free: dict[tuple[tuple[int, ...], torch.dtype], torch.Tensor] = {}

    def take(self, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        """A tensor to write one output into: the pooled one of this shape, or a fresh one."""
        if self.reuse and (buf := self._free.pop((shape, dtype), None)) is not None:
            return buf
        return torch.empty(shape, dtype=dtype, device=device)

    def give_back(self, t: torch.Tensor) -> None:
        """The consumer is done with ``t`` (it advanced the point past it): keep it for the next point."""
        if self.reuse:
            self._free[(tuple(t.shape), t.dtype)] = t
