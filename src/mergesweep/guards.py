"""Guards against silently wrong records: non-finite weights and broken evaluation outputs.

Why: a NaN in one weight of instruct used to give complete-looking records at every lam (lam=0 included,
since ``lerp(a, NaN, 0)`` is NaN): every log-probability NaN, every answer empty, accuracy at chance with a
narrow CI. ``strength=1e30`` did the same through overflow. These checks turn both into a failed point.

* Tensors (``check_tensors``): the fp32 2-norm of each tensor, computed on its own device (one reduction, no
  copy), must be finite. That catches NaN and Inf anywhere, and tensors too large for fp32 arithmetic
  (``|t|_2 > 1.8e19``: the first matmul or norm of the forward pass would overflow). Norms are queued per tensor
  and read back once per batch, so a GPU syncs once per point rather than once per tensor.
* Evaluation outputs (``check_part``): a part fails if any log-likelihood is NaN. A task whose generations are
  all empty is *flagged* (``all_generations_empty``), not failed: at an extreme strength the model may really
  break, and that point belongs on the curve (the record, ``status``, the report and the figures show the flag).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import torch

from .errors import PointFailed  # defined in errors.py (the one-line printers know it); re-exported here


class NonFiniteError(PointFailed):
    """A checkpoint tensor or a merged tensor is NaN/Inf (or too large for fp32 arithmetic)."""


class BrokenResults(PointFailed):
    """An evaluation part produced NaN log-likelihoods."""


ALL_GENERATIONS_EMPTY = "all_generations_empty"


def tensor_norm(t: torch.Tensor) -> torch.Tensor:
    """fp32 2-norm of ``t`` on its device (a 0-d tensor; no host sync)."""
    return torch.linalg.vector_norm(t.detach(), dtype=torch.float32)


class FiniteCheck:
    """Collects per-tensor norms as tensors are built; ``raise_if_bad`` syncs once and names the first bad one."""

    def __init__(self, what: str) -> None:
        self.what = what  # message prefix, e.g. "merged point (linear, lam=0.5): "
        self._names: list[str] = []
        self._norms: list[torch.Tensor] = []

    def add(self, name: str, t: torch.Tensor) -> None:
        """Queue ``t``'s norm; ``name`` says where it is (e.g. "checkpoint /x/instruct, tensor 'w'")."""
        if t.is_floating_point() and t.numel():
            self._names.append(name)
            self._norms.append(tensor_norm(t))

    def raise_if_bad(self) -> None:
        if not self._norms:
            return
        by_device: dict[torch.device, list[int]] = {}
        for i, n in enumerate(self._norms):
            by_device.setdefault(n.device, []).append(i)
        bad = []
        for idx in by_device.values():
            ok = torch.isfinite(torch.stack([self._norms[i] for i in idx])).tolist()
            bad += [i for i, good in zip(idx, ok) if not good]
        names, self._names, self._norms = self._names, [], []
        if bad:
            first = names[min(bad)]
            raise NonFiniteError(
                f"{self.what}{first} is not finite (NaN/Inf, or too large for fp32 "
                f"arithmetic)" + (f"; {len(bad) - 1} more tensor(s) too" if len(bad) > 1 else "")
            )


def _nan_logliks(samples: Iterable[dict]) -> int:
    """How many samples have a NaN among their log-likelihood responses (``[[ll, is_greedy], ...]``)."""
    n = 0
    for s in samples:
        for r in s.get("filtered_resps") or []:
            ll = r[0] if isinstance(r, (list, tuple)) and r else r
            if isinstance(ll, float) and math.isnan(ll):
                n += 1
                break
    return n


def _all_empty(samples: Sequence[dict]) -> bool:
    """Every generation of the task is empty or whitespace (lm-eval keeps them as ``filtered_resps[0]``)."""

    def text(s: dict) -> str:
        r = (s.get("filtered_resps") or [""])[0]
        return r if isinstance(r, str) else ""

    return bool(samples) and not any(text(s).strip() for s in samples)


def check_part(part: str, output_types: dict[str, str], samples: dict[str, Sequence[dict]]) -> dict[str, str]:
    """BrokenResults if any task of the part has NaN log-likelihoods; returns ``{task: flag}`` for tasks whose
    outputs are finite but degenerate (every generation empty: ``ALL_GENERATIONS_EMPTY``)."""
    flags = {}
    for task, rows in samples.items():
        kind = output_types.get(task, "")
        if kind == "generate_until":
            if _all_empty(rows):
                flags[task] = ALL_GENERATIONS_EMPTY
        elif n := _nan_logliks(rows):
            raise BrokenResults(f"part {part!r}, task {task}: {n} of {len(rows)} samples have NaN log-likelihoods")
    return flags


def summary_line(e: BaseException) -> str:
    """One line for logs and failure entries."""
    return f"{type(e).__name__}: {e}".splitlines()[0]


__all__ = [
    "ALL_GENERATIONS_EMPTY",
    "BrokenResults",
    "FiniteCheck",
    "NonFiniteError",
    "PointFailed",
    "check_part",
    "summary_line",
    "tensor_norm",
]
