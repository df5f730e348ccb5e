"""Judge models in this process: transformers (``hf``) or batched vLLM (``vllm``) beside the sweep's engine.

Both give AlpacaEval 2's preference: the probabilities of the two answer identifiers after the classifier
prompt. The ``vllm`` judge sends every judge prompt of a point to vLLM in one batched call. Scoring reuses the
sweep engine's log-likelihood rule (``engines.vllm_lm._score``), so both sides of a record score text the
same way. For a judge bigger than what fits beside the engine, serve it (``vllm serve``) and use ``openai``.
"""
from __future__ import annotations

from typing import Any

from ..engines.vllm_lm import _score
from .judged import _p_second


def prompt_text(tok: Any, msgs: list[dict[str, str]]) -> str:
    """The judge prompt as an in-process judge model reads it: its chat template, or plain text without one."""
    if tok.chat_template:
        return tok.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
    return "\n\n".join(m["content"] for m in msgs) + "\n"


class HFJudge:
    """A transformers causal LM in this process: log-probability of each identifier after the chat prompt."""

    def __init__(self, s: dict[str, Any]) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.s, self.torch = s, torch
        self.device = s["device"] or ("cuda" if torch.cuda.is_available() else "cpu")
        self.tok = AutoTokenizer.from_pretrained(s["model"])
        self.model = AutoModelForCausalLM.from_pretrained(s["model"], dtype=getattr(torch, s["dtype"]))
        self.model = self.model.to(self.device).eval()
        self.max_len = int(getattr(self.model.config, "max_position_embeddings", 2048))

    def probe(self) -> None:
        pass

    def _logprob(self, ctx: list[int], cont: list[int]) -> float:
        ids = (ctx + cont)[-self.max_len:]
        with self.torch.no_grad():
            logits = self.model(self.torch.tensor([ids], device=self.device)).logits[0].float()
        lps = self.torch.log_softmax(logits[-len(cont) - 1:-1], dim=-1)
        return float(sum(lps[i, t] for i, t in enumerate(cont)))

    def p_second(self, msgs: list[dict[str, str]]) -> float:
        ctx = self.tok.encode(prompt_text(self.tok, msgs), add_special_tokens=False)
        first, second = (self._logprob(ctx, self.tok.encode(t, add_special_tokens=False)) for t in self.s["tokens"])
        return _p_second(first, second)


class VLLMJudge:
    """``judge.kind: vllm``: a ``vllm.LLM`` built once per judge configuration."""

    def __init__(self, s: dict[str, Any]) -> None:
        from ..engines.vllm_engine import _configure_env, vllm_distribution

        dist, _ = vllm_distribution()
        _configure_env({"in_process": True, "kv_cache_gib": 1}, dist)
        from vllm import LLM

        kw: dict[str, Any] = dict(model=s["model"], dtype=s["dtype"], enforce_eager=True, seed=0,
                                  trust_remote_code=False, distributed_executor_backend="uni")
        if dist == "vllm":
            kw["gpu_memory_utilization"] = 0.3  # leaves room for the sweep's engine on the same GPU
        self.s, self.llm = s, LLM(**kw)
        self.tok = self.llm.get_tokenizer()
        self.max_len = self.llm.llm_engine.model_config.max_model_len

    def probe(self) -> None:
        """Nothing to reach: the model is loaded in this process."""

    def p_second_many(self, all_msgs: list[list[dict[str, str]]]) -> list[float]:
        """P(second identifier) for every judge prompt, in one batched vLLM call."""
        from vllm import SamplingParams, TokensPrompt

        conts = [self.tok.encode(t, add_special_tokens=False) for t in self.s["tokens"]]
        inputs, ctxlens = [], []
        for msgs in all_msgs:
            ctx = self.tok.encode(prompt_text(self.tok, msgs), add_special_tokens=False)
            for cont in conts:
                ids = (ctx + cont)[-(self.max_len - 1):]
                inputs.append(ids)
                ctxlens.append(len(ids) - len(cont))
        params = SamplingParams(temperature=0, prompt_logprobs=1, max_tokens=1, detokenize=False)
        outs = self.llm.generate([TokensPrompt(prompt_token_ids=t) for t in inputs], params, use_tqdm=False)
        lps = [_score(t, o.prompt_logprobs, n)[0] for t, o, n in zip(inputs, outs, ctxlens)]
        return [_p_second(lps[i], lps[i + 1]) for i in range(0, len(lps), 2)]

