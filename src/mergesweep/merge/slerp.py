"""Spherical linear interpolation between the anchor and the fine-tuned model, per tensor.

    cos(Omega) = <v0, v1> / (|v0| |v1|),   v0 = theta_base, v1 = theta_instruct (flattened tensor)
    theta(lam) = sin((1 - lam) Omega) / sin(Omega) * v0 + sin(lam Omega) / sin(Omega) * v1

Shoemake (1985), as used for model merging by mergekit (arXiv 2403.13257, ``slerp``). When the two
tensors are near-parallel (``|cos| > dot_threshold``) sin(Omega) ~ 0 makes the formula unstable, so it
falls back to linear interpolation, like mergekit. ``eps`` guards the norms of all-zero tensors.
The angle is taken over the rows both models have (``info.shared_rows``): rows an instruct model added to its
vocabulary are its own at every lam, and counting them would bias Omega for the rows that are interpolated.
lam outside [0, 1] follows the great circle past the endpoints. Coefficients are formed in float64
(Python floats); at lam=0 and lam=1 they are exactly (1, 0) and (0, 1), so the endpoints are exact.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .base import MergeConfigError, TensorInfo, uses_ends


@uses_ends
def slerp(
    anchor: torch.Tensor,
    deltas: Sequence[torch.Tensor],
    *,
    lam: float,
    info: TensorInfo,
    ends: Sequence[torch.Tensor] | None = None,
    dot_threshold: float = 0.9995,
    eps: float = 1e-8,
) -> torch.Tensor:
    """Slerp from ``anchor`` towards ``anchor + delta`` (one fine-tuned model only)."""
    n = len(ends) if ends is not None else len(deltas)
    if n == 0:
        return anchor.clone()
    if n > 1:
        raise MergeConfigError(f"slerp interpolates between two models; got {n} task vectors")
    v0 = anchor
    v1 = ends[0] if ends is not None else anchor + deltas[0]
    rows = info.shared_rows if info.shared_rows is not None and v0.dim() else None
    f0, f1 = (v0.reshape(-1), v1.reshape(-1)) if rows is None else (v0[:rows].reshape(-1), v1[:rows].reshape(-1))
    dot = float(torch.dot(f0, f1))
    cos = dot / (max(float(torch.linalg.vector_norm(f0)), eps) * max(float(torch.linalg.vector_norm(f1)), eps))
    if abs(cos) > dot_threshold:
        return torch.lerp(v0, v1, float(lam))
    omega = math.acos(max(-1.0, min(1.0, cos)))
    s = math.sin(omega)
    c0, c1 = math.sin(omega - omega * lam) / s, math.sin(omega * lam) / s
    return torch.add(v0 * c0, v1, alpha=c1)
