"""Local evaluation data: line-checked JSONL readers that lm-eval tasks load through ``custom_dataset``.

Why not ``dataset_path: json`` in the YAMLs: its ``data_files`` resolve against the working directory, so a
task would work from one folder and not another. These loaders find files under ``paths.data_dir()`` and
name the file and line of anything malformed.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import DataError  # defined in errors.py; re-exported here
from ..paths import data_dir

if TYPE_CHECKING:
    from datasets import DatasetDict


def read_jsonl(path: Path, required: Iterable[str] = ()) -> list[dict]:
    """Rows of a JSONL file; a missing file, bad JSON or a missing field names the file and line."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"evaluation data file not found: {path}")
    rows = []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{i}: malformed JSON ({e.msg})") from None
            missing = [k for k in required if k not in row]
            if missing:
                raise DataError(f"{path}:{i}: missing field(s) {missing}")
            rows.append(row)
    if not rows:
        raise DataError(f"{path}: no rows")
    return rows


def jsonl_splits(folder: str, stem: str, splits: Iterable[str], required: Iterable[str] = ()) -> DatasetDict:
    """A ``datasets.DatasetDict`` from ``<data>/<folder>/<stem>.<split>.jsonl`` files."""
    from datasets import Dataset, DatasetDict

    req = tuple(required)
    return DatasetDict(
        {s: Dataset.from_list(read_jsonl(data_dir() / folder / f"{stem}.{s}.jsonl", req)) for s in splits}
    )


def jsonl_file(folder: str, name: str, split: str = "test", required: Iterable[str] = ()) -> DatasetDict:
    """A one-split ``DatasetDict`` from ``<data>/<folder>/<name>``."""
    from datasets import Dataset, DatasetDict

    return DatasetDict({split: Dataset.from_list(read_jsonl(data_dir() / folder / name, tuple(required)))})
