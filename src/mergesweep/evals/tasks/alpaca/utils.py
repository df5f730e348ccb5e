"""Docs for the judged tasks (``!function utils.*`` in the alpaca YAMLs): instruction + reference answers.

Each doc carries every reference set it has as ``ref_<name>`` (AlpacaEval: ``ref_gpt4_1106_preview`` and
``ref_text_davinci_003``; toy: ``ref_toy``), so one generation pass serves either baseline; the suite part's
``judge.reference`` picks one. The two AlpacaEval output files must list the same instructions in the same
order; a mismatch is a DataError naming the row.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from mergesweep.evals.data import DataError, read_jsonl
from mergesweep.paths import data_dir

if TYPE_CHECKING:
    from datasets import DatasetDict

REFERENCES = {
    "gpt4_1106_preview": "gpt4_turbo_1106_preview_model_outputs.json",
    "text_davinci_003": "text_davinci_003_model_outputs.json",
}


def _outputs(name: str) -> list[dict]:
    path = data_dir() / "alpaca_eval" / name
    try:
        rows = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"evaluation data file not found: {path}") from None
    except json.JSONDecodeError as e:
        raise DataError(f"{path}:{e.lineno}: malformed JSON ({e.msg})") from None
    for i, r in enumerate(rows, 1):
        if not isinstance(r, dict) or not {"instruction", "output"} <= set(r):
            raise DataError(f"{path}: row {i}: needs `instruction` and `output`")
    return rows


def alpaca_docs() -> list[dict]:
    """The 805 AlpacaEval docs with both reference answers."""
    sets = {ref: _outputs(fname) for ref, fname in REFERENCES.items()}
    first = sets["gpt4_1106_preview"]
    for ref, rows in sets.items():
        if len(rows) != len(first):
            raise DataError(f"{REFERENCES[ref]}: {len(rows)} rows, expected {len(first)}")
        bad = next((i for i, (a, b) in enumerate(zip(first, rows)) if a["instruction"] != b["instruction"]), None)
        if bad is not None:
            raise DataError(
                f"{REFERENCES[ref]}: row {bad + 1}: instruction differs from {REFERENCES['gpt4_1106_preview']}"
            )
    return [
        {
            "index": i,
            "dataset": r.get("dataset", ""),
            "instruction": r["instruction"],
            **{f"ref_{ref}": sets[ref][i]["output"] for ref in sets},
        }
        for i, r in enumerate(first)
    ]


def toy_docs() -> list[dict]:
    rows = read_jsonl(data_dir() / "alpaca_eval" / "toy_judged.jsonl", ("instruction", "reference"))
    return [
        {"index": i, "dataset": r.get("dataset", "toy"), "instruction": r["instruction"], "ref_toy": r["reference"]}
        for i, r in enumerate(rows)
    ]


def load(name: str, **_: Any) -> DatasetDict:
    """lm-eval ``custom_dataset``: one ``test`` split."""
    from datasets import Dataset, DatasetDict

    docs = {"alpaca_eval": alpaca_docs, "toy": toy_docs}
    if name not in docs:
        raise DataError(f"unknown judged set {name!r}; known: {sorted(docs)}")
    return DatasetDict({"test": Dataset.from_list(docs[name]())})


def process_results(doc: dict, results: list[str]) -> dict:
    """Only the answer length here; the judge scores answers after generation (mergesweep.evals.judges)."""
    return {"answer_chars": len(results[0])}
