"""Loader of the ``arith_word`` task (``!function utils.load``): the fixed test split of mergesweep.evals.arith."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mergesweep.evals.arith import prompt, test_split

if TYPE_CHECKING:
    from datasets import DatasetDict


def load(**_: Any) -> DatasetDict:
    """lm-eval ``custom_dataset``: one ``test`` split, each doc with its zero-shot ``prompt`` and exact ``answer``."""
    from datasets import Dataset, DatasetDict

    return DatasetDict({"test": Dataset.from_list([{**p, "prompt": prompt(p["question"])} for p in test_split()])})
