"""Model Stock: average several fine-tuned models and pull the average towards the base by an amount set
by how aligned their task vectors are.

    cos   = mean over pairs i<j of <tau_i, tau_j> / (|tau_i| |tau_j|)        (per tensor)
    t     = k * cos / (1 + (k - 1) * cos)                                       (k fine-tuned models)
    theta(lam) = theta_base + lam * t * mean_i(tau_i)

Jang et al., "Model Stock: All we need is just a few fine-tuned models", arXiv 2403.19522 (their
``w_H = t * w_avg + (1 - t) * w_0`` with ``w_avg = w_0 + mean(tau)``). ``lam`` scales the whole Model Stock
update, so lam=1 is the paper's merge and lam=0 the base. Needs k >= 2 (``model.finetuned``). ``cos`` is
clamped to [-1, 1]; a zero denominator (cos = -1/(k-1)) gives t = 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import torch

from .base import MergeConfigError, TensorInfo


def stock_ratio(deltas: Sequence[torch.Tensor], eps: float = 1e-8) -> float:
    """Model Stock's interpolation ratio t for one tensor."""
    k = len(deltas)
    flat = [d.reshape(-1) for d in deltas]
    norms = [max(float(torch.linalg.vector_norm(f)), eps) for f in flat]
    cos = sum(float(torch.dot(flat[i], flat[j])) / (norms[i] * norms[j]) for i, j in combinations(range(k), 2))
    cos = max(-1.0, min(1.0, cos / (k * (k - 1) / 2)))
    den = 1.0 + (k - 1) * cos
    return k * cos / den if abs(den) > eps else 0.0


def model_stock(
    anchor: torch.Tensor, deltas: Sequence[torch.Tensor], *, lam: float, info: TensorInfo, eps: float = 1e-8
) -> torch.Tensor:
    """``base + lam * t * mean(deltas)``."""
    k = len(deltas)
    if k < 2:
        raise MergeConfigError(f"model_stock needs >= 2 fine-tuned models sharing the base; got {k}")
    t = stock_ratio(deltas, eps)
    out = torch.add(anchor, deltas[0], alpha=lam * t / k)
    for d in deltas[1:]:
        out.add_(d, alpha=lam * t / k)
    return out
