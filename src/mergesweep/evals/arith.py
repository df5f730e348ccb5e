"""Synthetic arithmetic word problems: the exact-answer task of the adapter-transfer miniature (issue 22).

Why synthetic: the task LoRA needs a task with one right answer that no evaluation set of this project contains
and that the real base does not already solve; two-number word problems ("Mia has 47 stamps and buys 38 more.
How many stamps does Mia have now?") are that, need no download and carry no licence.

Train and test never share a fact: a problem is a (operation, a, b) fact dressed in a template, and each fact
belongs to one split by a hash of the fact alone (``split_of``), so a test question is never a rephrased train
question. The test split is fixed (its own seed, not the training seed): the lm-eval task ``arith_word`` scores
it, and ``scripts/make_task_lora.py`` trains on draws from the train facts.
"""

from __future__ import annotations

import hashlib
import random

TEST_SEED = 20250622  # the test split's draw; never a training seed
TEST_SIZE = 200
TEST_SHARE = 5  # one fact in five is a test fact

NAMES = ("Mia", "Tom", "Aisha", "Luca", "Priya", "Sam", "Elena", "Kofi", "Hana", "Omar", "Nora", "Ben")
ITEMS = ("apples", "stamps", "marbles", "books", "pencils", "stickers", "coins", "shells", "cards", "eggs")
TEMPLATES = {
    "add": (
        "{n} has {a} {i} and gets {b} more. How many {i} does {n} have now?",
        "A box holds {a} {i}. {n} puts {b} more {i} in it. How many {i} are in the box?",
        "{n} collected {a} {i} on Monday and {b} {i} on Tuesday. How many {i} did {n} collect in all?",
    ),
    "sub": (
        "{n} has {a} {i} and gives away {b}. How many {i} does {n} have left?",
        "A box holds {a} {i}. {n} takes {b} {i} out. How many {i} are still in the box?",
        "{n} had {a} {i} and lost {b} of them. How many {i} does {n} have now?",
    ),
}


def split_of(op: str, a: int, b: int) -> str:
    """``"test"`` or ``"train"`` for a fact, by a hash of the fact alone (the same on every machine and run)."""
    h = hashlib.sha256(f"{op}:{a}:{b}".encode()).digest()[0]
    return "test" if h % TEST_SHARE == 0 else "train"


def _fact(rng: random.Random) -> tuple[str, int, int]:
    op = rng.choice(("add", "sub"))
    a, b = rng.randint(10, 99), rng.randint(10, 99)
    return (op, max(a, b), min(a, b)) if op == "sub" else (op, a, b)


def problem(rng: random.Random, split: str) -> dict:
    """One problem of ``split``: ``question``, ``answer`` (the exact integer, as text) and its fact."""
    while True:
        op, a, b = _fact(rng)
        if split_of(op, a, b) == split:
            break
    text = rng.choice(TEMPLATES[op]).format(n=rng.choice(NAMES), i=rng.choice(ITEMS), a=a, b=b)
    return {"question": text, "answer": str(a + b if op == "add" else a - b), "fact": f"{op}:{a}:{b}"}


def problems(n: int, seed: int, split: str) -> list[dict]:
    """``n`` problems of ``split`` drawn with ``seed`` (repeats of a fact are allowed, with other wording)."""
    rng = random.Random(seed)
    return [problem(rng, split) for _ in range(n)]


def test_split() -> list[dict]:
    """The fixed evaluation split (``TEST_SIZE`` problems, ``TEST_SEED``)."""
    return problems(TEST_SIZE, TEST_SEED, "test")


def prompt(question: str) -> str:
    """The zero-shot prompt the task LoRA is trained on and the lm-eval task asks; the answer follows a space."""
    return f"Question: {question}\nAnswer:"
