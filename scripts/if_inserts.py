"""Constraint kinds that put words *into* the sibling's training answer (``if_train_data.py``).

Why these insert rather than pick what the answer already has: a sibling trained on "use the words a and b" where
a and b were taken from its own answer learns nothing about the request; IFEval names words the answer would not
contain ("include the keywords atlantis and constable"), and the first two siblings kept fewer of those prompts
than the base (keyword existence 11 -> 3 of 16 at lam=1). So the words here come from other answers, and the
answer is rewritten to carry them, the way an instruct model would weave them in. The fourth sibling, whose
words were woven in at a random place, rarely wrote them at all (keyword existence 5 of 16 at lam=1); so half the
answers now name the words in their first sentence, right after the request, where copying them is easiest.
"""

from __future__ import annotations

import functools
import random
import re

from if_phrasings import SAY

PLACEHOLDERS = ["[name]", "[date]", "[place]", "[address]", "[phone number]", "[company]", "[time]", "[city]"]
WEAVE = [
    "This also brings {ws} to mind.", "It is worth thinking about {ws} as well.", "Here {ws} matter too.",
    "Do not forget {ws}.", "You could even connect it to {ws}.", "A word list for this: {ws}.",
]  # fmt: skip
OPEN = [
    "Here is an answer that uses {ws}.", "Let me bring {ws} into this.", "{Ws}: I will keep those in mind.",
    "With {ws} in the picture, here goes.", "I will work in {ws} as I go.",
]  # fmt: skip
LEAD = ["When it comes to {w}, ", "Speaking of {w}, ", "As for {w}, ", "Thinking of {w}, ", "With {w} in mind, "]
FILLERS = ["very", "really", "basically", "amazing", "thing", "stuff", "great", "just"]
# Words too plain to forbid or to highlight: the answer cannot do without them.
STOPWORDS = {"about", "after", "also", "because", "been", "before", "being", "could", "from", "have", "into", "just",
           "like", "make", "many", "more", "most", "much", "only", "other", "over", "some", "such", "than", "that",
           "their", "them", "then", "there", "these", "they", "this", "those", "through", "very", "what", "when",
           "where", "which", "while", "with", "would", "your", "often", "every", "might", "still",
           "should"}  # fmt: skip
OPTIONS = ["My answer is yes.", "My answer is no.", "My answer is maybe."]  # the only ones IFEval's checker takes
QUOTE = ['"{w}"', "'{w}'", "{w}"]

Spec = tuple[str, str, dict, object]


def sentences(text: str) -> list[str]:
    """``text``'s sentences: a split after . ! or ? where the next one starts with a capital or a quote."""
    return [s.strip() for s in re.split(r"(?<=[.!?])\s+(?=[A-Z\"])", text) if s.strip()]


def words(text: str) -> list[str]:
    """``text``'s words, lowercased, without the punctuation and markdown around them."""
    return [w.strip(".,;:!?()\"'*").lower() for w in text.split()]


@functools.cache
def vocabulary() -> tuple[str, ...]:
    """Plain words of 5-12 letters from every committed teacher answer, sorted (the keyword pool)."""
    import if_requests

    text = " ".join(a for r in if_requests.load() for a in r["answers"])
    return tuple(sorted({w for w in re.findall(r"\b[a-z]{5,12}\b", text)}))


def _fresh(rng: random.Random, text: str, n: int) -> list[str]:
    have = set(words(text))
    pool = [w for w in vocabulary() if w not in have]
    return rng.sample(pool, n)


def _listed(ws: list[str], style: str) -> str:
    q = [style.format(w=w) for w in ws]
    return q[0] if len(q) == 1 else ", ".join(q[:-1]) + " and " + q[-1]


def _weave(rng: random.Random, text: str, sentence: str) -> str:
    """``sentence`` put after a random sentence of ``text``."""
    ss = sentences(text)
    i = rng.randint(1, len(ss))
    return " ".join([*ss[:i], sentence, *ss[i:]])


def _open(rng: random.Random, text: str, ws: list[str]) -> str:
    """``text`` after a first sentence that names ``ws`` ("Let me bring tea and maps into this.")."""
    listed = _listed(ws, "{w}")
    return rng.choice(OPEN).format(ws=listed, Ws=listed[0].upper() + listed[1:]) + " " + text


def _lead(rng: random.Random, text: str, w: str, n: int) -> str:
    """``n`` sentences of ``text`` opened by a phrase naming ``w`` ("As for tea, the ..."): its first ``n`` half the
    time (right after the request, as for keywords), else ``n`` anywhere."""
    ss = sentences(text)
    for i in range(n) if rng.random() < 0.5 else sorted(rng.sample(range(len(ss)), n)):
        s = ss[i]
        ss[i] = rng.choice(LEAD).format(w=w) + (s[0].lower() + s[1:] if s[1:2].islower() else s)
    return " ".join(ss)


def _forbid(rng: random.Random, text: str) -> list[str]:
    """Words to forbid (the answer then loses the sentences that use them: ``without``): mostly 1-3 of its own
    content words, each in one or two of its sentences (as IFEval forbids words the answer would use: "explain
    riding a bike to a kid ... do not include 'kid'"); else filler words it lacks. The fifth sibling, whose
    forbidden words were all fillers, took IFEval's "do not include the keywords" for a keyword request and wrote
    them."""
    ss = sentences(text)
    where = {w: {i for i, s in enumerate(ss) if re.search(rf"\b{w}\b", s, re.I)} for w in set(words(text))}
    pool = sorted(w for w, at in where.items() if w.isalpha() and len(w) >= 4 and w not in STOPWORDS and len(at) <= 2)
    if len(ss) < 3 or not pool or rng.random() < 0.3:
        fillers = [w for w in FILLERS if w not in words(text)]
        return rng.sample(fillers, 2) if len(fillers) >= 2 else []
    want, out, gone = rng.choice([1, 2, 3]), [], set()
    for w in rng.sample(pool, len(pool)):
        if len(out) < want and len(gone | where[w]) <= len(ss) - 2:
            out.append(w)
            gone |= where[w]
    return out


def without(text: str, ws: list[str]) -> str:
    """``text`` without the sentences that use any of ``ws`` (whole words, any case)."""
    return " ".join(s for s in sentences(text) if not any(re.search(rf"\b{w}\b", s, re.I) for w in ws))


def insert(kind: str, rng: random.Random, text: str) -> Spec | None:
    """One constraint of ``kind`` that changes ``text``'s words; None if this answer cannot carry it."""
    if kind == "forbidden":
        fw = _forbid(rng, text)
        if not fw:  # every candidate sits in too many of its sentences, or it uses the fillers
            return None
        said = rng.choice(SAY[kind]).format(w=_listed(fw, rng.choice(QUOTE)))
        return (said, "keywords:forbidden_words", {"forbidden_words": fw}, lambda s: without(s, fw))
    if kind == "placeholders":
        names = rng.sample(PLACEHOLDERS, rng.randint(1, 4))
        said = rng.choice(SAY[kind]).format(n=len(names))
        return (said, "detectable_content:number_placeholders", {"num_placeholders": len(names)},
                lambda s: s + " Details: " + ", ".join(names) + ".")  # fmt: skip
    if kind == "keywords":
        ws, style = _fresh(rng, text, rng.choice([1, 2, 2, 2, 3, 3, 4])), rng.choice(QUOTE)
        said = rng.choice(SAY[kind]).format(ws=_listed(ws, style))
        line = rng.choice(WEAVE).format(ws=_listed(ws, "{w}"))
        if rng.random() < 0.5:
            return (said, "keywords:existence", {"keywords": ws}, lambda s: _open(rng, s, ws))
        return (said, "keywords:existence", {"keywords": ws}, lambda s: _weave(rng, s, line))
    if kind == "frequency":
        n_sent = len(sentences(text))
        w, style = _fresh(rng, text, 1)[0], rng.choice(QUOTE)
        if rng.random() < 0.25:  # "less than": the word is absent, so the answer already meets it
            n = rng.randint(1, 3)
            said = rng.choice(SAY["frequency_few"]).format(w=style.format(w=w), n=n)
            return (said, "keywords:frequency", {"keyword": w, "frequency": n, "relation": "less than"}, str)
        if n_sent < 2:
            return None
        n = rng.randint(2, min(4, n_sent))
        said = rng.choice(SAY[kind]).format(w=style.format(w=w), n=n)
        spec = {"keyword": w, "frequency": n, "relation": "at least"}
        return (said, "keywords:frequency", spec, lambda s: _lead(rng, s, w, n))
    opts = rng.sample(OPTIONS, 3)  # constrained: listed in a shuffled order, as (a) .. (c)
    pick = rng.choice(opts)
    listed = " ".join(f"({c}) {o}" for c, o in zip("abc", opts))
    said = rng.choice(SAY[kind]).format(o=listed)
    return (said, "detectable_format:constrained_response", {}, lambda s: f"{pick} {s}")
