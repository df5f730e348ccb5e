"""One judge per configuration per process: an in-process judge model is loaded once per sweep, not per point."""

from __future__ import annotations

import dataclasses
import importlib
import json

from .base import Judge
from .spec import JudgeSpec

# kind -> (module, class); imported on first use so an HTTP judge never imports torch or vLLM
KIND_CLASSES = {
    "openai": ("openai_judge", "OpenAIJudge"),
    "hf": ("local", "HFJudge"),
    "vllm": ("local", "VLLMJudge"),
    "reward": ("reward", "RewardJudge"),
}
_JUDGES: dict[str, Judge] = {}


def get_judge(s: JudgeSpec) -> Judge:
    """The judge for a checked ``JudgeSpec`` (``spec.judge_spec(part).validate()``), built on first use.

    Keyed on every setting, not only those that load the model: a judge keeps its settings (prompt template,
    identifier tokens, ...), so a judge cached for one prompt must not answer for another.
    """
    key = json.dumps(dataclasses.asdict(s), sort_keys=True, default=str)
    if key not in _JUDGES:
        module, cls = KIND_CLASSES[s.kind]
        _JUDGES[key] = getattr(importlib.import_module(f"{__package__}.{module}"), cls)(s)
    return _JUDGES[key]
