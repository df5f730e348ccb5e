"""IFEval's checkers, made deterministic: each item is scored under its own fixed seed.

lm-eval's IFEval checkers are not functions of the response alone: ``langdetect`` (the ``language:*`` and
``change_case:*`` checks) samples n-grams from an unseeded RNG, and ``build_description`` draws missing
arguments from Python's global ``random``. Unseeded, the same response passed a check in about 25% of
re-scorings and the GPT-4 reference spread over 76.71-77.08 prompt-strict. Here every item runs with
``random`` and ``langdetect`` seeded from (the checker seed, the item's key and prompt): re-scoring gives the
same result, and in any order, since no item's seed depends on the items scored before it. The caller's global
``random`` state is restored afterwards. The seed is stored in records as ``seeds.if_checkers``; ``verify``
re-scores under the recorded one (``using_seed``).
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

DEFAULT_SEED = 0
_state = {"seed": DEFAULT_SEED}


def checker_seed() -> int:
    """The seed IFEval items are scored under now (``DEFAULT_SEED`` unless inside ``using_seed``)."""
    return _state["seed"]


@contextmanager
def using_seed(seed: int | None) -> Iterator[None]:
    """Score under ``seed`` (None: the default) inside the block, e.g. to re-score a record."""
    old = _state["seed"]
    _state["seed"] = DEFAULT_SEED if seed is None else int(seed)
    try:
        yield
    finally:
        _state["seed"] = old


def item_seed(doc: dict[str, Any], seed: int | None = None) -> int:
    """A 32-bit seed for one item: a function of the checker seed and the item alone."""
    seed = checker_seed() if seed is None else seed
    text = f"{seed}|{doc.get('key')}|{doc.get('prompt')}"
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")


def _seed_everything(s: int) -> None:
    from langdetect import detector_factory

    random.seed(s)
    detector_factory.DetectorFactory.seed = s
    if detector_factory._factory is not None:  # the shared factory langdetect.detect() uses
        detector_factory._factory.seed = s


def process_results(doc: dict[str, Any], results: list[str]) -> dict[str, Any]:
    """lm-eval's IFEval ``process_results`` under the item's seed (same signature, same metrics)."""
    from lm_eval.tasks.ifeval.utils import process_results as lm_eval_process_results

    saved = random.getstate()
    try:
        _seed_everything(item_seed(doc))
        return lm_eval_process_results(doc, results)
    finally:
        random.setstate(saved)
