"""Merge methods: name -> pure tensor function (see ``base.MergeFn``), plus the plan that applies one.

Adding a method = one file here with its formula and paper in the docstring, one line in ``METHODS`` and a
``conf/merge/<name>.yaml`` listing ``<name>_schema`` (the typed schema ``spec.py`` makes from the function: its
keyword-only arguments are the knobs, their defaults the defaults; where the sources are not ``base`` + ``instruct``,
one line in ``spec.METHOD_SOURCES``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .adapter_transfer import adapter_transfer
from .base import MergeConfigError, MergeFn, TensorInfo, check_knobs, classify, method_knobs
from .dare import dare_linear, dare_ties
from .linear import linear
from .lines import lines
from .model_stock import model_stock
from .per_module import per_module
from .residual import residual
from .slerp import slerp
from .task_arithmetic import task_arithmetic
from .ties import ties

METHODS: dict[str, MergeFn] = {
    "linear": linear,
    "slerp": slerp,
    "task_arithmetic": task_arithmetic,
    "ties": ties,
    "dare_linear": dare_linear,
    "dare_ties": dare_ties,
    "lines": lines,
    "per_module": per_module,
    "residual": residual,
    "adapter_transfer": adapter_transfer,
    "model_stock": model_stock,
}


def get_method(name: str) -> MergeFn:
    """Look a method up by its user-facing name, with the list of known ones in the error."""
    try:
        return METHODS[name]
    except KeyError:
        raise MergeConfigError(f"unknown merge method {name!r}; known: {', '.join(sorted(METHODS))}") from None


def _plain(x: Any) -> Any:
    """OmegaConf/other mappings and sequences -> plain dicts/lists (JSON-ready records)."""
    if isinstance(x, Mapping):
        return {str(k): _plain(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)) or (hasattr(x, "__iter__") and type(x).__name__ == "ListConfig"):
        return [_plain(v) for v in x]
    return x


def describe_point(name: str, lam: float, knobs: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What a record should store about a sweep point's merge.

    ``extrapolation`` is true outside [0, 1]: lam > 1 goes past the instruct model along the fine-tuning
    direction (ExPO, arXiv 2404.16792), lam < 0 goes past the base away from it.
    """
    lam = float(lam)
    return {"method": name, "lam": lam, "extrapolation": lam > 1.0 or lam < 0.0, "knobs": _plain(dict(knobs or {}))}


__all__ = [
    "METHODS",
    "MergeConfigError",
    "MergeFn",
    "TensorInfo",
    "check_knobs",
    "classify",
    "describe_point",
    "get_method",
    "method_knobs",
]
