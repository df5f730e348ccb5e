"""A judge's prompt template, its chat messages and what the record says about the judge.

The ``judge`` block's keys, types, defaults and checks are ``JudgeSpec``'s (``spec.py``).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import JudgeError
from ...paths import data_dir

if TYPE_CHECKING:
    from .spec import JudgeSpec

LEADERBOARD = {"model": "gpt-4-1106-preview", "prompt": "alpaca_eval_clf_gpt4_turbo", "reference": "gpt4_1106_preview"}
_PLACEHOLDERS = ("instruction", "output_1", "output_2")


def template(name: str) -> str:
    """Judge prompt ``data/alpaca_eval/judge_prompt_<name>.txt`` (or a file path) with the three placeholders."""
    path = Path(name) if name.endswith(".txt") else data_dir() / "alpaca_eval" / f"judge_prompt_{name}.txt"
    if not path.is_file():
        raise JudgeError(f"judge: prompt {name!r} not found (looked for {path})")
    text = path.read_text(encoding="utf-8")
    missing = [p for p in _PLACEHOLDERS if "{" + p + "}" not in text]
    if missing:
        raise JudgeError(f"judge: prompt {path} lacks placeholder(s) {missing}")
    return text


def messages(tmpl: str, instruction: str, output_1: str, output_2: str) -> list[dict[str, str]]:
    """Fill the template in one pass (answers may contain braces) and split its ChatML into chat messages."""
    from alpaca_eval.utils import prompt_to_chatml

    values = {"instruction": instruction, "output_1": output_1, "output_2": output_2}
    filled = re.sub(r"\{(instruction|output_1|output_2)\}", lambda m: values[m.group(1)], tmpl)
    return list(prompt_to_chatml(filled))


def identity(s: JudgeSpec) -> dict[str, Any]:
    """What the record says about the judge (never the API key, only the variable's name)."""
    where = ("base_url", "api_key_env") if s.kind == "openai" else ("dtype",)
    keys = ("kind", "model", "prompt", "tokens", "order", "reference", *where)
    out = {k: getattr(s, k) for k in keys}
    out["prompt_sha256"] = hashlib.sha256(template(s.prompt).encode()).hexdigest()[:16]
    out["leaderboard_comparable"] = all(getattr(s, k) == v for k, v in LEADERBOARD.items())
    return out
