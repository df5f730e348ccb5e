"""IFEval-format prompt files, and the suite options that point tasks at other prompts or task folders.

Why here: two tasks (``ifeval_local``, ``toy_ifeval``) read IFEval-format rows, and lm-eval's checkers look
each instruction id up in a dict, so an unknown id would surface after generation as a bare ``KeyError``.
Every IFEval-format file is read through ``ifeval_rows``, which names the file, row and id instead, while the
task is built (the suite's ``validate`` builds tasks before any engine starts).

Suite options (documented in the README, "Suites"):

* ``parts.<part>.prompt_file``: an IFEval-format JSONL (``key``, ``prompt``, ``instruction_id_list``,
  ``kwargs``) that every task of the part reads instead of its shipped prompts (tasks whose loader takes a
  ``prompt_file`` argument; any other task is a SuiteError).
* ``task_dirs``: extra folders of lm-eval task YAMLs put on the include path beside the shipped tasks.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from ..errors import DataError, SuiteError
from .data import read_jsonl

FIELDS = ("key", "prompt", "instruction_id_list", "kwargs")


def check_rows(rows: list[dict], path: Any) -> list[dict]:
    """Every instruction id known to lm-eval's registry and one kwargs dict per id; else DataError."""
    from lm_eval.tasks.ifeval.instructions_registry import INSTRUCTION_DICT

    for i, r in enumerate(rows, 1):
        ids, kwargs = r["instruction_id_list"], r["kwargs"]
        if not isinstance(ids, list) or not isinstance(kwargs, list) or len(ids) != len(kwargs):
            raise DataError(
                f"{path}: row {i} (key {r['key']}): instruction_id_list and kwargs must be lists of the same length"
            )
        unknown = [x for x in ids if x not in INSTRUCTION_DICT]
        if unknown:
            raise DataError(
                f"{path}: row {i} (key {r['key']}): unknown IFEval instruction id(s) {unknown}; "
                f"lm-eval's checkers know {len(INSTRUCTION_DICT)} ids, e.g. {sorted(INSTRUCTION_DICT)[:3]}"
            )
    return rows


def ifeval_rows(path: str | Path) -> list[dict]:
    """Checked rows of an IFEval-format JSONL file."""
    return check_rows(read_jsonl(Path(path), FIELDS), path)


def ifeval_dataset(path: str | Path):
    """lm-eval ``custom_dataset`` result: one ``test`` split of checked rows."""
    from datasets import Dataset, DatasetDict

    return DatasetDict({"test": Dataset.from_list(ifeval_rows(path))})


def include_paths(suite: dict) -> tuple[str, ...]:
    """The suite's extra task folders (``task_dirs``), absolute; a missing one is a SuiteError."""
    out = []
    for d in suite.get("task_dirs") or []:
        p = Path(str(d)).expanduser().resolve()
        if not p.is_dir():
            raise SuiteError(f"suite {suite.get('name')!r}: task_dirs entry {d!r} is not a folder")
        out.append(str(p))
    return tuple(out)


def task_specs(tm: Any, part: dict) -> list[Any]:
    """What to hand lm-eval for a part's tasks: names, or (with ``prompt_file``) each task's own config with
    ``dataset_kwargs.prompt_file`` set (lm-eval takes a dict as a whole inline task config)."""
    tasks = list(part.get("tasks", []))
    if not part.get("prompt_file"):
        return tasks
    from lm_eval.tasks._yaml_loader import load_yaml

    path = Path(str(part["prompt_file"])).expanduser().resolve()
    if not path.is_file():
        raise DataError(f"prompt_file not found: {part['prompt_file']}")
    specs = []
    for t in tasks:
        entry = tm.task_index.get(t)
        cfg = load_yaml(entry.yaml_path, resolve_func=True) if entry is not None and entry.yaml_path else {}
        loader = cfg.get("custom_dataset")
        if not callable(loader) or "prompt_file" not in inspect.signature(loader).parameters:
            raise SuiteError(
                f"task {t!r} does not read IFEval-format prompts, so prompt_file cannot apply to it "
                "(put such tasks in a part of their own)"
            )
        specs.append({**cfg, "dataset_kwargs": {**(cfg.get("dataset_kwargs") or {}), "prompt_file": str(path)}})
    return specs
