"""Instruction-following chats for the real base's instruct sibling (``make_instruct_lora.py``).

Why made here: no instruction data may come from a hub, and none may overlap the evaluation (IFEval's 541
prompts, AlpacaEval's 805 instructions, any ICL test item). Each example is an everyday request written from this
project's templates, answered by a real instruct model (SmolLM2-135M-Instruct, Apache-2.0; ``if_requests.py``;
the answers are committed in ``data/real/if_teacher_answers.jsonl``), with zero to three verifiable constraints
of the *kinds* IFEval checks (lowercase, no commas, a title, bullet points, a postscript, repeating the request,
...), each said in one of several phrasings of this file's own. The answer is reshaped to satisfy them, and every
example is kept only if lm-eval's own IFEval checkers pass it. So the sibling learns to answer the request, in
chat turns, to stop, and to honour formats; its IFEval gain partly measures exactly that format training (the
README says so: it is a sibling made here, not Google's ``-it``).

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
sys.path.insert(0, str(ROOT / "scripts"))
os.environ.setdefault("NLTK_DATA", str(ROOT / "data" / "nltk"))  # IFEval checkers need punkt_tab, offline
import if_requests
from if_checks import leaks, passes
from if_inserts import STOPWORDS, insert, sentences, words
from if_phrasings import SAY

END_PHRASES = [
    "That is all for now.", "I hope this helps you.", "Thanks for reading.", "Let me know if you want more detail.",
    "Hope that answers your question.", "Have a great day.", "Any other questions?",
]  # fmt: skip
CONTEXT = [
    "I am putting together a short handout for {p}.", "This is something I want to share with {p}.",
    "I only have a few minutes, so please help me out.", "My friend and I were talking about this yesterday.",
    "I need something I can read out loud tonight.", "Keep in mind that I am new to all of this.",
    "It is for a small project I am working on.", "Here is what I need today.",
]  # fmt: skip


Reshape = Callable[[str], str]
Spec = tuple[str, str, dict, Reshape]  # (what the prompt says, IFEval instruction id, its kwargs, answer reshape)
Ctx = tuple[random.Random, str, str]  # (rng, the answer text, the request)


def _groups(text: str, n: int) -> list[str]:
    """The answer's sentences in ``n`` consecutive groups (the last takes the remainder)."""
    ss = sentences(text)
    k = max(1, len(ss) // n)
    return [" ".join(ss[i * k : (i + 1) * k if i < n - 1 else len(ss)]) for i in range(n)]


def _say(kind: str, rng: random.Random, **kw: object) -> str:
    return rng.choice(SAY[kind]).format(**kw)


def _title(request: str) -> str:
    """A short title from the request's subject ("... about the moon." -> "The Moon")."""
    m = re.search(r"(?:about|for|to|of|in|announcing) (.+?)[.?]?$", request)
    subject = (m.group(1) if m else request.rstrip(".?")).split()[-4:]
    return " ".join(subject).title()


def _case(kind: str, ctx: Ctx) -> Spec | None:
    rng = ctx[0]
    if kind == "lowercase":
        return (_say(kind, rng), "change_case:english_lowercase", {}, str.lower)
    return (_say(kind, rng), "change_case:english_capital", {}, str.upper)


def _wrap(kind: str, ctx: Ctx) -> Spec | None:
    """Constraints that add text around the answer."""
    rng, _, request = ctx
    if kind == "no_comma":
        return (_say(kind, rng), "punctuation:no_comma", {}, lambda s: s.replace(",", ""))
    if kind == "title":
        t = _title(sentences(request)[-1])
        return (_say(kind, rng), "detectable_format:title", {}, lambda s: f"<<{t}>>\n\n{s}")
    if kind == "end":
        p = rng.choice(END_PHRASES)
        return (_say(kind, rng, p=p), "startend:end_checker", {"end_phrase": p}, lambda s: f"{s}\n\n{p}")
    if kind == "quote":
        return (_say(kind, rng), "startend:quotation", {}, lambda s: f'"{s}"')
    if kind == "json":
        return (
            _say(kind, rng),
            "detectable_format:json_format",
            {},
            lambda s: "```json\n" + json.dumps({"response": s.replace('"', "'")}, indent=2) + "\n```",
        )
    if kind == "postscript":
        m = rng.choice(["P.S.", "P.P.S"])
        ps = rng.choice(["I hope you enjoyed this.", "Thank you for asking.", "Write back if you want more."])
        return (
            _say(kind, rng, m=m),
            "detectable_content:postscript",
            {"postscript_marker": m},
            lambda s: f"{s}\n\n{m} {ps}",
        )
    return None


def _layout(kind: str, ctx: Ctx) -> Spec | None:
    """Constraints that cut the answer into parts; None if it has too few sentences."""
    rng, text = ctx[0], ctx[1]
    n = rng.choice([2, 2, 3, 3, 4, 5]) if kind in ("bullets", "paragraphs") else rng.randint(2, 4)
    if kind != "highlights" and len(sentences(text)) < n:
        return None
    if kind == "bullets":
        return (
            _say(kind, rng, n=n),
            "detectable_format:number_bullet_lists",
            {"num_bullets": n},
            lambda s: "\n".join(f"* {x}" for x in _groups(s, n)),
        )
    if kind == "paragraphs":
        return (
            _say(kind, rng, n=n),
            "length_constraints:number_paragraphs",
            {"num_paragraphs": n},
            lambda s: "\n\n***\n\n".join(_groups(s, n)),
        )
    if kind == "sections":
        sp = rng.choice(["SECTION", "Section", "PART"])
        return (
            _say(kind, rng, n=n, s=sp),
            "detectable_format:multiple_sections",
            {"section_spliter": sp, "num_sections": n},
            lambda s: "\n\n".join(f"{sp} {i + 1}\n{p}" for i, p in enumerate(_groups(s, n))),
        )
    if kind == "two":
        return (_say(kind, rng), "combination:two_responses", {}, lambda s: "\n******\n".join(_groups(s, 2)))
    if kind == "first_word":
        i = rng.randint(1, n)
        w = words(_groups(text, n)[i - 1])[0]
        return (
            _say(kind, rng, n=n, i=i, w=w),
            "length_constraints:nth_paragraph_first_word",
            {"num_paragraphs": n, "nth_paragraph": i, "first_word": w},
            lambda s: "\n\n".join(_groups(s, n)),
        )
    h = rng.choice([1, 2, 2, 3, 3, 3, 4, 5, 6])  # highlights: IFEval asks for 1-15, mostly 2-3
    spots = [i for i, w in enumerate(text.split(" ")) if re.fullmatch(r"[A-Za-z]{5,}[.,;:!?]?", w) and
             w.rstrip(".,;:!?").lower() not in STOPWORDS]  # fmt: skip
    if len(spots) < h:
        return None
    marked = set(rng.sample(spots, h))
    return (
        _say(kind, rng, n=h),
        "detectable_format:number_highlighted_sections",
        {"num_highlights": h},
        lambda s: " ".join(_mark(w) if i in marked else w for i, w in enumerate(s.split(" "))),
    )


def _mark(word: str) -> str:
    """``word`` in markdown italics, its trailing punctuation left outside ("tea," -> "*tea*,")."""
    core = word.rstrip(".,;:!?")
    return f"*{core}*{word[len(core) :]}"


def _content(kind: str, ctx: Ctx) -> Spec | None:
    """Constraints on words, letters and length that the answer as reshaped so far already meets (unchanged)."""
    rng, text = ctx[0], ctx[1]
    if kind in ("few_words", "many_words"):
        n = len(text.split())
        limit = (n // 10 + 1) * 10 if kind == "few_words" else max(10, (n * 4 // 5) // 10 * 10)
        rel = "less than" if kind == "few_words" else "at least"
        return (_say(kind, rng, n=limit), "length_constraints:number_words", {"num_words": limit, "relation": rel}, str)
    if kind == "few_sentences":
        n = len(sentences(text)) + rng.randint(1, 3)
        spec = {"num_sentences": n, "relation": "less than"}
        return (_say(kind, rng, n=n), "length_constraints:number_sentences", spec, str)
    if kind == "letters":
        c = rng.choice("abcdeghilmnoprstuwy")
        have = text.lower().count(c)
        rel, n = ("at least", max(1, have // 2)) if rng.random() < 0.5 else ("less than", have + rng.randint(1, 5))
        r = "at least" if rel == "at least" else "fewer than"
        return (
            _say(kind, rng, c=c, r=r, n=n),
            "keywords:letter_frequency",
            {"letter": c, "let_frequency": n, "let_relation": rel},
            str,
        )
    caps = sum(1 for w in text.split() if w.isupper() and len(w) > 1)  # caps_few
    n = caps + rng.randint(2, 5)
    spec = {"capital_frequency": n, "capital_relation": "less than"}
    return (_say(kind, rng, n=n), "change_case:capital_word_frequency", spec, str)


_FAMILY: dict[str, Callable[[str, Ctx], Spec | None]] = {
    **dict.fromkeys(["lowercase", "capital"], _case),
    **dict.fromkeys(["no_comma", "title", "end", "quote", "json", "postscript"], _wrap),
    **dict.fromkeys(["bullets", "paragraphs", "sections", "highlights", "two", "first_word"], _layout),
    **dict.fromkeys(["few_words", "many_words", "few_sentences", "letters", "caps_few"], _content),
    **dict.fromkeys(
        ["forbidden", "placeholders", "keywords", "frequency", "constrained"], lambda k, c: insert(k, c[0], c[1])
    ),
}


def constraint(kind: str, rng: random.Random, text: str, request: str) -> Spec | None:
    """One constraint of ``kind`` fitted to this answer and request, or None if it cannot be met with them."""
    return _FAMILY[kind](kind, (rng, text, request))


def _repeat(rng: random.Random, body: str, response: str) -> tuple[str, str, Spec]:
    """(prompt, answer, constraint) for "repeat my request, then answer": what is repeated is the whole request with
    its other constraints, as in IFEval (8-67 words, median 28; the fourth sibling, taught to repeat only the bare
    request, copied just its first sentence), and the instruction comes after it or, a quarter of the time, before
    it (8 of IFEval's 41 repeat prompts put the request below)."""
    if rng.random() < 0.25:
        prompt = _say("repeat_below", rng) + "\n\n" + body
    else:
        prompt = body + rng.choice(["\n\n", "\n", " "]) + _say("repeat", rng)
    return prompt, f"{body}\n\n{response}", ("", "combination:repeat_prompt", {"prompt_to_repeat": body}, str)


KINDS = [*_FAMILY, "repeat"]
# How often each kind is drawn: IFEval asks most for keywords, highlights, commas, case, repeats and quotes, and
# those are what the first siblings kept least often (results/miniatures/pair_v6/summary.md). The eighth sibling
# draws no_comma, end and frequency more often than the sixth (5, 2, 3 instead of 3, 1, 2): a comma left out is a
# few tokens of an answer, and the sixth still wrote commas in 50 of IFEval's 66 no-comma answers (the eighth: 16).
_WEIGHT = {**dict.fromkeys(KINDS, 1.0), "lowercase": 2.0, "no_comma": 5.0, "highlights": 2.0, "quote": 1.5,
           "repeat": 3.0, "title": 1.5, "keywords": 3.0, "frequency": 3.0, "postscript": 1.5, "letters": 0.5,
           "caps_few": 0.5, "constrained": 0.7, "forbidden": 2.5, "capital": 2.0, "end": 2.0}  # fmt: skip
# Applied in this order, each to the answer as reshaped so far: words go out and in first, then the layout cuts the
# text, then wrappers add around it, the counters measure the result, and case, commas, quotes and JSON come last.
_ORDER = [
    "forbidden", "keywords", "frequency", "placeholders", "bullets", "paragraphs", "sections", "two", "first_word",
    "highlights", "constrained", "title", "postscript", "end", "few_words", "many_words", "few_sentences",
    "letters", "caps_few", "no_comma", "lowercase", "capital", "quote", "json", "repeat",
]  # fmt: skip
_COUNTERS = ["forbidden", "few_words", "many_words", "few_sentences", "letters", "caps_few"]
_LAYOUTS = ["bullets", "paragraphs", "sections", "two", "first_word", "json", "constrained"]
_WRAPS = ["quote", "json", "title", "end", "postscript", "constrained"]
_CLASH = (
    {frozenset((a, b)) for a in _LAYOUTS for b in _LAYOUTS if a != b}
    | {frozenset((a, b)) for a in _WRAPS for b in _WRAPS if a != b and {a, b} != {"title", "end"}}
    | {
        frozenset((c, k))
        for c in ("lowercase", "capital")
        for k in (
            "capital",
            "lowercase",
            "sections",
            "postscript",
            "title",
            "end",
            "placeholders",
            "repeat",
            "caps_few",
            "first_word",
            "letters",
            "constrained",
        )
    }  # fmt: skip
    | {frozenset(("repeat", k)) for k in ("quote", "json", "constrained", *_COUNTERS)}  # the copy would change them
    | {frozenset(("no_comma", k)) for k in ("json", "placeholders")}
    | {frozenset(("few_words", "many_words"))}
    | {frozenset(("highlights", k)) for k in ("bullets", "json")}
)
_CLASH = {c for c in _CLASH if len(c) == 2}


def _answer_text(answer: str, max_words: int) -> str:
    """The answer's leading whole sentences, at most ``max_words`` words (short sequences train fast)."""
    out: list[str] = []
    for s in sentences(" ".join(answer.split())):
        if out and len(" ".join([*out, s]).split()) > max_words:
            break
        out.append(s)
    return " ".join(out)


def _asked(rng: random.Random, request: str, repeat: bool) -> str:
    """The request as the user says it: alone or after a sentence or two of context (two only when it is to be
    repeated, so that repeating it means copying several sentences, as IFEval's repeat prompts ask)."""
    n = rng.choices([0, 1, 2], weights=[1, 3, 2] if repeat else [4, 6, 0])[0]
    context = [c.format(p=rng.choice(if_requests.PEOPLE)) for c in rng.sample(CONTEXT, n)]
    return " ".join([*context, request])


def _kinds(rng: random.Random) -> list[str]:
    """0-3 constraint kinds that do not clash, in the order they are applied."""
    n = rng.choices([0, 1, 2, 3], weights=[1, 5, 5, 2])[0]
    kinds: list[str] = []
    while len(kinds) < n:
        k = rng.choices(KINDS, weights=[_WEIGHT[x] for x in KINDS])[0]
        if k not in kinds and not any(frozenset((k, o)) in _CLASH for o in kinds):
            kinds.append(k)
    return sorted(kinds, key=_ORDER.index)


def example(rng: random.Random, rows: list[dict], max_words: int = 70) -> dict | None:
    """One chat: a request with 0-3 constraints, and the teacher's answer reshaped to meet them, each constraint
    fitted to the answer as the ones before it left it."""
    row = rng.choice(rows)
    request, response = row["request"], _answer_text(rng.choice(row["answers"]), max_words)
    kinds = _kinds(rng)
    asked = _asked(rng, request, "repeat" in kinds)
    specs = []
    for k in (k for k in kinds if k != "repeat"):
        spec = constraint(k, rng, response, asked)
        if spec is None:
            return None
        specs.append(spec)
        response = spec[3](response)
    said = [s[0] for s in specs]
    rng.shuffle(said)
    if "repeat" in kinds:  # copied last, onto the answer the other constraints shaped
        body = " ".join([asked, *said])
        prompt, response, spec = _repeat(rng, body.replace(",", "") if "no_comma" in kinds else body, response)
        specs.append(spec)
    else:
        prompt = " ".join([*said, asked] if said and rng.random() < 0.2 else [asked, *said])
    ids, kws = [s[1] for s in specs], [s[2] for s in specs]
    if leaks(prompt) or not passes(ids, kws, prompt, response):
        return None
    return {"prompt": prompt, "response": response, "instruction_id_list": ids, "kwargs": kws, "request": request,
            "asked": asked}  # fmt: skip


def build(n: int, seed: int, answers: Path = if_requests.ANSWERS, max_words: int = 70) -> list[dict]:
    """``n`` distinct examples, deterministic for ``seed`` and the committed teacher answers."""
    rng, rows = random.Random(seed), if_requests.load(answers)
    out, seen = [], set()
    while len(out) < n:
        ex = example(rng, rows, max_words)
        if ex and ex["prompt"] not in seen:
            seen.add(ex["prompt"])
            out.append(ex)
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--answers", type=Path, default=if_requests.ANSWERS)
    ap.add_argument("--out", type=Path, required=True)
    a = ap.parse_args()
    rows = build(a.n, a.seed, a.answers)
    a.out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"{len(rows)} examples -> {a.out}")
