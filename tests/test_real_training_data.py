"""The instruct sibling's training data contains no evaluation prompt, and every answer meets its constraints.

The chats come from ``scripts/if_train_data.py`` (requests from the project's templates, answered by
SmolLM2-135M-Instruct, with IFEval-kind constraints). What must not
be in them: IFEval's 541 prompts, AlpacaEval's 805 instructions, and any ICL test item the suites score. The
check is on text, not ids: no evaluation text of 8+ words appears inside a training prompt or answer, and no
training prompt shares a run of 8 consecutive words with an IFEval prompt or an AlpacaEval instruction.
"""

from __future__ import annotations

import json
import re
import sys

import pytest

from mergesweep.paths import REPO, data_dir

sys.path.insert(0, str(REPO / "scripts"))
import if_inserts
import if_train_data

N_TRAIN, SEED = 3200, 0  # what scripts/make_instruct_lora.py trains on (its --examples and --seed defaults)
SHINGLE = 8


def _words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def _shingles(text: str) -> set[tuple[str, ...]]:
    w = _words(text)
    return {tuple(w[i : i + SHINGLE]) for i in range(len(w) - SHINGLE + 1)}


def _eval_prompts() -> list[str]:
    ifeval = [json.loads(x)["prompt"] for x in (data_dir() / "ifeval" / "input_data.jsonl").read_text().splitlines()]
    alpaca = json.loads((data_dir() / "alpaca_eval" / "gpt4_turbo_1106_preview_model_outputs.json").read_text())
    assert len(ifeval) == 541 and len(alpaca) == 805
    return ifeval + [r["instruction"] for r in alpaca]


def _icl_items() -> list[str]:
    items = []
    for f in sorted((data_dir() / "icl").glob("*.test.jsonl")):
        for line in f.read_text().splitlines():
            row = json.loads(line)
            items += [str(v) for k, v in row.items() if isinstance(v, str) and len(_words(v)) >= SHINGLE]
    assert len(items) > 1000
    return items


@pytest.fixture(scope="module")
def train_rows() -> list[dict]:
    return if_train_data.build(N_TRAIN, SEED)


def leaks(rows: list[dict]) -> list[str]:
    """Training rows that contain evaluation text (empty when clean)."""
    eval_prompts = _eval_prompts()
    banned = set().union(*(_shingles(p) for p in eval_prompts))
    icl = {" ".join(_words(t)) for t in _icl_items()}
    bad = []
    for r in rows:
        joined = " ".join(_words(r["prompt"] + " " + r["response"]))
        if _shingles(r["prompt"]) & banned:
            bad.append(f"prompt shares {SHINGLE} words with an evaluation prompt: {r['prompt'][:80]}")
        elif any(len(t) > 40 and t in joined for t in icl):
            bad.append(f"contains an ICL test item: {r['prompt'][:80]}")
    return bad


def test_training_chats_contain_no_evaluation_text(train_rows):
    assert len(train_rows) == N_TRAIN
    assert leaks(train_rows) == []


def test_the_leak_check_finds_a_planted_evaluation_prompt(train_rows):
    ifeval = json.loads((data_dir() / "ifeval" / "input_data.jsonl").read_text().splitlines()[7])["prompt"]
    sst2 = json.loads((data_dir() / "icl" / "sst2.test.jsonl").read_text().splitlines()[3])["text"]
    planted = [
        {**train_rows[0], "prompt": "Please help. " + ifeval},
        {**train_rows[1], "response": train_rows[1]["response"] + " " + sst2},
    ]
    assert len(leaks(planted)) == 2


def test_every_answer_passes_lm_evals_own_checkers_and_the_data_is_seeded(train_rows):
    from lm_eval.tasks.ifeval.instructions_registry import INSTRUCTION_DICT

    kinds = {i for r in train_rows for i in r["instruction_id_list"]}
    assert len(kinds) >= 15 and kinds <= set(INSTRUCTION_DICT)
    from mergesweep.evals.seeded import item_seed, seed_everything

    for r in train_rows[:300]:  # independent of the generator's own filter: each checker built here
        seed_everything(item_seed({"key": 0, "prompt": r["prompt"]}, 0))  # langdetect, as the scorer seeds it
        for iid, kw in zip(r["instruction_id_list"], r["kwargs"]):
            checker = INSTRUCTION_DICT[iid](iid)
            checker.build_description(**kw)
            assert checker.check_following(r["response"]), (iid, r["prompt"])
    assert if_train_data.build(50, SEED) == train_rows[:50]
    assert if_train_data.build(50, SEED + 1) != train_rows[:50]


def _without_woven_words(text: str, kwargs: list[dict]) -> str:
    """``text`` without what the generator wrote to carry requested words: a sentence naming every keyword of a
    ``keywords:existence`` constraint is dropped, and an opening phrase naming a ``keywords:frequency`` word ("As
    for tea, the ...") is cut, which leaves the teacher's sentence."""
    keywords = [k["keywords"] for k in kwargs if "keywords" in k]
    frequent = [k["keyword"] for k in kwargs if "keyword" in k]
    out = []
    for s in re.split(r"(?<=[.!?])\s+", text):
        low = s.lower()
        if any(all(w in low for w in ws) for ws in keywords):
            continue
        for w, lead in ((w, lead) for w in frequent for lead in if_inserts.LEAD):
            s = re.sub(re.escape(lead.format(w=w)).replace(",", ",?"), "", s, flags=re.I)  # no_comma drops its comma
        out.append(s)
    return " ".join(out)


def test_every_answer_comes_from_the_committed_teacher_answers(train_rows):
    """The sibling learns from the shipped SmolLM2 answers, not from text made up elsewhere: most runs of 8 words
    in each training answer (the reshape's own titles, headers and postscripts aside, and the sentences it wove
    requested keywords into) occur in the teacher's answer to that very request, and no answer names its maker."""
    import if_requests

    by_request = {r["request"]: " ".join(r["answers"]) for r in if_requests.load()}
    assert len(by_request) >= 300
    for r in train_rows:
        text, teacher = r["response"], by_request[r["request"]]
        for k in r["kwargs"]:  # a repeated request is not the teacher's
            text = text.replace(k.get("prompt_to_repeat", "\0"), "")
        if text.startswith("```json"):  # the reshape turned the answer's double quotes into single ones
            text = json.loads(text.removeprefix("```json").removesuffix("```"))["response"]
            teacher = teacher.replace('"', "'")
        text = re.sub(r"<<[^>]*>>|^(?:SECTION|Section|PART) \d+$", " ", text, flags=re.M)  # titles, headers
        text = _without_woven_words(text, r["kwargs"])
        mine = set().union(*(_shingles(s) for s in re.split(r"(?<=[.!?])\s+", text)))  # none across dropped ones
        if len(mine) >= SHINGLE:  # what is left after the woven sentences is long enough to judge
            shared = len(mine & _shingles(teacher)) / len(mine)
            assert shared >= 0.5, (r["request"], shared, text[:200])
        assert "smollm" not in r["response"].lower()
    planted = "The river is wide and the boats carry fruit to the market every single morning."
    assert not _shingles(planted) & _shingles(by_request[train_rows[0]["request"]])


def test_the_data_is_the_same_in_every_process(tmp_path):
    """Same seed, fresh processes with different hash seeds: byte-identical chats (IFEval's english_capital
    checker calls langdetect, which is random unless seeded; unseeded, runs diverged after ~200 rows)."""
    import os
    import subprocess

    outs = []
    for hash_seed in ("1", "2"):
        out = tmp_path / f"run{hash_seed}.jsonl"
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        cmd = [sys.executable, str(REPO / "scripts" / "if_train_data.py"), "--n", "400", "--out", str(out)]
        subprocess.run(cmd, check=True, env=env, capture_output=True, timeout=600)
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]


def test_the_committed_adapter_was_trained_on_exactly_these_chats(train_rows):
    """training.json of the committed LoRA names the sha256 of the chats it saw; the generator still makes them."""
    import hashlib

    info = json.loads((data_dir() / "real" / "gemma3_270m_if_v8_lora" / "training.json").read_text())
    assert (info["examples"], info["seed"]) == (N_TRAIN, SEED)
    chats = if_train_data.build(N_TRAIN, SEED, max_words=info["max_words"])
    digest = hashlib.sha256("".join(json.dumps(c, sort_keys=True) + "\n" for c in chats).encode()).hexdigest()
    assert digest == info["data_sha256"]


def test_json_answers_hold_no_quote_a_small_model_must_escape(train_rows):
    """The sixth sibling's chats taught JSON strings with escaped quotes inside, and it wrote them unescaped (3 of
    its 11 invalid IFEval JSON answers on all 541 prompts). Today's answer strings carry no double quote."""
    rows = [r for r in train_rows if "detectable_format:json_format" in r["instruction_id_list"]]
    assert len(rows) >= 50
    for r in rows:
        body = json.loads(r["response"].removeprefix("```json").removesuffix("```"))["response"]
        assert '"' not in body, r["response"][:200]
