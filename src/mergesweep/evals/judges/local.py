"""Judge models in this process: transformers (``hf``) or batched vLLM (``vllm``) beside the sweep's engine.

Both give AlpacaEval 2's preference: the probabilities of the two answer identifiers after the classifier
prompt. The ``vllm`` judge sends every judge prompt of a point to vLLM in one batched call. Scoring reuses the
sweep engine's log-likelihood rule (``engines.scoring.score_rows``), so both sides of a record score text the
same way. For a judge bigger than what fits beside the engine, serve it (``vllm serve``) and use ``openai``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from ...engines.scoring import score_rows
from ...engines.spec import VLLMEngineSpec
from ...engines.vllm_engine import engine_threads, start_llm  # torch: this module is imported on first use
from .base import Messages, PromptJudge, p_second_from_logprobs
from .spec import JudgeSpec


def prompt_text(tok: Any, msgs: Messages) -> str:
    """The judge prompt as an in-process judge model reads it: its chat template, or plain text without one."""
    if tok.chat_template:
        return str(tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True))
    return "\n\n".join(m["content"] for m in msgs) + "\n"


def load_transformers(s: JudgeSpec, auto_class: Any, **kw: Any) -> tuple[Any, Any, str, int]:
    """(tokenizer, model in eval mode on its device, device, max length) for a judge model in this process."""
    import torch
    from transformers import AutoTokenizer

    device = s.device or ("cuda" if torch.cuda.is_available() else "cpu")
    tok = AutoTokenizer.from_pretrained(s.model)
    model = auto_class.from_pretrained(s.model, dtype=getattr(torch, s.dtype), **kw).to(device).eval()
    return tok, model, device, int(getattr(model.config, "max_position_embeddings", 2048))


class HFJudge(PromptJudge):
    """A transformers causal LM in this process: log-probability of each identifier after the chat prompt."""

    def __init__(self, s: JudgeSpec) -> None:
        super().__init__(s)
        import torch
        from transformers import AutoModelForCausalLM

        self.torch = torch
        self.tok, self.model, self.device, self.max_len = load_transformers(self.s, AutoModelForCausalLM)

    def _logprob(self, ctx: list[int], cont: list[int]) -> float:
        ids = (ctx + cont)[-self.max_len :]
        with self.torch.no_grad():
            logits = self.model(self.torch.tensor([ids], device=self.device)).logits[0].float()
        lps = self.torch.log_softmax(logits[-len(cont) - 1 : -1], dim=-1)
        return float(sum(lps[i, t] for i, t in enumerate(cont)))

    def p_second_prompts(self, prompts: Sequence[Messages]) -> list[float]:
        conts = [self.tok.encode(t, add_special_tokens=False) for t in self.s.tokens]
        out = []
        for msgs in prompts:
            ctx = self.tok.encode(prompt_text(self.tok, msgs), add_special_tokens=False)
            out.append(p_second_from_logprobs(*(self._logprob(ctx, c) for c in conts)))
        return out


# How an in-process vLLM judge starts (``engines.vllm_engine.start_llm``): in this process, a small KV cache
# (CPU build), a small share of the GPU beside the sweep's engine (GPU build) and, like any spec that does not
# say, packed CPU weights. Its threads are the process's: see ``judge_engine``.
JUDGE_ENGINE = VLLMEngineSpec(in_process=True, kv_cache_gib=1, gpu_memory_utilization=0.3)


def judge_engine() -> VLLMEngineSpec:
    """``JUDGE_ENGINE`` with the sweep engine's ``cpu_threads`` (``vllm_engine.engine_threads``), so starting the
    judge leaves the threads the engine runs on as they were."""
    return dataclasses.replace(JUDGE_ENGINE, cpu_threads=engine_threads())


class VLLMJudge(PromptJudge):
    """``judge.kind: vllm``: a ``vllm.LLM`` built once per judge configuration.

    Started through ``engines`` (``start_llm``) like the sweep's own engine, so starting a judge leaves the
    running engine's settings (its ``cpu_weights`` layout, say) as they were.
    """

    def __init__(self, s: JudgeSpec) -> None:
        super().__init__(s)
        self.llm: Any = start_llm(
            judge_engine(), model=self.s.model, dtype=self.s.dtype, enforce_eager=True, seed=0,
            trust_remote_code=False,
        )  # fmt: skip
        self.tok = self.llm.get_tokenizer()
        self.max_len = self.llm.llm_engine.model_config.max_model_len

    def p_second_prompts(self, prompts: Sequence[Messages]) -> list[float]:
        """P(second identifier) for every judge prompt, in one batched vLLM call."""
        from vllm import SamplingParams

        conts = [self.tok.encode(t, add_special_tokens=False) for t in self.s.tokens]
        inputs, ctxlens = [], []
        for msgs in prompts:
            ctx = self.tok.encode(prompt_text(self.tok, msgs), add_special_tokens=False)
            for cont in conts:
                ids = (ctx + cont)[-(self.max_len - 1) :]
                inputs.append(ids)
                ctxlens.append(len(ids) - len(cont))
        params = SamplingParams(temperature=0, prompt_logprobs=1, max_tokens=1, detokenize=False)
        outs = self.llm.generate([{"prompt_token_ids": t} for t in inputs], params, use_tqdm=False)  # TokensPrompt
        lps = [score_rows(t, o.prompt_logprobs, n)[0] for t, o, n in zip(inputs, outs, ctxlens)]
        return [p_second_from_logprobs(lps[i], lps[i + 1]) for i in range(0, len(lps), 2)]
