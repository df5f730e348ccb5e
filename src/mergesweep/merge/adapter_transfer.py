"""Adapter transfer: apply a LoRA adapter trained on the *base* model to the *instruct* model.

    theta(lam) = theta_instruct + lam * (alpha / r) * B @ A        (alpha / sqrt(r) with use_rslora)

LoRA is Hu et al., arXiv 2106.09685. The question this method asks: does a low-rank update learned on the
base still do its job on the instruct model (whose weights differ by the instruction-tuning delta), and at
what strength lam? (Same additive logic as task arithmetic, arXiv 2212.04089, with a low-rank task vector.)
The plan's anchor is the instruct model and its task vector the adapter's delta (``merge.lora``): modules the
adapter does not target get an empty delta list and pass through unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .base import TensorInfo, blend, elementwise


@elementwise
def adapter_transfer(
    anchor: torch.Tensor,
    deltas: Sequence[torch.Tensor],
    *,
    lam: float,
    info: TensorInfo,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """``instruct + lam * lora_delta`` (``instruct`` unchanged for untargeted tensors)."""
    return blend(anchor, deltas, lam, out=out)
