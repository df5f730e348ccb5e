"""Loader for the classic few-shot ICL sets (``!function utils.load`` in the ``icl_*`` YAMLs).

Why the prompts live here and not in each YAML: every set is scored in two modes (MC: log-likelihood of each
verbalised option; FMC: the options listed in the prompt, log-likelihood of each answer letter), and both
modes must show the same text. One ``Spec`` per set renders both prompts into the docs (``mc_prompt``,
``fmc_prompt``, ``options``, ``letters``, ``label``), so the 18 task YAMLs are two shared templates plus a set
name. Rows come from ``data/icl/<set>.{train,test}.jsonl`` (see data/icl/README.md); a label a set does not
know is a DataError naming the file and row, raised when lm-eval builds the task.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from mergesweep.evals.data import DataError, read_jsonl
from mergesweep.paths import data_dir

if TYPE_CHECKING:
    from datasets import DatasetDict

LETTERS = "ABCDEFGHIJ"


class Spec(NamedTuple):
    """How one set becomes prompts: ``mc``/``fmc`` are ``str.format`` templates over a row.

    (A NamedTuple, not a dataclass: lm-eval imports this file without registering it in ``sys.modules``.)
    """

    fields: tuple[str, ...]
    mc: str  # full MC prompt; the option follows after a space
    fmc: str  # FMC stem; lettered options and "Answer:" follow
    labels: tuple = ()  # raw label values, in option order
    options: tuple[str, ...] = ()  # verbalisers, same order as labels
    prepare: Callable[[dict], dict] | None = None  # per-row fields (sets whose options differ per row)


def _copa_row(r: dict) -> dict:
    """COPA as lm-eval's built-in task words it: "<premise> because|therefore <choice, lower-cased>"."""
    lower = lambda c: c if c.startswith("I ") else c[0].lower() + c[1:]  # noqa: E731
    return {
        "stem": r["premise"].rstrip(". "),
        "connective": {"cause": "because", "effect": "therefore"}[r["question"]],
        "options": [lower(r["choice1"]), lower(r["choice2"])],
        "shown": [r["choice1"], r["choice2"]],
    }


_SENTIMENT: dict[str, Any] = dict(
    fields=("text", "label"),
    mc="Review: {text}\nSentiment:",
    fmc="Review: {text}\nWhat is the sentiment of the review?",
    labels=("negative", "positive"),
    options=("negative", "positive"),
)

SPECS: dict[str, Spec] = {
    "sst2": Spec(**_SENTIMENT),
    "mr": Spec(**_SENTIMENT),
    "cr": Spec(**_SENTIMENT),
    "subj": Spec(
        fields=("text", "label"),
        mc="Input: {text}\nType:",
        fmc="Input: {text}\nIs the input subjective or objective?",
        labels=("subjective", "objective"),
        options=("subjective", "objective"),
    ),
    "agnews": Spec(
        fields=("title", "text", "label"),
        mc="Title: {title}\nArticle: {text}\nTopic:",
        fmc="Title: {title}\nArticle: {text}\nWhat is the topic of the article?",
        labels=("World", "Sports", "Business", "Sci/Tech"),
        options=("World", "Sports", "Business", "Technology"),
    ),
    "trec": Spec(
        fields=("text", "label"),
        mc="Question: {text}\nAnswer type:",
        fmc="Question: {text}\nWhat kind of answer does the question ask for?",
        labels=("NUM", "LOC", "HUM", "DESC", "ENTY", "ABBR"),
        options=("Number", "Location", "Person", "Description", "Entity", "Abbreviation"),
    ),
    "cb": Spec(
        fields=("premise", "hypothesis", "label"),
        mc="{premise}\nQuestion: {hypothesis} True, False, or Neither?\nAnswer:",
        fmc="{premise}\nQuestion: {hypothesis} True, False, or Neither?",
        labels=("entailment", "contradiction", "neutral"),
        options=("True", "False", "Neither"),
    ),
    "rte": Spec(
        fields=("premise", "hypothesis", "label"),
        mc="{premise}\nQuestion: {hypothesis} True or False?\nAnswer:",
        fmc="{premise}\nQuestion: {hypothesis} True or False?",
        labels=("entailment", "not_entailment"),
        options=("True", "False"),
    ),
    "copa": Spec(
        fields=("premise", "choice1", "choice2", "question", "label"),
        mc="{stem} {connective}",
        fmc="Premise: {premise}\nWhat was the {question}?",
        labels=(0, 1),
        prepare=_copa_row,
    ),
}


def render(spec: Spec, row: dict) -> dict:
    """One doc: both prompts, the MC options, the FMC letters and the gold index."""
    extra = spec.prepare(row) if spec.prepare else {}
    full = {**row, **extra}
    options = list(extra.get("options", spec.options))
    shown = list(extra.get("shown", options))
    listed = "\n".join(f"{LETTERS[i]}. {o}" for i, o in enumerate(shown))
    return {
        "mc_prompt": spec.mc.format(**full),
        "fmc_prompt": f"{spec.fmc.format(**full)}\n{listed}\nAnswer:",
        "options": options,
        "letters": list(LETTERS[: len(shown)]),
        "label": spec.labels.index(row["label"]),
        "src": row.get("src", -1),
    }


def docs(name: str, split: str) -> list[dict]:
    """Rendered docs of ``data/icl/<name>.<split>.jsonl``; unknown labels name the file and row."""
    if name not in SPECS:
        raise DataError(f"unknown ICL set {name!r}; known: {', '.join(sorted(SPECS))}")
    spec, path = SPECS[name], data_dir() / "icl" / f"{name}.{split}.jsonl"
    rows = read_jsonl(path, spec.fields)
    for i, r in enumerate(rows, 1):
        if r["label"] not in spec.labels:
            raise DataError(f"{path}: row {i}: label {r['label']!r} is not one of {list(spec.labels)}")
    return [render(spec, r) for r in rows]


def demonstration_pool(train: list[dict], test: list[dict]) -> list[dict]:
    """Train docs minus exact copies of any test doc (same prompt text in both modes).

    Why: lm-eval's sampler keeps an item out of its own demonstrations only when it samples from the test
    split itself; our pool is the train split, where two TREC test questions also appear word for word, and a
    prompt that shows its own answer measures lookup, not in-context learning.
    """
    seen = {(d["mc_prompt"], d["fmc_prompt"]) for d in test}
    return [d for d in train if (d["mc_prompt"], d["fmc_prompt"]) not in seen]


def load(name: str, **_: Any) -> DatasetDict:
    """lm-eval ``custom_dataset``: train = few-shot demonstration pool (no test item in it), test = eval docs."""
    from datasets import Dataset, DatasetDict

    test = docs(name, "test")
    return DatasetDict(
        {"train": Dataset.from_list(demonstration_pool(docs(name, "train"), test)), "test": Dataset.from_list(test)}
    )
