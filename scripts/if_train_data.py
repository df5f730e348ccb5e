"""Synthetic instruction-following chats for the real base's instruct sibling (``make_instruct_lora.py``).

Why synthetic: no instruction data may come from a hub here, and none may overlap the evaluation (IFEval's 541
prompts, AlpacaEval's 805 instructions, any ICL test item). Each example is a request about a WikiText-2 (valid
split, CC BY-SA 3.0, shipped in ``data/real/wikitext2_valid.txt``) article, written in this file's own words,
with zero to two verifiable constraints of the *kinds* IFEval checks (lowercase, no commas, a title, bullet
points, a postscript, an end phrase, ...). The answer is the article's own text reshaped to satisfy them, and
every example is kept only if lm-eval's own IFEval checkers pass it. So the sibling learns chat turns, when to
stop, and formats; it learns no facts, and its IFEval gain partly measures exactly that format training (this is
said in the README: it is a sibling made here, not Google's ``-it``).

    python scripts/if_train_data.py --n 1500 --out /tmp/if_train.jsonl     # inspect what training sees
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
os.environ.setdefault("NLTK_DATA", str(ROOT / "data" / "nltk"))  # IFEval checkers need punkt_tab, offline
WIKITEXT = ROOT / "data" / "real" / "wikitext2_valid.txt"

ASKS = [
    "Write a short passage about {t}.",
    "Tell me about {t}.",
    "Can you describe {t} in a few sentences?",
    "Give me a brief overview of {t}.",
    "I am reading up on {t}. What should I know?",
    "Explain what {t} is known for.",
    "Summarize some facts about {t}.",
    "Write a paragraph on {t} for a general reader.",
    "What can you tell me about {t}?",
    "Please write a few lines about {t}.",
]

END_PHRASES = [
    "That is all for now.",
    "I hope this helps you.",
    "Thanks for reading.",
    "Let me know if you want more detail.",
    "Hope that answers your question.",
]
PLACEHOLDERS = ["[name]", "[date]", "[place]", "[source]", "[author]", "[year]"]

# --- WikiText -----------------------------------------------------------------------------------------
_FIXES = [
    (" @-@ ", "-"),
    (" @,@ ", ","),
    (" @.@ ", "."),
    (" , ", ", "),
    (" . ", ". "),
    (" ; ", "; "),
    (" : ", ": "),
    (" 's", "'s"),
    (" n't", "n't"),
    ("( ", "("),
    (" )", ")"),
    (" %", "%"),
    ("$ ", "$"),
]


def _clean(line: str) -> str:
    s = " " + line.strip() + " "
    for a, b in _FIXES:
        s = s.replace(a, b)
    s = re.sub(r'" (.*?) "', r'"\1"', s)
    return s.strip().rstrip(" .") + "."


def articles(path: Path = WIKITEXT) -> list[tuple[str, list[str]]]:
    """(title, paragraphs) per article; paragraphs with ``<unk>`` or under 40 words are dropped."""
    out: list[tuple[str, list[str]]] = []
    title, paras = None, []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if re.fullmatch(r"= [^=].*[^=] =", line):
            if title and paras and "<unk>" not in title:
                out.append((title, paras))
            title, paras = _clean(line.strip("= ")).rstrip("."), []
        elif line and not line.startswith("=") and "<unk>" not in line and len(line.split()) >= 40:
            paras.append(_clean(line))
    if title and paras and "<unk>" not in title:
        out.append((title, paras))
    return out


def sentences(text: str) -> list[str]:
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+(?=[A-Z\"])", text) if s.strip()]


# --- constraints: (instruction text, IFEval id and kwargs, how to reshape the answer) --------------------
Reshape = Callable[[str], str]
Spec = tuple[str, str, dict, Reshape]


def _bullets(n: int) -> Spec:
    def f(text: str) -> str:
        return "\n".join(f"* {s}" for s in sentences(text)[:n])

    return (
        f"Use exactly {n} bullet points in markdown, like:\n* first point\n* second point",
        "detectable_format:number_bullet_lists",
        {"num_bullets": n},
        f,
    )


def _groups(text: str, n: int) -> list[str]:
    """The answer's sentences in ``n`` consecutive groups (the last takes the remainder)."""
    ss = sentences(text)
    k = max(1, len(ss) // n)
    return [" ".join(ss[i * k : (i + 1) * k if i < n - 1 else len(ss)]) for i in range(n)]


def _paragraphs(n: int) -> Spec:
    def f(text: str) -> str:
        return "\n\n***\n\n".join(_groups(text, n))

    return (
        f"Split your answer into {n} paragraphs, separated from each other by the markdown divider ***.",
        "length_constraints:number_paragraphs",
        {"num_paragraphs": n},
        f,
    )


def _sections(n: int) -> Spec:
    def f(text: str) -> str:
        return "\n\n".join(f"SECTION {i + 1}\n{p}" for i, p in enumerate(_groups(text, n)))

    return (
        f"Organize the answer in {n} sections, and begin each one with SECTION X (X = its number).",
        "detectable_format:multiple_sections",
        {"section_spliter": "SECTION", "num_sections": n},
        f,
    )


def _highlights(n: int) -> Spec:
    def f(text: str) -> str:
        ss = sentences(text)
        return " ".join(f"*{s}*" if i < n else s for i, s in enumerate(ss))

    return (
        f"Mark at least {n} parts of your answer as highlighted with markdown, for example *a highlighted part*.",
        "detectable_format:number_highlighted_sections",
        {"num_highlights": n},
        f,
    )


def _placeholders(n: int, rng: random.Random) -> Spec:
    names = rng.sample(PLACEHOLDERS, n)

    def f(text: str) -> str:
        return text + " More details: " + ", ".join(names) + "."

    return (
        f"Include at least {n} placeholders written in square brackets, such as [name].",
        "detectable_content:number_placeholders",
        {"num_placeholders": n},
        f,
    )


def constraint(kind: str, rng: random.Random, text: str, topic: str) -> Spec | None:
    """One constraint of ``kind`` fitted to this answer text, or None if it cannot be met with it."""
    words = [w.strip(".,;:()\"'").lower() for w in text.split()]
    if kind == "lowercase":
        return (
            "Write your whole answer in lowercase letters; capital letters are not allowed.",
            "change_case:english_lowercase",
            {},
            str.lower,
        )
    if kind == "capital":
        return ("Reply only in capital letters.", "change_case:english_capital", {}, str.upper)
    if kind == "no_comma":
        return ("Do not use a single comma in your reply.", "punctuation:no_comma", {}, lambda s: s.replace(",", ""))
    if kind == "title":
        return (
            "Start with a title in double angular brackets, such as <<a title>>.",
            "detectable_format:title",
            {},
            lambda s: f"<<{topic}>>\n\n{s}",
        )
    if kind == "end":
        p = rng.choice(END_PHRASES)
        return (
            f'End your answer with the exact phrase "{p}" and write nothing after it.',
            "startend:end_checker",
            {"end_phrase": p},
            lambda s: f"{s}\n\n{p}",
        )
    if kind == "quote":
        return ("Put your entire answer inside double quotation marks.", "startend:quotation", {}, lambda s: f'"{s}"')
    if kind == "json":
        return (
            "Return the whole answer as JSON; markdown code fences are fine.",
            "detectable_format:json_format",
            {},
            lambda s: "```json\n" + json.dumps({"topic": topic, "answer": s}, indent=2) + "\n```",
        )
    if kind == "postscript":
        m = rng.choice(["P.S.", "P.P.S"])
        return (
            f"Finish with a postscript that starts with {m}",
            "detectable_content:postscript",
            {"postscript_marker": m},
            lambda s: f"{s}\n\n{m} There is more to read about {topic}.",
        )
    if kind == "bullets":
        n = rng.randint(2, 4)
        return _bullets(n) if len(sentences(text)) >= n else None
    if kind == "paragraphs":
        n = rng.randint(2, 3)
        return _paragraphs(n) if len(sentences(text)) >= n else None
    if kind == "sections":
        n = rng.randint(2, 3)
        return _sections(n) if len(sentences(text)) >= n else None
    if kind == "highlights":
        n = rng.randint(1, 3)
        return _highlights(n) if len(sentences(text)) >= n else None
    if kind == "placeholders":
        return _placeholders(rng.randint(1, 3), rng)
    if kind == "keywords":
        pool = sorted({w for w in words if len(w) > 5 and w.isalpha()})
        if len(pool) < 2:
            return None
        kw = rng.sample(pool, 2)
        return (
            f"Make sure the words {kw[0]} and {kw[1]} appear in your answer.",
            "keywords:existence",
            {"keywords": kw},
            str,
        )
    if kind == "forbidden":
        pool = [w for w in ("very", "really", "basically", "amazing", "thing", "stuff") if w not in words]
        fw = rng.sample(pool, min(2, len(pool)))
        return (f"Avoid these words: {', '.join(fw)}.", "keywords:forbidden_words", {"forbidden_words": fw}, str)
    if kind == "few_words":
        n = len(text.split())
        limit = max(20, (n // 10 + 1) * 10)
        return (
            f"Keep it under {limit} words.",
            "length_constraints:number_words",
            {"num_words": limit, "relation": "less than"},
            str,
        )
    if kind == "few_sentences":
        n = len(sentences(text))
        return (
            f"Use fewer than {n + 2} sentences.",
            "length_constraints:number_sentences",
            {"num_sentences": n + 2, "relation": "less than"},
            str,
        )
    return None


KINDS = [
    "lowercase", "capital", "no_comma", "title", "end", "quote", "json", "postscript", "bullets", "paragraphs",
    "sections", "highlights", "placeholders", "keywords", "forbidden", "few_words", "few_sentences",
]  # fmt: skip
# Applied in this order so that wrappers (case, commas, quotes, JSON) see the finished text.
_ORDER = [
    "bullets", "paragraphs", "sections", "highlights", "placeholders", "keywords", "forbidden", "few_words",
    "few_sentences", "title", "postscript", "end", "no_comma", "lowercase", "capital", "quote", "json",
]  # fmt: skip
_CLASH = {frozenset(p) for p in [("lowercase", "capital"), ("quote", "json"), ("json", "end"), ("quote", "end"),
          ("json", "title"), ("quote", "title"), ("json", "postscript"), ("quote", "postscript"),
          ("capital", "sections"), ("lowercase", "sections"), ("capital", "postscript"), ("lowercase", "postscript"),
          ("json", "bullets"), ("bullets", "paragraphs"), ("bullets", "sections"), ("paragraphs", "sections"),
          ("json", "paragraphs"), ("json", "sections"), ("lowercase", "title"), ("capital", "title"),
          ("lowercase", "end"), ("capital", "end"), ("lowercase", "placeholders"),
          ("capital", "placeholders")]}  # fmt: skip


def _answer_text(paras: list[str], rng: random.Random, max_words: int) -> str:
    p = rng.choice(paras)
    ss, out = sentences(p), []
    for s in ss:
        if out and len(" ".join([*out, s]).split()) > max_words:
            break
        out.append(s)
    return " ".join(out)


def passes(instruction_ids: list[str], kwargs: list[dict], prompt: str, response: str) -> bool:
    """Whether lm-eval's own IFEval checkers accept ``response`` for every instruction (strict)."""
    from lm_eval.tasks.ifeval.instructions_registry import INSTRUCTION_DICT

    from mergesweep.evals.seeded import item_seed, seed_everything

    seed_everything(item_seed({"key": 0, "prompt": prompt}, 0))  # langdetect (english_capital) is random otherwise
    for iid, kw in zip(instruction_ids, kwargs):
        checker = INSTRUCTION_DICT[iid](iid)
        checker.build_description(**kw)
        if "prompt" in (checker.get_instruction_args() or {}):
            checker.build_description(prompt=prompt)
        if not (response.strip() and checker.check_following(response)):
            return False
    return True


def example(rng: random.Random, arts: list[tuple[str, list[str]]], max_words: int = 70) -> dict | None:
    """One chat: a request about an article with 0-2 constraints, and the answer that meets them."""
    topic, paras = rng.choice(arts)
    text = _answer_text(paras, rng, max_words)
    n = rng.choices([0, 1, 2], weights=[2, 5, 4])[0]
    kinds: list[str] = []
    while len(kinds) < n:
        k = rng.choice(KINDS)
        if k not in kinds and not any(frozenset((k, o)) in _CLASH for o in kinds):
            kinds.append(k)
    specs = []
    for k in sorted(kinds, key=_ORDER.index):
        spec = constraint(k, rng, text, topic)
        if spec is None:
            return None
        specs.append(spec)
    prompt = rng.choice(ASKS).format(t=topic)
    if specs:
        prompt += " " + " ".join(s[0] for s in specs)
    response = text
    for s in specs:
        response = s[3](response)
    ids, kws = [s[1] for s in specs], [s[2] for s in specs]
    if not passes(ids, kws, prompt, response):
        return None
    return {"prompt": prompt, "response": response, "instruction_id_list": ids, "kwargs": kws, "topic": topic}


def build(n: int, seed: int, path: Path = WIKITEXT) -> list[dict]:
    """``n`` distinct examples, deterministic for ``seed``."""
    rng, arts = random.Random(seed), articles(path)
    out, seen = [], set()
    while len(out) < n:
        ex = example(rng, arts)
        if ex and ex["prompt"] not in seen:
            seen.add(ex["prompt"])
            out.append(ex)
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    rows = build(a.n, a.seed)
    a.out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"{len(rows)} examples -> {a.out}")
