"""Judges for pairwise (AlpacaEval-style) evaluation, behind one interface (``base.Judge``).

* ``spec``: ``JudgeSpec``, the ``judge`` block of a suite part typed (``judge_spec``) and checked (``validate``).
* ``settings``: prompt templates, their chat messages, what the record says about the judge.
* ``base``: ``Judge`` (triples in, P(second answer better) out) and ``PromptJudge`` for LLM judges.
* ``openai_judge`` (HTTP endpoint), ``local`` (transformers / vLLM in this process), ``reward`` (reward model).
* ``registry``: one judge per configuration per process.
* ``scoring``: position-bias control, alpaca-eval's win rates, agreement with GPT-4-turbo, ``score`` for suites.

Imports flow one way: suite -> judges.scoring -> judges.{registry, base, spec, settings} -> errors/paths; the engines
are imported only inside the in-process judges that use them.
"""

from __future__ import annotations

from ...errors import JudgeError
from .base import Judge, PromptJudge, p_second_from_logprobs
from .registry import get_judge
from .scoring import (
    ANNOTATIONS,
    LC_VARIANT,
    OUTPUTS,
    agreement,
    check_part,
    lc_offline_minimal,
    preferences,
    score,
    second_slot_bias,
    win_metrics,
)
from .settings import LEADERBOARD, identity, messages, template
from .spec import KINDS, ORDERS, JudgeSpec, judge_spec

__all__ = [
    "ANNOTATIONS", "KINDS", "LC_VARIANT", "LEADERBOARD", "ORDERS", "OUTPUTS", "Judge", "JudgeError", "JudgeSpec",
    "PromptJudge", "agreement", "check_part", "get_judge", "identity", "judge_spec", "lc_offline_minimal", "messages",
    "p_second_from_logprobs", "preferences", "score", "second_slot_bias", "template", "win_metrics",
]  # fmt: skip
