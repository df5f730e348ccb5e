"""LiNeS: layer-increasing network scaling of the task vector.

    s(l) = alpha + beta * l / (L - 1)          for a tensor in layer l = 0..L-1 (L = num_hidden_layers)
    theta(lam) = theta_base + lam * s(part) * (theta_instruct - theta_base)

Wang et al., "LiNeS: Post-training Layer Scaling Prevents Forgetting and Enhances Model Merging",
arXiv 2410.17146: shallow layers hold general features that fine-tuning should barely move, deep layers
the task-specific ones, so the update is scaled up linearly with depth.

Choices made here (the paper leaves them open for LLMs):
* ``lam`` scales the whole schedule, so one sweep axis still runs from base (lam=0) outward, and
  ``alpha=1, beta=0`` is exactly ``linear``.
* Tensors outside the layer stack get their own strengths: ``embed`` and ``head`` (default ``alpha``: the
  input side is the shallowest part, and with tied embeddings the head *is* the embedding, so one default
  keeps tied and untied models comparable), ``norm`` for the final norm and ``other`` for anything else
  (both default ``alpha``). Norms inside a layer follow their layer's s(l).
* With a single layer (L = 1) s = alpha.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .base import TensorInfo, blend, elementwise, uses_ends


def lines_strength(
    info: TensorInfo,
    alpha: float,
    beta: float,
    embed: float | None = None,
    head: float | None = None,
    norm: float | None = None,
    other: float | None = None,
) -> float:
    """The schedule s(part) for one tensor (before multiplying by lam)."""
    if info.layer is not None:
        frac = info.layer / (info.num_layers - 1) if info.num_layers > 1 else 0.0
        return alpha + beta * frac
    part = {"embed": embed, "head": head, "norm": norm}.get(info.group, other)
    return alpha if part is None else float(part)


@elementwise
@uses_ends
def lines(
    anchor: torch.Tensor,
    deltas: Sequence[torch.Tensor],
    *,
    lam: float,
    info: TensorInfo,
    ends: Sequence[torch.Tensor] | None = None,
    alpha: float = 0.5,
    beta: float = 0.5,
    embed: float | None = None,
    head: float | None = None,
    norm: float | None = None,
    other: float | None = None,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """``anchor + lam * s(part) * sum(deltas)``."""
    return blend(anchor, deltas, lam * lines_strength(info, alpha, beta, embed, head, norm, other), ends, out=out)
