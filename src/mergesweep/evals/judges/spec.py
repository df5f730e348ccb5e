"""Typed judge settings: every key a suite part's ``judge`` block may hold, its type and its default, written once.

The same idea as ``engines/spec.py`` and ``evals/spec.py`` (read their docstrings), with one difference: the block is
**not** typed at composition. ``PartSpec.judge`` stays a mapping (``dict[str, Any]``) in the composed config, and
``judge_spec`` turns it into a ``JudgeSpec`` where it is used (the preflight's ``scoring.check_part``, the point's
``scoring.score``). Why not ``judge: JudgeSpec | None`` in ``PartSpec`` (OmegaConf supports an optional nested
structured config): records and point ids are made of the composed config (``points.container``), and a typed node

* fills in every default: a judge block that gives 8 keys (``conf/suite/toy_judged.yaml``) would be recorded with
  all 15 (``WHEN_SET`` cannot take them out again: it would also drop the defaults a YAML gives on purpose, such as
  toy_judged's ``order: both``, which its records hold today);
* converts values to the field's type: ``timeout_s: 120`` would be recorded as ``120.0``;
* orders keys by field, not as given: ``+suite.parts.if.judge.dtype=float32`` would move ``dtype`` in the record.

Each would change records that ``tests/test_root_spec.py`` holds byte for byte. So the block is recorded exactly as a
YAML or override gave it (only those keys), and its checks are here: ``judge_spec`` refuses a key ``JudgeSpec`` does
not have (``JudgeError``, one line naming the known keys), ``JudgeSpec.validate()`` checks the values before any
engine starts. The API key itself is never a setting: ``api_key_env`` names the environment variable holding it.
"""

from __future__ import annotations

import dataclasses
import os
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ...errors import JudgeError
from ..spec import PartSpec
from .settings import template

KINDS, ORDERS = ("openai", "hf", "vllm", "reward"), ("both", "random")
LOOPBACK = ("127.0.0.1", "localhost", "::1")


@dataclass
class JudgeSpec:
    """``suite.parts.<part>.judge``: who judges a part's answers against the references, and how.

    Comments on each key: ``conf/suite/alpaca_judged.yaml``."""

    kind: str = "openai"  # openai (HTTP endpoint), hf / vllm (a judge model in this process), reward (reward model)
    model: str | None = None  # required: the served model name (openai) or a local path / hub id
    base_url: str = "http://127.0.0.1:8000/v1"  # openai: the endpoint, loopback unless allow_remote
    api_key_env: str | None = None  # openai: the NAME of the environment variable holding the key, never the key
    allow_remote: bool = False  # openai: allow a base_url that is not a loopback address
    prompt: str = "alpaca_eval_clf_gpt4_turbo"  # data/alpaca_eval/judge_prompt_<prompt>.txt, or a .txt path
    tokens: list[str] = field(default_factory=lambda: ["m", "M"])  # identifiers of output_1 / output_2 in the prompt
    order: str = "both"  # both: judge both orders and average; random: one seeded order per item
    reference: str = "gpt4_1106_preview"  # the reference answers the model's are compared with
    timeout_s: float = 60  # openai: seconds per request
    retries: int = 3  # openai: attempts per request before the point fails
    concurrency: int = 4  # openai: requests in flight
    agreement_limit: int = 0  # > 0: also judge the first N shipped GPT-4-turbo annotations (agreement)
    dtype: str = "float32"  # hf / vllm / reward: the judge model's dtype
    device: str | None = None  # hf / reward: None = cuda if available, else cpu

    def validate(self) -> JudgeSpec:
        """Kind, order, model, identifiers, a loopback endpoint (unless ``allow_remote``), the key's variable set and
        the prompt template present; a one-line ``JudgeError`` naming the bad field, else the spec itself."""
        if self.kind not in KINDS or self.order not in ORDERS:
            raise JudgeError(
                f"judge: kind must be one of {KINDS} and order one of {ORDERS}, got {self.kind!r}/{self.order!r}"
            )
        if not self.model:
            raise JudgeError("judge: `model` is required (served model name for openai, a local path for hf)")
        if len(self.tokens) != 2 or self.tokens[0] == self.tokens[1]:
            raise JudgeError(f"judge: `tokens` must be two different identifiers, got {self.tokens!r}")
        if self.kind == "openai":
            host = urllib.parse.urlparse(self.base_url).hostname or ""
            if host not in LOOPBACK and not self.allow_remote:
                raise JudgeError(
                    f"judge: base_url {self.base_url!r} is not a loopback address; set "
                    "judge.allow_remote=true to send answers to another machine"
                )
            if self.api_key_env and not os.environ.get(self.api_key_env):
                raise JudgeError(f"judge: api_key_env names ${self.api_key_env}, which is not set")
        template(self.prompt)
        return self


def judge_spec(part: PartSpec | Mapping[str, Any] | JudgeSpec) -> JudgeSpec:
    """The typed judge of a suite part (a ``PartSpec`` or a part's plain dict): its ``judge`` block over
    ``JudgeSpec``'s defaults; a ``JudgeSpec`` is returned as it is. A key the spec does not have is a one-line
    ``JudgeError`` naming the known keys. Not validated: ``validate()`` is the caller's.

    A key the block gives, even as null, is the spec's value (``model: null`` is an unset model, which ``validate``
    refuses); a part without a judge gets the defaults."""
    if isinstance(part, JudgeSpec):
        return part
    block = part.judge if isinstance(part, PartSpec) else part.get("judge")
    data = dict(block or {})
    known = sorted(f.name for f in dataclasses.fields(JudgeSpec))
    unknown = sorted(str(k) for k in data if k not in known)
    if unknown:
        raise JudgeError(f"judge: unknown setting(s) {unknown}; known: {known}")
    return JudgeSpec(**{str(k): v for k, v in data.items()})
