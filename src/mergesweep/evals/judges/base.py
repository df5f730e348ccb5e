"""What a judge is: it takes (instruction, output_1, output_2) triples and returns P(output_2 is better).

Every judge kind implements ``Judge``; the scoring code (``scoring.py``) only ever calls ``probe`` and
``p_second``, so it does not care whether the preference comes from an HTTP endpoint, a model in this
process or a reward model. LLM judges share ``PromptJudge``: the configured prompt filled in once per
triple and split into chat messages, then the probabilities of the two answer identifiers.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence

from .settings import messages, template
from .spec import JudgeSpec

Triple = tuple[str, str, str]  # (instruction, output_1, output_2)
Messages = list[dict[str, str]]


class Judge(ABC):
    """A pairwise judge built from a checked ``JudgeSpec`` (``spec.judge_spec(part).validate()``)."""

    def __init__(self, s: JudgeSpec) -> None:
        self.s = s

    def probe(self) -> None:  # noqa: B027  (a no-op is the right default: most judges have nothing to reach)
        """Reach the judge before any engine starts (an HTTP endpoint); a judge in this process has nothing to do."""

    @abstractmethod
    def p_second(self, triples: Sequence[Triple]) -> list[float]:
        """P(output_2 is better than output_1) per triple, in order. Raises JudgeError when the judge gives up."""


class PromptJudge(Judge):
    """An LLM judge: the classifier prompt per triple, then P(second identifier) among the two identifiers."""

    def __init__(self, s: JudgeSpec) -> None:
        super().__init__(s)
        self.template = template(self.s.prompt)

    def p_second(self, triples: Sequence[Triple]) -> list[float]:
        return self.p_second_prompts([messages(self.template, *t) for t in triples])

    @abstractmethod
    def p_second_prompts(self, prompts: Sequence[Messages]) -> list[float]:
        """P(second identifier) per filled-in judge prompt."""


def p_second_from_logprobs(lp_first: float, lp_second: float) -> float:
    """P(second identifier) among the two (AlpacaEval's logprob parser); 0.5 when the judge gave neither."""
    if lp_first == -math.inf and lp_second == -math.inf:
        return 0.5
    top = max(lp_first, lp_second)
    a, b = math.exp(lp_first - top), math.exp(lp_second - top)
    return b / (a + b)
