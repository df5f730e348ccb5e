"""The two filters every training chat of the sibling passes (``if_train_data.py``).

- ``passes``: lm-eval's own IFEval checkers accept the reshaped answer for every constraint the prompt states.
- ``leaks``: the prompt shares no run of 8 consecutive words with an evaluation prompt (IFEval's 541, AlpacaEval's
  805). The generator drops such chats itself, because phrasings of constraint kinds are short and a combination of
  two can happen to line up with an IFEval prompt (a discarded sibling had 2 such chats in 2,400);
  ``tests/test_real_training_data.py`` keeps its own, independent check.
"""

from __future__ import annotations

import functools
import json
import re

SHINGLE = 8


def _shingles(text: str) -> set[tuple[str, ...]]:
    w = re.findall(r"[a-z0-9']+", text.lower())
    return {tuple(w[i : i + SHINGLE]) for i in range(len(w) - SHINGLE + 1)}


@functools.cache
def _banned() -> frozenset[tuple[str, ...]]:
    from mergesweep.paths import data_dir

    ifeval = [json.loads(x)["prompt"] for x in (data_dir() / "ifeval" / "input_data.jsonl").read_text().splitlines()]
    alpaca = json.loads((data_dir() / "alpaca_eval" / "gpt4_turbo_1106_preview_model_outputs.json").read_text())
    return frozenset().union(*(_shingles(p) for p in ifeval + [r["instruction"] for r in alpaca]))


def leaks(prompt: str) -> bool:
    """Whether ``prompt`` shares 8 consecutive words with an IFEval prompt or an AlpacaEval instruction."""
    return bool(_shingles(prompt) & _banned())


def passes(instruction_ids: list[str], kwargs: list[dict], prompt: str, response: str) -> bool:
    """Whether lm-eval's own IFEval checkers accept ``response`` for every instruction (strict)."""
    from lm_eval.tasks.ifeval.instructions_registry import INSTRUCTION_DICT

    from mergesweep.evals.seeded import item_seed, seed_everything

    seed_everything(item_seed({"key": 0, "prompt": prompt}, 0))  # langdetect (english_capital) is random otherwise
    for iid, kw in zip(instruction_ids, kwargs):
        checker = INSTRUCTION_DICT[iid](iid)
        checker.build_description(**kw)
        if "prompt" in (checker.get_instruction_args() or {}):
            checker.build_description(prompt=prompt)
        if not (response.strip() and checker.check_following(response)):
            return False
    return True
