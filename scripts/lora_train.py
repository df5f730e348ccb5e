"""The LoRA training loop shared by ``make_instruct_lora.py``, ``make_domain_lora.py`` and ``make_task_lora.py``.

Why one module: the three adapters of the miniature studies (instruction sibling, continued pre-training, task
LoRA) differ only in their data and their loss weights; the model set-up, batching, optimiser, schedule, saving
and the determinism that the tests check must be one piece of code, or a fix to one would miss the others.

A row is ``(token ids, start)``: the loss covers the tokens from ``start`` on (the answer of a chat or a task
prompt; every token after ``<bos>`` for plain text). A run is deterministic for its seed on one machine: the
torch seed is set before the LoRA weights are drawn, and batches come in an order drawn from ``random.Random``.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
REAL_BASE_HUB_ID = "google/gemma-3-270m"

Row = tuple[list[int], int]  # token ids, where the trained tokens start
Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]  # ids, mask, labels, weights


@dataclass
class Run:
    """A tokenizer and a LoRA-wrapped model, set up under the run's seed (``start``)."""

    tok: Any
    model: Any
    rng: random.Random  # the batch order's generator


def start(base: Path, seed: int, first_layer: int, rank: int = 16, alpha: int = 32) -> Run:
    """Seed torch and Python, load ``base`` in float32 and wrap layers ``first_layer``.. in a fresh LoRA.

    Why the seed comes first: ``get_peft_model`` draws the LoRA ``A`` matrices from torch's generator.
    """
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(seed)
    rng = random.Random(seed)
    tok = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32, attn_implementation="eager")
    layers = list(range(first_layer, model.config.num_hidden_layers))
    if not layers:
        raise SystemExit(f"--first-layer {first_layer}: {base} has {model.config.num_hidden_layers} layers")
    cfg = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=0.0, target_modules=TARGETS, layers_to_transform=layers)
    return Run(tok, get_peft_model(model, cfg), rng)


def encode_pair(tok, prompt: str, answer: str, max_len: int) -> Row | None:
    """Ids of ``prompt`` + ``answer`` (each tokenised alone, no special tokens added) and where the answer starts;
    None if the pair does not fit ``max_len``."""
    p_ids = tok(prompt, add_special_tokens=False).input_ids
    a_ids = tok(answer, add_special_tokens=False).input_ids
    ids = p_ids + a_ids
    return (ids, len(p_ids)) if len(ids) <= max_len else None


def encode_chat(tok, ex: dict, max_len: int) -> Row | None:
    """One chat (``prompt``, ``response``) in the model's chat template; the answer ends with ``<end_of_turn>``
    (so a model trained on it learns to stop)."""
    prompt = tok.apply_chat_template(
        [{"role": "user", "content": ex["prompt"]}], tokenize=False, add_generation_prompt=True
    )
    return encode_pair(tok, prompt, ex["response"] + "<end_of_turn>\n", max_len)


def collate(rows: Sequence[Row], group: Sequence[int], pad: int, weights: Sequence[Sequence[float]] | None) -> Batch:
    """Rows ``group`` (in that order) right-padded into one batch; labels -100 outside the trained tokens."""
    width = max(len(rows[i][0]) for i in group)
    ids = torch.full((len(group), width), pad)
    mask = torch.zeros((len(group), width), dtype=torch.long)
    labels = torch.full((len(group), width), -100)
    w = torch.zeros((len(group), width)) if weights is not None else None
    for r, i in enumerate(group):
        seq, begin = rows[i]
        ids[r, : len(seq)] = torch.tensor(seq)
        mask[r, : len(seq)] = 1
        labels[r, begin : len(seq)] = torch.tensor(seq[begin:])
        if w is not None and weights is not None:
            w[r, begin : len(seq)] = torch.tensor(weights[i], dtype=torch.float32)
    return ids, mask, labels, w


def length_groups(rows: Sequence[Row], size: int) -> list[list[int]]:
    """Row indices in groups of ``size`` rows of similar length (less padding)."""
    order = sorted(range(len(rows)), key=lambda i: len(rows[i][0]))
    return [order[i : i + size] for i in range(0, len(order), size)]


def batches(
    rows: Sequence[Row],
    size: int,
    pad: int,
    rng: random.Random | None,
    weights: Sequence[Sequence[float]] | None = None,
) -> Iterator[Batch]:
    """Batches of similar length, in a seeded order (``rng``; None keeps length order, for evaluation).
    ``weights[i]`` (one per trained token of row ``i``) come back aligned with the labels."""
    groups = length_groups(rows, size)
    if rng is not None:
        rng.shuffle(groups)
    for g in groups:
        yield collate(rows, g, pad, weights)


def _backbone_and_head(model) -> tuple[Any, Any]:
    """The decoder stack and the output head, under a PEFT wrapper or not."""
    from peft import PeftModel

    inner: Any = model.base_model.model if isinstance(model, PeftModel) else model
    return inner.model, inner.lm_head


def target_logits(model, ids: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """(logits, targets, positions) at the trained positions only.

    Why not ``model(...).logits``: the head has 262k rows; applying it only where a label is set cuts a step's
    time about in half when only answers are trained.
    """
    backbone, head = _backbone_and_head(model)
    hidden = backbone(input_ids=ids, attention_mask=mask).last_hidden_state
    target = labels[:, 1:]
    where = target != -100
    logits = head(hidden[:, :-1][where]).float()
    return logits, target[where], where


def guided_loss(logits: torch.Tensor, targets: torch.Tensor, confidence: torch.Tensor) -> torch.Tensor:
    """GIFT's guided loss: each target token's cross-entropy weighted by a guide model's confidence in that token
    (its probability under the instruct model), as a weighted mean.

    Why a weighted mean (sum of weights below the line) and not a plain token mean: the instruct sibling gives
    the arithmetic answers ~0.1 on average, so a token mean would shrink every step about tenfold, and guided
    and plain adapters "at the same budget" would differ mostly in step size. Normalised, the guide only moves
    the weight between tokens (toward what the model the adapter is merged into already finds likely). With
    every confidence equal (all 1, say) this is exactly the plain mean cross-entropy.
    """
    ce = torch.nn.functional.cross_entropy(logits, targets, reduction="none")
    w = confidence.to(ce.dtype)
    return (w * ce).sum() / w.sum().clamp_min(1e-12)


def answer_loss(
    model, ids: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean next-token cross-entropy over the trained tokens; ``weights`` (aligned with labels) make it guided."""
    logits, target, where = target_logits(model, ids, mask, labels)
    if weights is None:
        return torch.nn.functional.cross_entropy(logits, target)
    return guided_loss(logits, target, weights[:, 1:][where])


@torch.no_grad()
def row_losses(model, rows: Sequence[Row], batch: int, pad: int) -> list[tuple[float, int]]:
    """Each row's summed cross-entropy over its trained tokens and their count, in ``rows``' order: what a CI over
    rows (the held-out chunks) resamples."""
    was_training = model.training
    model.eval()
    out: list[tuple[float, int]] = [(0.0, 0)] * len(rows)
    for group in length_groups(rows, batch):
        ids, mask, labels, _ = collate(rows, group, pad, None)
        logits, target, where = target_logits(model, ids, mask, labels)
        ce = torch.nn.functional.cross_entropy(logits, target, reduction="none")
        sums = torch.zeros(len(group), dtype=ce.dtype).index_add_(0, where.nonzero()[:, 0], ce)  # row-major
        for r, i in enumerate(group):
            out[i] = (float(sums[r]), int(where[r].sum()))
    model.train(was_training)
    return out


def pooled(losses: Sequence[tuple[float, int]]) -> float:
    """Token-weighted mean of ``row_losses``' (sum, count) pairs."""
    return sum(s for s, _ in losses) / max(1, sum(n for _, n in losses))


def mean_loss(model, rows: Sequence[Row], batch: int, pad: int) -> float:
    """Token-weighted mean cross-entropy over ``rows`` (e.g. a held-out split)."""
    return pooled(row_losses(model, rows, batch, pad))


@torch.no_grad()
def token_confidence(guide, rows: Sequence[Row], batch: int, pad: int) -> list[list[float]]:
    """The guide model's probability of each trained token of each row (GIFT's weights), row by row.

    Why once, before training: the guide is frozen, so its confidences never change; one forward pass per
    example instead of one per step.
    """
    guide.eval()
    out: list[list[float]] = [[] for _ in rows]
    for group in length_groups(rows, batch):
        ids, mask, labels, _ = collate(rows, group, pad, None)
        logits, target, where = target_logits(guide, ids, mask, labels)
        probs = torch.softmax(logits, dim=-1).gather(1, target[:, None])[:, 0]
        for i, chunk in zip(group, torch.split(probs, where.sum(dim=1).tolist())):
            out[i] = [round(float(p), 6) for p in chunk]
    return out


def schedule(opt: torch.optim.Optimizer, steps: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over the first tenth of the steps, then cosine decay to zero."""
    warm = max(1, steps // 10)
    return torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / warm if s < warm else 0.5 * (1 + math.cos(math.pi * (s - warm) / max(1, steps - warm)))
    )


def fit(
    run: Run,
    rows: Sequence[Row],
    steps: int,
    batch: int,
    lr: float,
    weights: Sequence[Sequence[float]] | None = None,
    say: Callable[[str], None] = lambda s: print(s, flush=True),
) -> tuple[list[float], float]:
    """AdamW on the LoRA parameters for ``steps`` steps (epochs repeat as needed); (losses, seconds)."""
    model = run.model
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    sched = schedule(opt, steps)
    step, t0, losses = 0, time.time(), []
    model.train()
    while step < steps:
        for ids, mask, labels, w in batches(rows, batch, run.tok.pad_token_id, run.rng, weights):
            loss = answer_loss(model, ids, mask, labels, w)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            opt.zero_grad()
            losses.append(round(loss.item(), 4))
            step += 1
            el = time.time() - t0
            say(
                f"step {step}/{steps} loss {loss.item():.3f} {el / step:.1f} s/step, "
                f"~{el / step * (steps - step) / 60:.0f} min left"
            )
            if step >= steps:
                break
    return losses, time.time() - t0


def real_base() -> Path:
    """The folder ``mergesweep setup-real`` converts google/gemma-3-270m into: every script's default base."""
    from mergesweep.tools.real_models import SIBLING_BASE, models_dir

    return models_dir() / SIBLING_BASE


def base_name(base: Path) -> str:
    """How an adapter names its base: the hub id for the real base, else the folder's name (never this
    machine's path)."""
    return REAL_BASE_HUB_ID if Path(base).resolve() == real_base().resolve() else Path(base).name


def record(a: Any, seconds: float, losses: list[float], **fields: Any) -> dict:
    """What ``training.json`` holds: the recipe of ``a`` (parsed arguments), a script's own ``fields``, the
    wall time and every step's loss."""
    return {
        "seed": a.seed,
        "steps": a.steps,
        "batch": a.batch,
        "lr": a.lr,
        **fields,
        "max_len": a.max_len,
        "first_layer": a.first_layer,
        "train_seconds": round(seconds, 1),
        "threads": torch.get_num_threads(),
        "losses": losses,
    }


def tidy_adapter(out: Path, base: str = REAL_BASE_HUB_ID) -> None:
    """Name the base by its hub id, not this machine's cache path, drop PEFT's template model card, and sort
    ``target_modules`` (PEFT writes a set, in an order that changes with the process's hash seed)."""
    cfg_path = out / "adapter_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["base_model_name_or_path"] = base
    if isinstance(cfg.get("target_modules"), list):
        cfg["target_modules"] = sorted(cfg["target_modules"])
    cfg_path.write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")
    (out / "README.md").unlink(missing_ok=True)


def save(run: Run, out: Path, base: Path, info: dict) -> None:
    """The adapter (safetensors, tidied config naming ``base``) and ``training.json`` (``record``'s)."""
    run.model.save_pretrained(out, safe_serialization=True)
    tidy_adapter(Path(out), base_name(base))
    (Path(out) / "training.json").write_text(json.dumps(info, indent=1) + "\n")
