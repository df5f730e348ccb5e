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
from typing import TYPE_CHECKING, Any

from ..errors import DataError, SuiteError
from .data import read_jsonl
from .spec import PartSpec, SuiteSpec, part_spec

if TYPE_CHECKING:
    from datasets import DatasetDict

FIELDS = ("key", "prompt", "instruction_id_list", "kwargs")
# The type of every argument of lm-eval's IFEval checkers (``build_description``), as the original data has them.
# A wrong one (``"num_words": "twenty"``) otherwise stops ``datasets`` with an 83-line pyarrow traceback, or a
# checker's comparison after generation.
KWARG_TYPES: dict[str, tuple[type, str]] = {
    **{
        k: (int, "an integer")
        for k in (
            "num_words",
            "num_sentences",
            "num_paragraphs",
            "nth_paragraph",
            "num_bullets",
            "num_highlights",
            "num_sections",
            "num_placeholders",
            "frequency",
            "let_frequency",
            "capital_frequency",
        )
    },
    **{
        k: (str, "a string")
        for k in (
            "relation",
            "first_word",
            "section_spliter",
            "keyword",
            "letter",
            "let_relation",
            "language",
            "postscript_marker",
            "end_phrase",
            "prompt_to_repeat",
            "capital_relation",
        )
    },
    **{k: (list, "a list of strings") for k in ("keywords", "forbidden_words")},
}


def kwarg_problem(instruction_id: str, key: str, value: Any, checker: Any) -> str | None:
    """Why ``key=value`` cannot go to ``checker``'s ``build_description``, or None (null means "unset")."""
    if value is None:
        return None
    params = [p for p in inspect.signature(checker.build_description).parameters if p != "self"]
    if key not in params:
        return f"{instruction_id} takes no argument {key!r} (it takes {params or 'none'})"
    typ, what = KWARG_TYPES.get(key, (object, ""))
    ok = isinstance(value, typ) and not isinstance(value, bool)
    if ok and typ is list:
        ok = all(isinstance(x, str) for x in value)
    return None if ok else f"{key!r} of {instruction_id} must be {what}, got {value!r}"


def check_kwargs(row: dict, i: int, path: Any, registry: dict[str, Any]) -> None:
    """Each kwargs entry a dict (or null) whose keys the checker takes, each of the type it compares with."""
    for inst, kw in zip(row["instruction_id_list"], row["kwargs"]):
        if kw is not None and not isinstance(kw, dict):
            raise DataError(f"{path}: row {i} (key {row['key']}): kwargs for {inst} must be an object, got {kw!r}")
        for key, value in (kw or {}).items():
            problem = kwarg_problem(inst, key, value, registry[inst])
            if problem:
                raise DataError(f"{path}: row {i} (key {row['key']}): kwargs {problem}")


def check_rows(rows: list[dict], path: Any) -> list[dict]:
    """Every instruction id known to lm-eval's registry, one kwargs dict per id, each argument of the type the
    checker takes; else a DataError naming the file, row and key."""
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
        check_kwargs(r, i, path, INSTRUCTION_DICT)
    return rows


def ifeval_rows(path: str | Path) -> list[dict]:
    """Checked rows of an IFEval-format JSONL file."""
    return check_rows(read_jsonl(Path(path), FIELDS), path)


def ifeval_dataset(path: str | Path) -> DatasetDict:
    """lm-eval ``custom_dataset`` result: one ``test`` split of checked rows."""
    from datasets import Dataset, DatasetDict

    return DatasetDict({"test": Dataset.from_list(ifeval_rows(path))})


# Where IFEval's scoring lives: a task whose ``process_results`` comes from one of these is scored by its checkers.
IFEVAL_SCORERS = ("mergesweep.evals.seeded", "lm_eval.tasks.ifeval.utils")


def scored_by_ifeval(tm: Any, task: str) -> bool:
    """Whether lm-eval's IFEval checkers score ``task`` (shipped, a suite's own or lm-eval's built-in ``ifeval``)."""
    from lm_eval.tasks._yaml_loader import load_yaml

    entry = tm.task_index.get(task)
    if entry is None or not entry.yaml_path:
        return False
    fn = load_yaml(entry.yaml_path, resolve_func=True).get("process_results")
    return getattr(fn, "__module__", "") in IFEVAL_SCORERS


def include_paths(suite: SuiteSpec) -> tuple[str, ...]:
    """The suite's extra task folders (``task_dirs``), absolute; a missing one is a SuiteError."""
    out = []
    for d in suite.task_dirs:
        p = Path(str(d)).expanduser().resolve()
        if not p.is_dir():
            raise SuiteError(f"suite {suite.name!r}: task_dirs entry {d!r} is not a folder")
        out.append(str(p))
    return tuple(out)


def task_specs(tm: Any, part: PartSpec | dict) -> list[Any]:
    """What to hand lm-eval for a part's tasks: names, or (with ``prompt_file``) each task's own config with
    ``dataset_kwargs.prompt_file`` set (lm-eval takes a dict as a whole inline task config)."""
    part = part_spec(part)
    tasks = list(part.tasks)
    if not part.prompt_file:
        return tasks
    from lm_eval.tasks._yaml_loader import load_yaml

    path = Path(str(part.prompt_file)).expanduser().resolve()
    if not path.is_file():
        raise DataError(f"prompt_file not found: {part.prompt_file}")
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
