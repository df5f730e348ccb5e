"""The benchmark JSON the documentation's figures read (``results/bench/<name>.json``) and the number formats
they print (``4.9x``, ``21.1%``, ``0.8-1.2``). Shared by the renderers (``figures_bench.py``,
``figures_realsize.py``) so every block prints a ratio or a share the same way. Standard library only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BENCH = REPO / "results" / "bench"


def bench(name: str) -> Any:
    """``results/bench/<name>.json``, parsed."""
    return json.loads((BENCH / f"{name}.json").read_text())


def x(v: float, nd: int = 1) -> str:
    """A ratio: ``4.9x``."""
    return f"{v:.{nd}f}x"


def pct(v: float, nd: int = 1) -> str:
    """A share: ``21.1%``."""
    return f"{100 * v:.{nd}f}%"


def span(lo: float, hi: float, fmt: str) -> str:
    """``lo-hi`` (or one number when both print the same)."""
    a, b = format(min(lo, hi), fmt), format(max(lo, hi), fmt)
    return a if a == b else f"{a}-{b}"
