"""A suite part's ``judge`` block: defaults, checks, the prompt template and what the record says about it.

Checked before any engine starts (JudgeError names the bad field), so a typo costs seconds.
"""

from __future__ import annotations

import hashlib
import os
import re
import urllib.parse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ...errors import JudgeError
from ...paths import data_dir
from ..spec import PartSpec

KINDS, ORDERS = ("openai", "hf", "vllm", "reward"), ("both", "random")
LEADERBOARD = {"model": "gpt-4-1106-preview", "prompt": "alpaca_eval_clf_gpt4_turbo", "reference": "gpt4_1106_preview"}
DEFAULTS: dict[str, Any] = {
    "kind": "openai", "model": None, "base_url": "http://127.0.0.1:8000/v1", "api_key_env": None,
    "allow_remote": False, "prompt": "alpaca_eval_clf_gpt4_turbo", "tokens": ["m", "M"], "order": "both",
    "reference": "gpt4_1106_preview", "timeout_s": 60, "retries": 3, "concurrency": 4, "agreement_limit": 0,
    "dtype": "float32", "device": None,
}  # fmt: skip
_PLACEHOLDERS = ("instruction", "output_1", "output_2")


def judge_block(part: PartSpec | Mapping[str, Any]) -> dict[str, Any]:
    """A part's ``judge`` block as given (``{}`` for a part without a judge)."""
    block = part.judge if isinstance(part, PartSpec) else part.get("judge")
    return dict(block or {})


def settings(part: PartSpec | Mapping[str, Any]) -> dict[str, Any]:
    """The part's ``judge`` block over the defaults, checked (JudgeError names the bad field)."""
    s = {**DEFAULTS, **judge_block(part)}
    unknown = sorted(set(s) - set(DEFAULTS))
    if unknown:
        raise JudgeError(f"judge: unknown setting(s) {unknown}; known: {sorted(DEFAULTS)}")
    if s["kind"] not in KINDS or s["order"] not in ORDERS:
        raise JudgeError(
            f"judge: kind must be one of {KINDS} and order one of {ORDERS}, got {s['kind']!r}/{s['order']!r}"
        )
    if not s["model"]:
        raise JudgeError("judge: `model` is required (served model name for openai, a local path for hf)")
    if len(s["tokens"]) != 2 or s["tokens"][0] == s["tokens"][1]:
        raise JudgeError(f"judge: `tokens` must be two different identifiers, got {s['tokens']!r}")
    if s["kind"] == "openai":
        host = urllib.parse.urlparse(s["base_url"]).hostname or ""
        if host not in ("127.0.0.1", "localhost", "::1") and not s["allow_remote"]:
            raise JudgeError(
                f"judge: base_url {s['base_url']!r} is not a loopback address; set "
                "judge.allow_remote=true to send answers to another machine"
            )
        if s["api_key_env"] and not os.environ.get(s["api_key_env"]):
            raise JudgeError(f"judge: api_key_env names ${s['api_key_env']}, which is not set")
    template(s["prompt"])
    return s


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


def identity(s: Mapping[str, Any]) -> dict[str, Any]:
    """What the record says about the judge (never the API key, only the variable's name)."""
    where = ("base_url", "api_key_env") if s["kind"] == "openai" else ("dtype",)
    keys = ("kind", "model", "prompt", "tokens", "order", "reference", *where)
    out = {k: s[k] for k in keys}
    out["prompt_sha256"] = hashlib.sha256(template(s["prompt"]).encode()).hexdigest()[:16]
    out["leaderboard_comparable"] = all(s[k] == v for k, v in LEADERBOARD.items())
    return out
