"""Train the task LoRA of the adapter-transfer miniature (issue 22, study 2) on the real base, on this CPU.

Task: two-number arithmetic word problems with an exact answer (``mergesweep.evals.arith``; train facts only,
the lm-eval task ``arith_word`` scores the disjoint test facts). Prompt ``Question: ...\\nAnswer:``, target
`` <n>`` plus a newline (so the model stops); loss on the target tokens only. LoRA r=16, alpha=32 on every
attention and MLP projection of layers ``--first-layer``..17; AdamW, linear warm-up then cosine decay (the loop
is ``lora_train``'s, shared with the instruct and domain LoRAs); fixed seed, deterministic on one machine.

``--guided`` is GIFT's idea (arXiv 2605.01256): each target token's loss is weighted by the instruct model's
confidence in it (its probability of that token, computed once before training since the instruct model is
frozen), as a weighted mean (``lora_train.guided_loss`` says why), so the adapter leans toward the tokens the
model it will be merged into finds likely. This is the issue's reading of the paper's "confidence signals", not
its code. Guided and unguided runs with the same seed see the same examples in the same order and start from
the same LoRA weights; only the weights of the loss differ.

CPU budget (2 cores, measured): the plain run takes 326 s for its 150 steps on idle cores (2.2 s a step: batch 16,
~40 tokens a row); the guided run 429 s of training after ~5 min scoring the 2,400 examples with the instruct
model, ~12 min in all. A rerun of the plain recipe gave the committed adapter byte for byte (same sha256 of
``adapter_model.safetensors``; the committed ``training.json`` records 3,235 s because that run shared the cores
with a CI run). The real base answers 0 of the first 40 test problems before training.

    python scripts/make_task_lora.py --out data/real/gemma3_270m_arith_lora
    python scripts/make_task_lora.py --guided --out data/real/gemma3_270m_arith_gift_lora
    python scripts/make_task_lora.py --steps 2 --out /tmp/task_smoke                  # the determinism check
The guide is the sixth instruct sibling (``real_models.SIBLING_V6``), the model study 2 merges the adapters into:
``mergesweep -m +experiment=mini_adapter_transfer``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
import lora_train
from mergesweep.evals.arith import problems, prompt
from mergesweep.tools.real_models import SIBLING_V6, models_dir


def rows(tok, examples: list[dict], max_len: int) -> list[lora_train.Row]:
    """Prompt + exact answer per problem, the answer (and its closing newline) as the trained tokens."""
    bos = [tok.bos_token_id] if tok.bos_token_id is not None else []
    out = []
    for ex in examples:
        pair = lora_train.encode_pair(tok, prompt(ex["question"]), f" {ex['answer']}\n", max_len - len(bos))
        if pair:
            out.append((bos + pair[0], pair[1] + len(bos)))
    return out


def confidences(instruct: Path, data: list[lora_train.Row], pad: int) -> list[list[float]]:
    """GIFT's weights: the instruct model's probability of every target token (loaded, used, released)."""
    from transformers import AutoModelForCausalLM

    guide = AutoModelForCausalLM.from_pretrained(instruct, dtype=torch.float32, attn_implementation="eager")
    weights = lora_train.token_confidence(guide, data, 32, pad)
    del guide
    return weights


def train(a: argparse.Namespace) -> dict:
    """One run; returns what ``training.json`` holds."""
    base = a.base or lora_train.real_base()
    run = lora_train.start(base, a.seed, a.first_layer)
    examples = problems(a.examples, a.seed, "train")
    data = rows(run.tok, examples, a.max_len)
    weights = confidences(a.instruct or models_dir() / SIBLING_V6, data, run.tok.pad_token_id) if a.guided else None
    losses, seconds = lora_train.fit(run, data, a.steps, a.batch, a.lr, weights)
    flat = [w for ws in weights or [] for w in ws]
    info = lora_train.record(
        a,
        seconds,
        losses,
        task="arith_word (mergesweep.evals.arith, train facts)",
        guided=bool(a.guided),
        mean_confidence=round(sum(flat) / len(flat), 4) if flat else None,
        examples=a.examples,
        examples_used=len(data),
        data_sha256=hashlib.sha256(json.dumps(examples, sort_keys=True).encode()).hexdigest(),
    )
    lora_train.save(run, a.out, base, info)
    return info


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--base", type=Path, help="the base folder (default: mergesweep setup-real's gemma-3-270m)")
    ap.add_argument("--instruct", type=Path, help="the guide for --guided (default: the sixth sibling, study 2's)")
    ap.add_argument("--guided", action="store_true", help="weight each target token by the instruct's confidence")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--examples", type=int, default=2400)
    ap.add_argument("--max-len", type=int, default=64)
    ap.add_argument("--first-layer", type=int, default=0)
    info = train(ap.parse_args(argv))
    print(f"done: {info['steps']} steps in {info['train_seconds']} s, final loss {info['losses'][-1]}")


if __name__ == "__main__":
    main()
