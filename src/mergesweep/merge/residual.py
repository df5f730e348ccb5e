"""Instruction residuals: move a third model (``target``, e.g. a continually pre-trained base) along the
instruction-tuning direction of the original pair.

    theta(lam) = theta_target + lam * (theta_instruct - theta_base)

Jindal et al., "Balancing Continuous Pre-Training and Instruction Fine-Tuning: Optimizing Instruction-
Following in LLMs", arXiv 2410.10739. It is ``linear`` with anchor = target and reference = base, which the
plan sets up from the merge YAML's ``anchor: target`` (the model config must name ``target:``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .base import TensorInfo, blend, elementwise


@elementwise
def residual(
    anchor: torch.Tensor,
    deltas: Sequence[torch.Tensor],
    *,
    lam: float,
    info: TensorInfo,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """``target + lam * (instruct - base)``."""
    return blend(anchor, deltas, lam, out=out)
