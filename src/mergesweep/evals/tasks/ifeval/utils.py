"""IFEval on the shipped original prompts (``!function utils.*`` in ifeval_local.yaml).

Scoring is lm-eval's own (``lm_eval.tasks.ifeval.utils.process_results``), run under a per-item seed
(``mergesweep.evals.seeded``: its checkers call ``random`` and ``langdetect``); this file loads
``data/ifeval/input_data.jsonl`` and checks it first. Why check: lm-eval's checkers look each instruction id up
in a dict, so a typo or an id from a newer IFEval variant surfaces mid-run as a bare ``KeyError``; here it is
a DataError naming the file, row, key and id while the task is being built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from lm_eval.tasks.ifeval.utils import agg_inst_level_acc  # noqa: F401  (IFEval's own aggregation)

from mergesweep.evals.prompts import ifeval_rows  # the id checks, shared with toy_ifeval
from mergesweep.evals.seeded import process_results  # noqa: F401  (IFEval's own scoring, seeded per item)
from mergesweep.paths import data_dir

if TYPE_CHECKING:
    from datasets import DatasetDict

PROMPTS = "input_data.jsonl"


def load_prompts(name: str = PROMPTS) -> list[dict]:
    """Checked rows of ``data/ifeval/<name>`` (an absolute ``name`` is used as is)."""
    return ifeval_rows(data_dir() / "ifeval" / name)


def ifeval_original(
    name: str = PROMPTS, prompt_file: str | None = None, sample: int | None = None, sample_seed: int = 0, **_: Any
) -> DatasetDict:
    """lm-eval ``custom_dataset``: one ``test`` split (``prompt_file``: a suite's own IFEval-format file).

    ``sample``: a fixed subset of that many prompts, drawn with ``sample_seed`` and kept in file order, so every
    run and machine scores the same prompts (lm-eval's ``limit`` would take the first rows, which are not a
    random draw of IFEval's instruction kinds).
    """
    import random

    from datasets import Dataset, DatasetDict

    rows = load_prompts(prompt_file or name)
    if sample is not None and sample < len(rows):
        keep = sorted(random.Random(sample_seed).sample(range(len(rows)), sample))
        rows = [rows[i] for i in keep]
    return DatasetDict({"test": Dataset.from_list(rows)})
