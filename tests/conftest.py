"""Shared fixtures: small random checkpoint pairs of real architectures, saved as real safetensors dirs.

``head_dim`` is 32 because vLLM's CPU attention accepts nothing smaller; weights are scaled up from the
default init so that different merge strengths give visibly different logprobs.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
REPO = Path(__file__).resolve().parents[1]
os.environ.setdefault("NLTK_DATA", str(REPO / "data" / "nltk"))
TOY = REPO / "data" / "toy_pair"


def tiny_config(arch: str, tied: bool, vocab: int = 2048):
    """A 2-layer Llama or Qwen2 config small enough for CPU tests."""
    from transformers import LlamaConfig, Qwen2Config

    cls = {"llama": LlamaConfig, "qwen2": Qwen2Config}[arch]
    return cls(
        vocab_size=vocab,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        head_dim=32,
        max_position_embeddings=512,
        tie_word_embeddings=tied,
        rms_norm_eps=1e-6,
        bos_token_id=None,
        eos_token_id=TOKEN_EOS,
        pad_token_id=TOKEN_EOS,
        torch_dtype="float32",
    )


TOKEN_EOS = 3


def save_model(cfg, path: Path, seed: int, scale: float = 4.0, like: dict | None = None, noise: float = 0.0) -> Path:
    """Random weights (or ``like`` + noise) saved with the toy pair's tokenizer so engines can load it."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(cfg).float()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if like is not None:
                p.copy_(like[name] + noise * torch.randn_like(p))
            elif "norm" not in name:
                p.mul_(scale)
    model.save_pretrained(path, safe_serialization=True)
    AutoTokenizer.from_pretrained(TOY / "instruct").save_pretrained(path)
    return path


def make_pair(root: Path, arch: str, tied: bool) -> tuple[Path, Path]:
    """(base dir, instruct dir): instruct = base + noise, same architecture and tokenizer."""
    cfg = tiny_config(arch, tied)
    base = save_model(cfg, root / f"{arch}-{'tied' if tied else 'untied'}-base", seed=0)
    from safetensors.torch import load_file

    like = load_file(base / "model.safetensors")
    if tied:
        like["lm_head.weight"] = like["model.embed_tokens.weight"]
    inst = save_model(cfg, root / f"{arch}-{'tied' if tied else 'untied'}-instruct", seed=1, like=like, noise=0.3)
    return base, inst


@pytest.fixture(scope="session")
def pairs(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """Two real-architecture pairs: Qwen2 with tied embeddings, Llama with an untied head."""
    root = tmp_path_factory.mktemp("pairs")
    return {"qwen2_tied": make_pair(root, "qwen2", True), "llama_untied": make_pair(root, "llama", False)}
