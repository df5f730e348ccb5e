"""``judge.kind: reward``: a reward model, the cheaper alternative to an LLM judge for pairwise win rates.

A reward model (a sequence classifier with one output, e.g. a Skywork/ArmoRM-style RM) scores each
(instruction, answer) on its own; the preference follows Bradley-Terry, ``P(second better) =
sigmoid(r(second) - r(first))``. One forward per answer instead of a generated verdict per pair, and no
position bias by construction (both orders give complementary probabilities), which the record's
``second_slot_bias`` shows as 0. The judge prompt is not used.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from .base import Judge, Triple
from .local import load_transformers
from .spec import JudgeSpec


class RewardJudge(Judge):
    """A transformers sequence-classification reward model in this process."""

    def __init__(self, s: JudgeSpec) -> None:
        super().__init__(s)
        import torch
        from transformers import AutoModelForSequenceClassification

        self.torch = torch
        self.tok, self.model, self.device, self.max_len = load_transformers(
            self.s, AutoModelForSequenceClassification, num_labels=1
        )
        if self.model.config.pad_token_id is None:
            self.model.config.pad_token_id = self.tok.pad_token_id or self.tok.eos_token_id
        self._cache: dict[tuple[str, str], float] = {}

    def text(self, instruction: str, answer: str) -> str:
        """The conversation as the reward model was trained to read it (its chat template when it has one)."""
        if self.tok.chat_template:
            chat = [{"role": "user", "content": instruction}, {"role": "assistant", "content": answer}]
            return str(self.tok.apply_chat_template(chat, tokenize=False))
        return f"{instruction}\n\n{answer}"

    def reward(self, instruction: str, answer: str) -> float:
        """Scalar reward, cached: the reference answer is scored once although every item uses it twice."""
        key = (instruction, answer)
        if key not in self._cache:
            ids = self.tok.encode(self.text(instruction, answer), add_special_tokens=False)[-self.max_len :]
            with self.torch.no_grad():
                out = self.model(self.torch.tensor([ids], device=self.device)).logits
            self._cache[key] = float(out.reshape(-1)[0])
        return self._cache[key]

    def p_second(self, triples: Sequence[Triple]) -> list[float]:
        """Bradley-Terry probability that ``output_2`` is the better answer, per triple."""
        out = []
        for instruction, first, second in triples:
            d = self.reward(instruction, second) - self.reward(instruction, first)
            out.append(1.0 / (1.0 + math.exp(-d)) if d > -700 else 0.0)
        return out
