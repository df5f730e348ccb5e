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
from functools import lru_cache
from typing import Any

from ..errors import SuiteError

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


def seed_everything(s: int) -> None:
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
        seed_everything(item_seed(doc))
        return lm_eval_process_results(doc, results)
    finally:
        random.setstate(saved)


# A response with sentences, capitals, a highlight, a title and a postscript: every checker has text to work on.
PROBE_RESPONSE = "<<A Title>>\nHello World. This is a TEST, with *one highlight*!\n\n* a bullet\n\nP.S. That is all."


@lru_cache(maxsize=1)
def check_scorer() -> None:
    """Every IFEval checker lm-eval registers, scored once on ``PROBE_RESPONSE`` through ``process_results``.

    Why before the engine: checkers the shipped prompts rarely use (``number_sentences``,
    ``capital_word_frequency``) need nltk's punkt_tab, so a scorer that cannot run used to fail after minutes
    of generation, when the first such answer was scored. Raises a one-line SuiteError; runs once per process.
    """
    from lm_eval.tasks.ifeval.instructions_registry import INSTRUCTION_DICT

    ids = sorted(INSTRUCTION_DICT)
    kwargs = [{"prompt_to_repeat": "Say hello."} if i == "combination:repeat_prompt" else {} for i in ids]
    doc = {"key": 0, "prompt": "Say hello.", "instruction_id_list": ids, "kwargs": kwargs}
    try:
        process_results(doc, [PROBE_RESPONSE])
    except Exception as e:
        raise SuiteError(f"IFEval's scorer cannot run here: {_reason(e)}") from e


def _reason(e: Exception) -> str:
    """One line for a scorer failure; nltk's LookupError is a 15-line banner naming what it looked for."""
    import os

    text = " ".join(str(e).replace("*", " ").split())
    if isinstance(e, LookupError) and "not found" in text:
        resource = text.split(" not found")[0].replace("Resource ", "")
        return (
            f"nltk resource {resource} not found (NLTK_DATA={os.environ.get('NLTK_DATA', '')!r}); "
            "mergesweep ships punkt_tab in data/nltk: check MERGESWEEP_DATA"
        )
    return f"{type(e).__name__}: {text}"
