"""Task arithmetic: add (weighted) task vectors to the base.

    theta(lam) = theta_base + lam * sum_t w_t * (theta_t - theta_base)

Ilharco et al., "Editing Models with Task Arithmetic", arXiv 2212.04089. With one fine-tuned model and
unit weight it is exactly ``linear``; its point is several deltas (``model.finetuned``) with per-model
``weights`` (default all 1).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .base import TensorInfo, blend, elementwise, uses_ends


@elementwise
@uses_ends
def task_arithmetic(
    anchor: torch.Tensor,
    deltas: Sequence[torch.Tensor],
    *,
    lam: float,
    info: TensorInfo,
    ends: Sequence[torch.Tensor] | None = None,
    weights: Sequence[float] | None = None,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """``anchor + lam * sum(w_t * delta_t)``."""
    return blend(anchor, deltas, lam, ends, weights, out=out)
