"""TIES-merging: trim, elect sign, disjoint mean.

    tau_hat_t = keep the top-k |tau_t| entries of the tensor, k = floor(density * numel), zero the rest
    gamma     = sign(sum_t tau_hat_t)
    tau_m     = mean over t of the tau_hat_t entries whose sign equals gamma (zeros excluded)
    theta(lam) = theta_base + lam * tau_m

Yadav et al., "TIES-Merging: Resolving Interference When Merging Models", arXiv 2306.01708. Trimming is
per tensor, as in the paper's code and mergekit. The top-k threshold is found with ``kthvalue`` (a
selection, not a sort); entries tied with the threshold are all kept.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .base import MergeConfigError, TensorInfo, disjoint_mean, stacked


def trim(delta: torch.Tensor, density: float) -> torch.Tensor:
    """Keep the ``floor(density * numel)`` largest-magnitude entries (a new tensor)."""
    if not 0.0 <= density <= 1.0:
        raise MergeConfigError(f"ties density must be in [0, 1], got {density}")
    n = delta.numel()
    k = int(density * n)
    if k >= n:
        return delta.clone()
    if k <= 0:
        return torch.zeros_like(delta)
    mag = delta.abs()
    thr = torch.kthvalue(mag.reshape(-1), n - k + 1).values
    return torch.where(mag >= thr, delta, torch.zeros((), dtype=delta.dtype, device=delta.device))


def ties(
    anchor: torch.Tensor, deltas: Sequence[torch.Tensor], *, lam: float, info: TensorInfo, density: float = 0.2
) -> torch.Tensor:
    """``anchor + lam * disjoint_mean(trim(deltas))``."""
    if len(deltas) == 0:
        return anchor.clone()
    if len(deltas) == 1:  # the disjoint mean of one task vector is itself: skip the sign election
        return trim(deltas[0], density).mul_(lam).add_(anchor)
    merged = disjoint_mean(stacked([trim(d, density) for d in deltas]))
    return merged.mul_(lam).add_(anchor)
