"""IFEval on the shipped original prompts (``!function utils.*`` in ifeval_local.yaml).

Scoring is lm-eval's own (``lm_eval.tasks.ifeval.utils.process_results``); this file only loads
``data/ifeval/input_data.jsonl`` and checks it first. Why check: lm-eval's checkers look each instruction id up
in a dict, so a typo or an id from a newer IFEval variant surfaces mid-run as a bare ``KeyError``; here it is
a DataError naming the file, row, key and id while the task is being built.
"""
from lm_eval.tasks.ifeval.utils import agg_inst_level_acc, process_results  # noqa: F401  (IFEval's own scoring)

from mergesweep.evals.data import DataError, read_jsonl
from mergesweep.paths import data_dir

FIELDS = ("key", "prompt", "instruction_id_list", "kwargs")
PROMPTS = "input_data.jsonl"


def check_rows(rows: list[dict], path) -> list[dict]:
    """Every instruction id known to lm-eval's registry and one kwargs dict per id; else DataError."""
    from lm_eval.tasks.ifeval.instructions_registry import INSTRUCTION_DICT

    for i, r in enumerate(rows, 1):
        ids, kwargs = r["instruction_id_list"], r["kwargs"]
        if not isinstance(ids, list) or not isinstance(kwargs, list) or len(ids) != len(kwargs):
            raise DataError(f"{path}: row {i} (key {r['key']}): instruction_id_list and kwargs must be lists of "
                            f"the same length")
        unknown = [x for x in ids if x not in INSTRUCTION_DICT]
        if unknown:
            raise DataError(f"{path}: row {i} (key {r['key']}): unknown IFEval instruction id(s) {unknown}; "
                            f"lm-eval's checkers know {len(INSTRUCTION_DICT)} ids, e.g. {sorted(INSTRUCTION_DICT)[:3]}")
    return rows


def load_prompts(name: str = PROMPTS) -> list[dict]:
    """Checked rows of ``data/ifeval/<name>``."""
    path = data_dir() / "ifeval" / name
    return check_rows(read_jsonl(path, FIELDS), path)


def ifeval_original(name: str = PROMPTS, **_):
    """lm-eval ``custom_dataset``: one ``test`` split."""
    from datasets import Dataset, DatasetDict

    return DatasetDict({"test": Dataset.from_list(load_prompts(name))})
