"""A reward-model judge: the cheaper alternative to an LLM judge for pairwise win rates.

A reward model (a sequence classifier with one output, e.g. a Skywork/ArmoRM-style RM) scores each
(instruction, answer) on its own; the preference follows Bradley-Terry, ``P(second better) =
sigmoid(r(second) - r(first))``. One forward per answer instead of a generated verdict per pair, and no
position bias by construction (both orders give complementary probabilities), which the record's
``second_slot_bias`` shows as 0.
"""
from __future__ import annotations

import math
from typing import Any


class RewardJudge:
    """``judge.kind: reward``: a transformers sequence-classification reward model in this process."""

    def __init__(self, s: dict[str, Any]) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.torch = torch
        self.device = s["device"] or ("cuda" if torch.cuda.is_available() else "cpu")
        self.tok = AutoTokenizer.from_pretrained(s["model"])
        self.model = AutoModelForSequenceClassification.from_pretrained(
            s["model"], dtype=getattr(torch, s["dtype"]), num_labels=1).to(self.device).eval()
        if self.model.config.pad_token_id is None:
            self.model.config.pad_token_id = self.tok.pad_token_id or self.tok.eos_token_id
        self.max_len = int(getattr(self.model.config, "max_position_embeddings", 2048))
        self._cache: dict[tuple[str, str], float] = {}

    def probe(self) -> None:
        """Nothing to reach: the model is loaded in this process."""

    def text(self, instruction: str, answer: str) -> str:
        """The conversation as the reward model was trained to read it (its chat template when it has one)."""
        if self.tok.chat_template:
            return self.tok.apply_chat_template([{"role": "user", "content": instruction},
                                                 {"role": "assistant", "content": answer}], tokenize=False)
        return f"{instruction}\n\n{answer}"

    def reward(self, instruction: str, answer: str) -> float:
        """Scalar reward, cached: the reference answer is scored once although every item uses it twice."""
        key = (instruction, answer)
        if key not in self._cache:
            ids = self.tok.encode(self.text(instruction, answer), add_special_tokens=False)[-self.max_len:]
            with self.torch.no_grad():
                out = self.model(self.torch.tensor([ids], device=self.device)).logits
            self._cache[key] = float(out.reshape(-1)[0])
        return self._cache[key]

    def p_second_pair(self, instruction: str, first: str, second: str) -> float:
        """Bradley-Terry probability that ``second`` is the better answer."""
        d = self.reward(instruction, second) - self.reward(instruction, first)
        return 1.0 / (1.0 + math.exp(-d)) if d > -700 else 0.0
