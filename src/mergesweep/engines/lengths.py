"""How long a sequence an engine holds when the preflight did not size it: the number set, else a fallback.

Why here, apart from ``checks/sizing.py``: both engines (and ``mergesweep check``) need this one rule when they
start, while sizing a suite needs lm-eval's tasks; the engines must not import the suites. ``sizing.size`` reads
the model's positions through the same functions.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .spec import EngineSpec

FALLBACK = 2048  # engines built directly (scripts, tests) without a number: min(this, the model's positions)


def text_config(model_dir: str | Path) -> dict[str, Any]:
    """The language model's part of ``config.json`` (multimodal configs nest it under ``text_config``)."""
    cfg = json.loads((Path(model_dir) / "config.json").read_text())
    return cfg.get("text_config") or cfg


def positions(model_dir: str | Path) -> int | None:
    """The model's ``max_position_embeddings`` (None when the config does not say)."""
    n = text_config(model_dir).get("max_position_embeddings")
    return int(n) if isinstance(n, int) and n > 0 else None


def engine_len(spec: EngineSpec, model_dir: str | Path) -> int:
    """``max_model_len`` for an engine built from ``spec``: its number, or (``auto``: not sized by the preflight)
    ``FALLBACK`` capped by the model's positions. One rule for both engines and ``check``."""
    n = spec.max_model_len
    if isinstance(n, int) and not isinstance(n, bool):
        return n
    return min(FALLBACK, positions(model_dir) or FALLBACK)
