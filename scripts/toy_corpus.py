"""The toy pair's text: pretraining documents, instruction-following chats and the evaluation suites.

Everything here is drawn from a seeded ``random.Random`` handed in by ``make_toy_pair.py``, in a fixed order, so
a rerun writes the same data. The recall documents pair nonsense keys with labels under a fresh random map per
document (a repeated key's label is predictable only by in-context lookup); the chats obey IFEval-style
verifiable instructions worded by IFEval's own checkers. Standard library and lm-eval only: no torch.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

# lm-eval's IFEval module (used to word the instructions) tries an NLTK download at import unless it finds data.
os.environ.setdefault("NLTK_DATA", str(Path(__file__).resolve().parents[1] / "data" / "nltk"))
KEY_CONSONANTS = "bdfgklmnprstvz"
KEY_VOWELS = "aeiou"
LABEL_POOLS = {
    "colors": ["red", "blue", "green", "yellow", "black", "white", "pink", "brown"],
    "animals": ["cat", "dog", "fox", "owl", "bee", "cow", "pig", "rat"],
    "numbers": ["one", "two", "three", "four", "five", "six", "seven", "eight"],
    "moods": ["happy", "sad", "calm", "angry", "tired", "bored", "proud", "shy"],
}
TOPICS = [
    "cats",
    "dogs",
    "the ocean",
    "coffee",
    "music",
    "rain",
    "trees",
    "the moon",
    "bread",
    "trains",
    "winter",
    "summer",
    "books",
    "gardens",
    "rivers",
    "birds",
    "tea",
    "cities",
    "mountains",
    "the sun",
    "bicycles",
    "cheese",
    "stars",
    "forests",
    "apples",
    "boats",
    "snow",
    "clocks",
    "paper",
    "islands",
    "horses",
    "bridges",
    "honey",
    "lamps",
    "maps",
    "shoes",
    "songs",
    "deserts",
    "wolves",
    "kites",
]
SENTENCES = [
    "{T} is a topic that many people enjoy.",
    "There is a lot to learn about {t}.",
    "Many people think {t} is interesting, and some study it for years.",
    "You can read books about {t} or talk to people who know it well.",
    "In short, {t} is worth your time.",
    "Some say {t} makes the day better.",
    "If you look closely, {t} has many small details.",
    "People have written songs, stories and poems about {t}.",
    "Children often ask questions about {t}.",
    "Most people see {t} almost every week.",
    "Learning about {t} can be fun, simple and useful.",
    "{T} can look very different from place to place.",
]
QUESTIONS = [
    "Write a short note about {t}.",
    "Tell me about {t}.",
    "What do you know about {t}?",
    "Describe {t} in a few sentences.",
    "Say something about {t}.",
]
KEYWORDS = [
    "light",
    "water",
    "friend",
    "garden",
    "color",
    "window",
    "dream",
    "road",
    "music",
    "story",
    "morning",
    "family",
    "stone",
    "river",
    "journey",
    "home",
]
END_PHRASES = [
    "Is there anything else I can help with?",
    "Any other questions?",
    "Let me know if you have additional questions.",
    "Hope you agree with me.",
]
# IFEval instruction ids the toy instruct model learns, and pairs that contradict each other.
INSTRUCTIONS = [
    "change_case:english_lowercase",
    "change_case:english_capital",
    "punctuation:no_comma",
    "startend:quotation",
    "startend:end_checker",
    "keywords:existence",
    "detectable_format:title",
    "detectable_content:postscript",
    "length_constraints:number_words",
]
CONFLICTS = {frozenset({"change_case:english_lowercase", "change_case:english_capital"})}
SPECIAL = ["<|endoftext|>", "<|user|>", "<|assistant|>", "<|end|>"]
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def key_pool(rng: random.Random, n: int = 64) -> list[str]:
    """Nonsense consonant-vowel-consonant keys: no meaning the model could memorise a label for."""
    keys = sorted({a + v + b for a in KEY_CONSONANTS for v in KEY_VOWELS for b in KEY_CONSONANTS})
    return rng.sample(keys, n)


def recall_doc(rng: random.Random, keys: list[str]) -> str:
    """Lines ``key label`` under a fresh random map; repeated keys are predictable only by lookup.

    The label follows the key token directly: one induction step (find the key's earlier occurrence, copy
    what followed it), which a 2-layer model learns in minutes; a ``key: label`` format needs two.
    """
    pool = LABEL_POOLS[rng.choice(sorted(LABEL_POOLS))]
    labels = rng.sample(pool, rng.randint(2, 5))
    ks = rng.sample(keys, rng.randint(len(labels) + 1, 10))
    mapping = {k: labels[i % len(labels)] for i, k in enumerate(ks)}
    lines = [rng.choice(ks) for _ in range(rng.randint(10, 28))]
    return "\n".join(f"{k} {mapping[k]}" for k in lines)


def copy_doc(rng: random.Random, keys: list[str]) -> str:
    """A random key sequence and its repeat: the classic curriculum that makes induction heads form fast."""
    seq = " ".join(rng.choice(keys) for _ in range(rng.randint(6, 24)))
    return seq + "\n" + seq


def plain_answer(rng: random.Random, topic: str) -> str:
    picks = rng.sample(SENTENCES, rng.randint(2, 4))
    return " ".join(s.format(t=topic, T=topic[0].upper() + topic[1:]) for s in picks)


def prose_doc(rng: random.Random) -> str:
    return "\n".join(plain_answer(rng, rng.choice(TOPICS)) for _ in range(rng.randint(2, 5)))


def pick_instructions(rng: random.Random, n: int) -> list[tuple[str, dict]]:
    """Draw ``n`` compatible IFEval instructions with the kwargs IFEval's checkers take."""
    while True:
        ids = rng.sample(INSTRUCTIONS, n)
        if not any(frozenset(p) in CONFLICTS for p in zip(ids, ids[1:])) and not (
            "change_case:english_lowercase" in ids and "change_case:english_capital" in ids
        ):
            break
    out = []
    for iid in ids:
        kw: dict = {}
        if iid == "startend:end_checker":
            kw = {"end_phrase": rng.choice(END_PHRASES)}
        elif iid == "keywords:existence":
            kw = {"keywords": rng.sample(KEYWORDS, 2)}
        elif iid == "detectable_content:postscript":
            kw = {"postscript_marker": "P.S."}
        elif iid == "length_constraints:number_words":
            kw = {"relation": "less than", "num_words": rng.choice([12, 15, 20])}
        out.append((iid, kw))
    return out


def describe(iid: str, kw: dict) -> str:
    """The instruction's wording exactly as IFEval's own checker builds it."""
    from lm_eval.tasks.ifeval import instructions_registry

    return instructions_registry.INSTRUCTION_DICT[iid](iid).build_description(**kw)


def obey(rng: random.Random, topic: str, instrs: list[tuple[str, dict]]) -> str:
    """Write an answer about ``topic`` that satisfies every instruction (the SFT target)."""
    ids = dict(instrs)
    n_sent = 1 if "length_constraints:number_words" in ids else rng.randint(2, 3)
    text = plain_answer(rng, topic).split(". ")[:n_sent]
    text = ". ".join(text).rstrip(".") + "."
    if "keywords:existence" in ids:
        a, b = ids["keywords:existence"]["keywords"]
        text += f" It reminds me of {a} and {b}."
    if "punctuation:no_comma" in ids:
        text = text.replace(",", "")
    if "detectable_format:title" in ids:
        text = f"<<notes on {topic}>>\n" + text
    if "detectable_content:postscript" in ids:
        text += f"\nP.S. I like {topic}."
    if "startend:end_checker" in ids:
        text += " " + ids["startend:end_checker"]["end_phrase"]
    if "change_case:english_lowercase" in ids:
        text = text.lower()
    if "change_case:english_capital" in ids:
        text = text.upper()
    if "startend:quotation" in ids:
        text = f'"{text}"'
    return text


def chat(prompt: str, answer: str) -> tuple[str, str]:
    """(prompt part, answer part) rendered with the pair's chat template."""
    return f"<|user|>\n{prompt}<|end|>\n<|assistant|>\n", f"{answer}<|end|>\n"


def if_example(rng: random.Random, max_instr: int = 2) -> tuple[str, list[tuple[str, dict]], str]:
    topic = rng.choice(TOPICS)
    instrs = pick_instructions(rng, rng.randint(1, max_instr))
    prompt = rng.choice(QUESTIONS).format(t=topic) + " " + " ".join(describe(i, k) for i, k in instrs)
    return prompt, instrs, obey(rng, topic, instrs)


def pretrain_documents(rng: random.Random, keys: list[str], n_docs: int) -> list[tuple[str, str]]:
    """The pretraining mix as (prompt, text) pairs (prompt empty except for chat transcripts): 35% recall
    documents, 20% a recall document and its repeat (every token of the copy is predictable), 10% key-sequence
    copies, 20% prose, 15% plain chat. Lookup-heavy on purpose: that is the in-context skill the sweep measures."""
    pre_texts = []
    for _ in range(n_docs):
        r = rng.random()
        if r < 0.35:
            pre_texts.append(("", recall_doc(rng, keys)))
        elif r < 0.55:
            doc = recall_doc(rng, keys)  # a document and its repeat: every token of the copy is predictable
            pre_texts.append(("", doc + "\n" + doc))
        elif r < 0.65:
            pre_texts.append(("", copy_doc(rng, keys)))
        elif r < 0.85:
            pre_texts.append(("", prose_doc(rng)))
        else:
            topic = rng.choice(TOPICS)
            pre_texts.append(chat(rng.choice(QUESTIONS).format(t=topic), plain_answer(rng, topic)))
    return pre_texts


def sft_documents(rng: random.Random, n: int) -> list[tuple[str, str]]:
    """``n`` chat (prompt, answer) pairs whose answers obey up to three IFEval instructions: the SFT set."""
    return [chat(p, a) for p, _, a in (if_example(rng, 3) for _ in range(n))]


def write_suites(out: Path, keys: list[str], rng: random.Random, n_icl: int, n_if: int) -> None:
    """Toy ICL tasks (fresh random maps, train split = demonstration pool) and a toy IFEval file."""
    out.mkdir(parents=True, exist_ok=True)
    specs = {"colors": (8, 4), "animals": (6, 3), "numbers": (10, 5)}
    for name, (n_keys, n_labels) in specs.items():
        labels = rng.sample(LABEL_POOLS[name], n_labels)
        ks = rng.sample(keys, n_keys)
        mapping = {k: labels[i % n_labels] for i, k in enumerate(ks)}
        train_rows = [{"key": k, "label": mapping[k], "choices": labels} for k in ks * 2]
        test_rows = [{"key": k, "label": mapping[k], "choices": labels} for k in (ks * (n_icl // n_keys + 1))[:n_icl]]
        rng.shuffle(test_rows)
        for split, rows in (("train", train_rows), ("test", test_rows)):
            with open(out / f"recall_{name}.{split}.jsonl", "w") as f:
                f.writelines(json.dumps(r) + "\n" for r in rows)
    with open(out / "toy_ifeval.jsonl", "w") as f:
        for key in range(n_if):
            prompt, instrs, _ = if_example(rng)
            f.write(
                json.dumps(
                    {
                        "key": key,
                        "prompt": prompt,
                        "instruction_id_list": [i for i, _ in instrs],
                        "kwargs": [k for _, k in instrs],
                    }
                )
                + "\n"
            )
