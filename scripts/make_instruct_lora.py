"""Train the LoRA that makes gemma-3-270m's instruct sibling (``model=gemma3_270m``'s ``instruct``), on this CPU.

Recipe (fixed seed, deterministic on one machine): ``if_train_data.build(n, seed)`` chats (everyday requests
from this project's templates, answered by SmolLM2-135M-Instruct and reshaped to meet IFEval-kind constraints,
checked by lm-eval's own checkers; no evaluation prompt, see ``tests/test_real_training_data.py``) in Gemma's
chat template; LoRA r=16, alpha=32 on every attention and MLP
projection of layers ``--first-layer``..17; AdamW, lr 1e-3, linear warm-up then cosine decay; loss on the answer
tokens only (including the closing ``<end_of_turn>``, so the sibling learns to stop).

Why the lower layers stay frozen and logits are taken only at answer positions: a step's cost here is the
frozen backward pass and the 262k-row output head; both cut the step time about in half at the same batch.

    python scripts/make_instruct_lora.py --out data/real/gemma3_270m_if_lora          # ~45 min on 2 cores
    python scripts/make_instruct_lora.py --steps 2 --out /tmp/lora_smoke               # the determinism check
Then ``mergesweep setup-real`` builds the instruct folder from base + this adapter.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
from if_train_data import build
from mergesweep.real_models import SIBLING_BASE, models_dir

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def encode(tok, ex: dict, max_len: int) -> tuple[list[int], int] | None:
    """Token ids of one chat and where the answer starts; None if it does not fit ``max_len``."""
    prompt = tok.apply_chat_template(
        [{"role": "user", "content": ex["prompt"]}], tokenize=False, add_generation_prompt=True
    )
    p_ids = tok(prompt, add_special_tokens=False).input_ids
    a_ids = tok(ex["response"] + "<end_of_turn>\n", add_special_tokens=False).input_ids
    ids = p_ids + a_ids
    return (ids, len(p_ids)) if len(ids) <= max_len else None


def batches(rows: list[tuple[list[int], int]], size: int, pad: int, rng: random.Random):
    """Batches of similar length (less padding), in a seeded order."""
    order = sorted(range(len(rows)), key=lambda i: len(rows[i][0]))
    groups = [order[i : i + size] for i in range(0, len(order), size)]
    rng.shuffle(groups)
    for g in groups:
        width = max(len(rows[i][0]) for i in g)
        ids = torch.full((len(g), width), pad)
        mask = torch.zeros((len(g), width), dtype=torch.long)
        labels = torch.full((len(g), width), -100)
        for r, i in enumerate(g):
            seq, start = rows[i]
            ids[r, : len(seq)] = torch.tensor(seq)
            mask[r, : len(seq)] = 1
            labels[r, start : len(seq)] = torch.tensor(seq[start:])
        yield ids, mask, labels


def answer_loss(model, ids: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy over answer tokens, with the head applied only where it is needed."""
    hidden = model.base_model.model.model(input_ids=ids, attention_mask=mask).last_hidden_state
    target = labels[:, 1:]
    where = target != -100
    logits = model.base_model.model.lm_head(hidden[:, :-1][where]).float()
    return torch.nn.functional.cross_entropy(logits, target[where])


def train(a: argparse.Namespace) -> dict:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(a.seed)
    rng = random.Random(a.seed)
    base = a.base or models_dir() / SIBLING_BASE
    tok = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32, attn_implementation="eager")
    layers = list(range(a.first_layer, model.config.num_hidden_layers))
    cfg = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules=TARGETS, layers_to_transform=layers)
    model = get_peft_model(model, cfg)
    chats = build(a.examples, a.seed)
    data_sha256 = hashlib.sha256("".join(json.dumps(c, sort_keys=True) + "\n" for c in chats).encode()).hexdigest()
    data = [e for e in (encode(tok, ex, a.max_len) for ex in chats) if e]
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=a.lr, weight_decay=0.0)
    warm = max(1, a.steps // 10)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda s: (s + 1) / warm if s < warm else 0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, a.steps - warm))),
    )
    step, t0, losses = 0, time.time(), []
    model.train()
    while step < a.steps:
        for ids, mask, labels in batches(data, a.batch, tok.pad_token_id, rng):
            loss = answer_loss(model, ids, mask, labels)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            opt.zero_grad()
            losses.append(round(loss.item(), 4))
            step += 1
            el = time.time() - t0
            print(
                f"step {step}/{a.steps} loss {loss.item():.3f} {el / step:.1f} s/step, "
                f"~{el / step * (a.steps - step) / 60:.0f} min left",
                flush=True,
            )
            if step >= a.steps:
                break
    model.save_pretrained(a.out, safe_serialization=True)
    tidy_adapter(Path(a.out))
    info = {
        "seed": a.seed,
        "steps": a.steps,
        "batch": a.batch,
        "lr": a.lr,
        "examples": a.examples,
        "examples_used": len(data),
        "data_sha256": data_sha256,
        "max_len": a.max_len,
        "first_layer": a.first_layer,
        "train_seconds": round(time.time() - t0, 1),
        "threads": torch.get_num_threads(),
        "losses": losses,
    }
    (Path(a.out) / "training.json").write_text(json.dumps(info, indent=1) + "\n")
    return info


def tidy_adapter(out: Path) -> None:
    """Name the base by its hub id, not this machine's cache path, and drop PEFT's template model card."""
    cfg_path = out / "adapter_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["base_model_name_or_path"] = "google/gemma-3-270m"
    cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    (out / "README.md").unlink(missing_ok=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--base", type=Path, help="the base folder (default: mergesweep setup-real's gemma-3-270m)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--examples", type=int, default=1200)
    ap.add_argument("--max-len", type=int, default=256)
    ap.add_argument("--first-layer", type=int, default=6)
    info = train(ap.parse_args())
    print(f"done: {info['steps']} steps in {info['train_seconds']} s, final loss {info['losses'][-1]}")


if __name__ == "__main__":
    main()
