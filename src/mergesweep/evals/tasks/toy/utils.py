"""Loaders for the toy suites (referenced from the YAMLs with ``!function utils.*``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mergesweep.evals.data import jsonl_splits
from mergesweep.evals.prompts import ifeval_dataset
from mergesweep.paths import data_dir

if TYPE_CHECKING:
    from datasets import DatasetDict


def recall(name: str, **_: Any) -> DatasetDict:
    """Few-shot recall task ``name``: train = demonstration pool, test = queries."""
    return jsonl_splits("toy_suites", name, ("train", "test"), required=("key", "label", "choices"))


def toy_ifeval(prompt_file: str | None = None, **_: Any) -> DatasetDict:
    """Toy IFEval prompts (or a suite's ``prompt_file``), instruction ids checked like ``ifeval_local``'s."""
    return ifeval_dataset(prompt_file or data_dir() / "toy_suites" / "toy_ifeval.jsonl")
