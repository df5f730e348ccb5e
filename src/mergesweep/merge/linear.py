"""Linear partial adaptation (and extrapolation past the instruct model).

    theta(lam) = theta_base + lam * (theta_instruct - theta_base)

lam in [0, 1] interpolates (partial adaptation, e.g. arXiv 2504.11626); lam > 1 extrapolates along the
fine-tuning direction (ExPO, arXiv 2404.16792). With several deltas they are summed, which is task
arithmetic (Ilharco et al., arXiv 2212.04089) at a shared strength.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .base import TensorInfo, blend, elementwise, uses_ends


@elementwise
@uses_ends
def linear(
    anchor: torch.Tensor,
    deltas: Sequence[torch.Tensor],
    *,
    lam: float,
    info: TensorInfo,
    ends: Sequence[torch.Tensor] | None = None,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """``anchor + lam * sum(deltas)``; ``lerp(anchor, end, lam)`` when the plan passes the one end.

    One fused pass into a fresh buffer (no clone-then-add), exact at lam=0 and lam=1.
    """
    return blend(anchor, deltas, lam, ends, out=out)
