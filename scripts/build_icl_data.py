#!/usr/bin/env python
"""Rebuild ``data/icl/*.jsonl`` (the classic few-shot ICL sets) from their upstream copies.

Why a script: the shipped files are derived (subsets, held-out splits, one schema), and a reader must be able
to redo every step. Upstream folders are the ones described in data/icl/README.md (icl_cbu, icl_nltk, copa).

    python scripts/build_icl_data.py --src /path/to/shared/data    # rewrites data/icl/*.jsonl

Rules (seed 0, Python's ``random.Random``, one generator per dataset seeded with ``f"{SEED}:{name}"``):
* every test file is stored in a seeded shuffled order, so lm-eval's ``limit: N`` (= the first N docs) is a
  fixed random subset of size N; ``src`` keeps each row's position in the upstream file;
* a train split larger than ``DEMO_POOL`` rows is cut to a seeded subset of ``DEMO_POOL`` rows (the few-shot
  demonstration pool; lm-eval's sampler draws from it);
* sets without a labelled train split (AG News, SUBJ, MR, CR) are split once: the first ``HELD_OUT`` shuffled
  rows are the test split, the next ``DEMO_POOL`` rows the demonstration pool; the rest is not shipped.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
from pathlib import Path

SEED = 0
DEMO_POOL = 1000
HELD_OUT = 2000
OUT = Path(__file__).resolve().parents[1] / "data" / "icl"


def _text(path: Path) -> list[str]:
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        return raw.decode("latin-1").splitlines()


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def sst2(src: Path, split: str) -> list[dict]:
    lines = _text(src / "icl_cbu/sst2" / f"stsa.binary.{split}")
    return [{"text": ln[2:].strip(), "label": ["negative", "positive"][int(ln[0])]} for ln in lines if ln.strip()]


def agnews(src: Path) -> list[dict]:
    names = {"1": "World", "2": "Sports", "3": "Business", "4": "Sci/Tech"}
    with open(src / "icl_cbu/agnews/test.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f))[1:]
    clean = lambda s: " ".join(s.replace("\\", " ").split())  # noqa: E731  (upstream uses "\" for line breaks)
    return [{"title": clean(t), "text": clean(d), "label": names[c]} for c, t, d in rows]


def trec(src: Path, split: str) -> list[dict]:
    out = []
    for ln in _text(src / "icl_cbu/trec" / f"{split}.txt"):
        if ln.strip():
            tag, question = ln.split(" ", 1)
            out.append({"text": question.strip(), "label": tag.split(":")[0], "fine": tag})
    return out


def superglue(src: Path, name: str, split: str) -> list[dict]:
    return [
        {"premise": r["premise"], "hypothesis": r["hypothesis"], "label": r["label"]}
        for r in _jsonl(src / "icl_cbu" / name / f"{split}.jsonl")
    ]


def nltk_set(src: Path, name: str) -> list[dict]:
    return [{"text": r["text"], "label": r["label"]} for r in _jsonl(src / "icl_nltk" / f"{name}.jsonl")]


def copa(src: Path) -> list[dict]:
    return [
        {k: r[k] for k in ("id", "premise", "choice1", "choice2", "question", "label")}
        for r in _jsonl(src / "copa/copa_dev_original.jsonl")
    ]


def _indexed(rows: list[dict]) -> list[dict]:
    return [{**r, "src": i} for i, r in enumerate(rows)]


def _shuffled(rows: list[dict], rng: random.Random) -> list[dict]:
    rows = _indexed(rows)
    rng.shuffle(rows)
    return rows


def _demo_pool(rows: list[dict], rng: random.Random) -> list[dict]:
    rows = _indexed(rows)
    return rows if len(rows) <= DEMO_POOL else sorted(rng.sample(rows, DEMO_POOL), key=lambda r: r["src"])


def build(src: Path) -> dict[str, dict[str, list[dict]]]:
    """{name: {"train": rows, "test": rows}} following the rules in the module docstring."""
    sets: dict[str, dict[str, list[dict]]] = {}
    rng = lambda name: random.Random(f"{SEED}:{name}")  # noqa: E731

    def with_train(name: str, train: list[dict], test: list[dict]) -> None:
        r = rng(name)
        sets[name] = {"train": _demo_pool(train, r), "test": _shuffled(test, r)}

    def held_out(name: str, rows: list[dict]) -> None:
        rows = _shuffled(rows, rng(name))
        sets[name] = {
            "test": rows[:HELD_OUT],
            "train": sorted(rows[HELD_OUT : HELD_OUT + DEMO_POOL], key=lambda r: r["src"]),
        }

    with_train("sst2", sst2(src, "train"), sst2(src, "test"))
    held_out("agnews", agnews(src))
    with_train("trec", trec(src, "train"), trec(src, "test"))
    with_train("cb", superglue(src, "cb", "train"), superglue(src, "cb", "val"))
    with_train("rte", superglue(src, "rte", "train"), superglue(src, "rte", "val"))
    for name in ("subj", "mr", "cr"):
        held_out(name, nltk_set(src, name))
    rows = copa(src)  # SuperGLUE's split of the original dev set: ids 1-400 train, 401-500 validation
    with_train("copa", [r for r in rows if r["id"] <= 400], [r for r in rows if r["id"] > 400])
    return sets


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", type=Path, required=True, help="folder holding icl_cbu/, icl_nltk/, copa/")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    for name, splits in build(args.src).items():
        for split, rows in splits.items():
            path = args.out / f"{name}.{split}.jsonl"
            with open(path, "w", encoding="utf-8") as f:
                f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
            print(f"{path.name}: {len(rows)} rows")


if __name__ == "__main__":
    main()
