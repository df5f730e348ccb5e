"""Which tensor names are embeddings and output heads: the one place these name rules live.

Why one module: the same question (is this tensor the vocabulary embedding? the LM head?) is asked when a
checkpoint drops a tied head copy, when two checkpoints may differ only in vocabulary rows, when a merge method
scales model parts differently, and when the vLLM worker re-sends a tied head. Four copies of the rules drifted
apart once; now they all call these functions. Names follow Llama/Qwen/Mistral/Gemma (``model.embed_tokens``,
``lm_head``) and GPT-2 (``transformer.wte``/``wpe``) conventions; matching is case-insensitive.
"""

from __future__ import annotations

from collections.abc import Iterable

TIED_HEAD = "lm_head.weight"  # what a tied checkpoint leaves out and some exporters still save
_POSITION_SUFFIXES = ("wpe.weight", "embed_positions.weight")


def is_embedding(name: str) -> bool:
    """An input embedding (token or position): the ``embed`` part for per-part merge methods."""
    low = name.lower()
    return "embed" in low or low.endswith(("wte.weight", "wpe.weight"))


def is_position_embedding(name: str) -> bool:
    """A learned position table (GPT-2 ``wpe``, OPT ``embed_positions``): rows are positions, not tokens."""
    return name.lower().endswith(_POSITION_SUFFIXES)


def is_head(name: str) -> bool:
    """The output projection onto the vocabulary (``lm_head``, or ``output.weight`` in InternLM-style models)."""
    low = name.lower()
    return "lm_head" in low or low.endswith("output.weight")


def is_vocab_sized(name: str) -> bool:
    """A tensor with one row per vocabulary entry: two checkpoints may differ in its row count only."""
    return is_head(name) or (is_embedding(name) and not is_position_embedding(name))


def tied_head_copies(names: Iterable[str]) -> list[str]:
    """Saved head tensors that are copies of the token embedding in a tied model ([] when there is none).

    Only when a token embedding is present too: a head is never dropped from a checkpoint that lacks the
    tensor it would be tied to.
    """
    names = list(names)
    heads = [n for n in names if n.endswith(TIED_HEAD)]
    has_embedding = any(is_embedding(n) and not is_position_embedding(n) and not is_head(n) for n in names)
    return heads if has_embedding else []


def tied_head_name(name: str) -> str | None:
    """The head name to send alongside token embedding ``name`` for a tied model, else None."""
    if name.endswith("embed_tokens.weight"):
        return name.replace("model.embed_tokens", "lm_head")
    return None
