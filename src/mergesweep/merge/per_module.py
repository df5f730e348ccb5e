"""Per-module strengths: a separate scale for each part of the network.

    theta(lam) = theta_base + lam * scales[part] * (theta_instruct - theta_base)
    part in {attn, mlp, norm, embed, head, other}   (see ``base.classify``; a part left out gets 1)

Which parts carry instruction following vs in-context learning is an empirical question this knob lets a
sweep ask (e.g. scales={attn: 0, mlp: 1} keeps the base attention). With all scales 1 it is ``linear``.
Same family as the per-layer/per-module coefficients of mergekit's ``linear`` with tensor filters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType

import torch

from .base import GROUPS, MergeConfigError, TensorInfo, blend, elementwise, uses_ends

# Every part at full strength: the default (read-only, as a default must be), in the order records keep.
ALL_ONE: Mapping[str, float] = MappingProxyType(dict.fromkeys(("attn", "mlp", "norm", "embed", "head", "other"), 1.0))


@elementwise
@uses_ends
def per_module(
    anchor: torch.Tensor,
    deltas: Sequence[torch.Tensor],
    *,
    lam: float,
    info: TensorInfo,
    ends: Sequence[torch.Tensor] | None = None,
    scales: Mapping[str, float] | None = ALL_ONE,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """``anchor + lam * scales[info.group] * sum(deltas)``."""
    scales = dict(scales or {})
    unknown = sorted(set(scales) - set(GROUPS))
    if unknown:
        raise MergeConfigError(f"per_module scales has unknown parts {unknown}; known: {list(GROUPS)}")
    return blend(anchor, deltas, lam * float(scales.get(info.group, 1.0)), ends, out=out)
