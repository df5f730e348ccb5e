"""What every merge method sees for one tensor, and how tensor names map to model parts.

A method is a pure function ``fn(anchor, deltas, *, lam, info, **knobs) -> Tensor`` over fp32 tensors:
``anchor`` is the point the sweep starts from (the base model for most methods) and ``deltas`` are task
vectors (``finetuned - base``). Keeping methods this small is what lets one MergePlan drive all of them on
whatever device the engine uses.

Inputs are read-only: they may be the plan's resident tensors, so a method must return a fresh tensor and
never modify ``anchor`` or a delta in place. ``deltas`` is any sequence (the plan hands a lazy one that only
computes ``finetuned - reference`` when a method reads it).

Methods that are a per-tensor interpolation (``anchor + s * delta``) may be marked with ``@uses_ends``: the
plan then also passes ``ends=[finetuned tensors]`` when it holds them (anchor is the reference), and
``blend`` computes ``torch.lerp(anchor, end, s)``. Why: ``anchor + (end - anchor)`` is not always ``end`` in
floating point, while lerp is exact at s=0 and s=1 (lam=1 reproduces the instruct model bit for bit), and
it is one fused pass instead of two (the merge runs at close to memory-copy speed).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from ..errors import MergeConfigError  # defined in errors.py; re-exported here
from ..weights.tensor_names import is_embedding, is_head

_LAYER = re.compile(r"(?:^|\.)(?:layers|h|blocks|layer)\.(\d+)\.")


@dataclass(frozen=True)
class TensorInfo:
    """Where a tensor sits in the model: its name, part (``group``), layer index and the layer count."""

    name: str
    group: str  # "embed" | "head" | "attn" | "mlp" | "norm" | "other"
    layer: int | None
    num_layers: int
    # Rows both models have when instruct added vocabulary rows (the rest are instruct's at every lam, so
    # per-tensor statistics such as slerp's angle must not see them); None = all rows.
    shared_rows: int | None = None


# A merge method: ``fn(anchor, deltas, *, lam, info, **knobs) -> merged tensor``, each knob a keyword with a
# default (``method_knobs`` reads them off the signature). A Callable alias, not a Protocol: a Protocol with
# ``**knobs`` would reject every method that names its knobs.
MergeFn = Callable[..., torch.Tensor]


GROUPS = ("embed", "head", "attn", "mlp", "norm", "other")


def classify(name: str, num_layers: int) -> TensorInfo:
    """Name -> model part, for Llama/Qwen/Mistral/Gemma/GPT-2-style names (used by per-part methods)."""
    m = _LAYER.search(name)
    layer = int(m.group(1)) if m else None
    low = name.lower()
    if is_embedding(name):
        group = "embed"
    elif is_head(name):
        group = "head"
    elif "norm" in low or re.search(r"\bln_", low):
        group = "norm"
    elif any(k in low for k in ("self_attn", "attention", ".attn.", "q_proj", "k_proj", "v_proj", "o_proj")):
        group = "attn"
    elif any(k in low for k in ("mlp", "feed_forward", "gate_proj", "up_proj", "down_proj", "experts")):
        group = "mlp"
    else:
        group = "other"
    return TensorInfo(name=name, group=group, layer=layer, num_layers=num_layers)


MergeFunction = Callable[..., torch.Tensor]


def uses_ends(fn: MergeFunction) -> MergeFunction:
    """Mark a method as accepting ``ends=`` (the fine-tuned tensors themselves, see module docstring)."""
    fn.uses_ends = True  # type: ignore[attr-defined]
    return fn


def elementwise(fn: MergeFunction) -> MergeFunction:
    """Mark a method whose output entry depends only on the same entry of its inputs (and per-tensor
    constants): the plan may then feed it a big tensor in blocks of rows, keeping temporaries small, and
    passes ``out=`` (an fp32 buffer to write into, possibly recycled) which the method must honour."""
    fn.elementwise = True  # type: ignore[attr-defined]
    return fn


def blend(
    anchor: torch.Tensor,
    deltas: Sequence[torch.Tensor],
    strength: float,
    ends: Sequence[torch.Tensor] | None = None,
    weights: Sequence[float] | None = None,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """``anchor + strength * sum_i(w_i * delta_i)``, the kernel of every linear-family method.

    With exactly one fine-tuned end (and unit weight) it is ``torch.lerp(anchor, end, strength)``: exact at
    strength 0 and 1 and a single fused pass. Otherwise one fused ``add`` per delta. Written into ``out``
    when given (an fp32 buffer of the anchor's shape), else into a fresh tensor.
    """
    w = [1.0] * len(ends if ends is not None else deltas) if weights is None else [float(x) for x in weights]
    if ends is not None and len(ends) == 1 and w[0] == 1.0:
        return torch.lerp(anchor, ends[0], float(strength), out=out)
    n = len(deltas)
    if len(w) != n:
        raise MergeConfigError(f"{len(w)} weights given for {n} task vectors")
    if n == 0:
        return anchor.clone() if out is None else out.copy_(anchor)
    res = torch.add(anchor, deltas[0], alpha=strength * w[0], out=out)
    for d, wi in zip(deltas[1:], w[1:]):
        res.add_(d, alpha=strength * wi)
    return res


def stacked(deltas: Sequence[torch.Tensor]) -> torch.Tensor:
    """``[k, *shape]`` view of the task vectors (for sign election / pairwise statistics)."""
    return torch.stack(list(deltas))


def disjoint_mean(stack: torch.Tensor) -> torch.Tensor:
    """TIES steps 2+3 (arXiv 2306.01708): elect the sign by total mass, average the entries that agree.

    ``gamma = sign(sum_t tau_t)``; ``tau_m = sum_{t: sign(tau_t)=gamma} tau_t / |{t: sign(tau_t)=gamma}|``.
    Zeroed (trimmed/dropped) entries have sign 0 and never count towards the mean.
    """
    sign = torch.sign(stack.sum(0))
    agree = torch.sign(stack) == sign
    total = torch.where(agree, stack, torch.zeros((), dtype=stack.dtype, device=stack.device)).sum(0)
    return total / agree.sum(0).clamp_min(1).to(stack.dtype)


_PLAN_ARGS = {"lam", "info", "ends", "out"}


def method_knobs(fn: MergeFunction) -> dict[str, object]:
    """``{knob: default}`` a method accepts (its keyword-only parameters other than lam/info/ends)."""
    import inspect

    return {
        p.name: (None if p.default is inspect.Parameter.empty else p.default)
        for p in inspect.signature(fn).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY and p.name not in _PLAN_ARGS
    }


def check_knobs(fn: MergeFunction, knobs: dict) -> None:
    """Fail before the first tensor on a misspelled knob (instead of a TypeError deep in a sweep)."""
    import inspect

    params = inspect.signature(fn).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return
    known = method_knobs(fn)
    unknown = sorted(set(knobs) - set(known))
    if unknown:
        name = getattr(fn, "__name__", repr(fn))
        raise MergeConfigError(
            f"unknown knob(s) {unknown} for merge method {name}; it takes: {', '.join(known) or 'no knobs'}"
        )
