#!/usr/bin/env python
"""Train the embedded toy base/instruct pair and write its evaluation suites.

Why this exists: mergesweep must run end to end on a CPU-only machine with no hub access, and the
phenomenon it studies (instruction tuning costs in-context learning) must show for real. So the project
trains its own pair here, in about ten minutes on two cores:

* **base**: a Qwen2ForCausalLM (hidden 128, 3 layers, head_dim 32: the smallest vLLM's CPU attention
  accepts) pretrained on documents of ``key label`` lines whose key->label map is random per document
  (predicting a repeated key's label needs in-context lookup), plain prose, and some plain chat transcripts.
  Its induction circuit (layers 0-1, head 0) is planted by hand and frozen during pretraining
  (``plant_induction_circuit``): learned from scratch it did not form within this CPU budget.
* **instruct**: the base fine-tuned (loss on assistant tokens only) on chat answers that obey
  IFEval-style verifiable instructions (lowercase, capitals, end phrase, keywords, quotes, title, ...).

It also writes the matching suites (``data/toy_suites``): few-shot recall tasks with fresh random maps
(scored by lm-eval as multiple choice, demonstrations drawn by lm-eval's own few-shot sampler) and
a toy IFEval file in IFEval's schema (scored by lm-eval's IFEval checkers). The text (documents, chats, suites)
is drawn in ``toy_corpus.py``; this script plants the circuit, trains the pair and saves it.

Run: ``python scripts/make_toy_pair.py --out data`` (about 12 minutes on 2 cores; ``--quick`` for a
seconds-long smoke run). Training is seeded; bit-identical reruns are not promised across torch builds.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the corpus module beside this script
from toy_corpus import CHAT_TEMPLATE, SPECIAL, key_pool, pretrain_documents, sft_documents, write_suites


def train_tokenizer(texts: list[str], vocab: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(
        texts,
        trainers.BpeTrainer(
            vocab_size=vocab, special_tokens=SPECIAL, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
        ),
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=None, eos_token="<|end|>", unk_token=None, pad_token="<|endoftext|>"
    )
    fast.add_special_tokens({"additional_special_tokens": SPECIAL[1:3]})
    fast.chat_template = CHAT_TEMPLATE
    return fast


@torch.no_grad()
def plant_previous_token_head(model, layer: int = 0, head: int = 0, scale: float = 9.0) -> None:
    """Make one head attend to the previous token whatever the content (constant query/key biases + RoPE).

    With zero query/key weights, ``q_m . k_n = sum_j c^2 cos((m - n - 1) theta_j)`` over the four
    fastest-rotating RoPE pairs, which peaks sharply at ``n = m - 1``.
    """
    attn = model.model.layers[layer].self_attn
    cfg = model.config
    hd = cfg.hidden_size // cfg.num_attention_heads
    base = (getattr(cfg, "rope_parameters", None) or {}).get("rope_theta") or getattr(cfg, "rope_theta", 10000.0)
    theta = base ** (-torch.arange(0, hd, 2, dtype=torch.float32) / hd)
    q, k = torch.zeros(hd), torch.zeros(hd)
    for j in range(4):
        q[j] = scale
        k[j], k[j + hd // 2] = scale * torch.cos(theta[j]), scale * torch.sin(theta[j])
    rows = slice(head * hd, (head + 1) * hd)
    attn.q_proj.weight[rows] = 0
    attn.q_proj.bias[rows] = q
    attn.k_proj.weight[rows] = 0
    attn.k_proj.bias[rows] = k


@torch.no_grad()
def plant_induction_circuit(model, match: float = 20.0, code: float = 3.0, copy: float = 10.0, seed: int = 0) -> None:
    """Initialise head 0 of both layers as an induction circuit; pretraining then starts from it.

    Why: in-context lookup (find where the query key appeared, copy what followed) needs a previous-token head
    in layer 0 feeding a matching head in layer 1. Neither helps the loss until both exist, so from a random
    start a 2-layer model sits on a plateau longer than this script's CPU budget (seen here: chance-level
    recall after 3,500 steps). So the circuit is written in by hand, then trained like every other weight:

    * the last ``hd`` residual dimensions (subspace U) are reserved: embeddings start at zero there;
    * layer 0 head 0 attends to the previous token (``plant_previous_token_head``) and writes a ``hd``-dim
      random code of that token (``R``) into U; the rest of layer 0 starts with zero output projections, so
      after layer 0 the residual is exactly ``[embedding, code(previous token)]``;
    * layer 1 head 0 matches ``code(current token)`` (query, from the embedding part) against U (key) on the
      six slowest RoPE pairs, where rotation is negligible over a few hundred positions, and copies the
      matched position's token (value ``P``, output ``P^T``) back into embedding space.

    Untrained, this model already answers the toy recall tasks at about 0.86 (the ceiling is ~0.87: some
    queries' keys are absent from the sampled demonstrations).
    """
    cfg = model.config
    d = cfg.hidden_size
    hd = d // cfg.num_attention_heads
    emb, u = slice(0, d - hd), slice(d - hd, d)
    g = torch.Generator().manual_seed(seed)
    model.model.embed_tokens.weight[:, u] = 0
    l0, l1 = model.model.layers[0], model.model.layers[1]
    plant_previous_token_head(model, 0, 0)
    r = torch.randn(hd, d - hd, generator=g) / (d - hd) ** 0.5
    a0 = l0.self_attn
    a0.v_proj.weight[0:hd] = 0
    a0.v_proj.weight[0:hd, emb] = code * r
    a0.v_proj.bias[0:hd] = 0
    a0.o_proj.weight[:] = 0
    a0.o_proj.weight[u, 0:hd] = torch.eye(hd)
    l0.mlp.down_proj.weight[:] = 0
    slow = torch.tensor(list(range(hd // 2 - 6, hd // 2)) + list(range(hd - 6, hd)))
    a1 = l1.self_attn
    for proj in (a1.q_proj, a1.k_proj, a1.v_proj):
        proj.weight[0:hd] = 0
        proj.bias[0:hd] = 0
    a1.q_proj.weight[slow, emb] = match * r[slow]
    a1.k_proj.weight[slow, u] = match * torch.eye(hd)[slow]
    p = torch.randn(hd, d - hd, generator=g) / (d - hd) ** 0.5
    a1.v_proj.weight[0:hd, emb] = p
    a1.o_proj.weight[:, 0:hd] = 0
    a1.o_proj.weight[emb, 0:hd] = copy * p.T


def freeze_circuit(model) -> list:
    """Keep the planted circuit fixed during pretraining (gradient masks); SFT later trains everything.

    Frozen: the reserved subspace U of the embeddings, all of layer 0 except its first three heads' value
    projections (layer 0 is the previous-token code writer: its other heads and MLP stay at zero output, so
    nothing pollutes what layer 1 matches on), both layers' input norms, and layer 1's head 0. Layer 1's other
    heads and MLP and every later layer train freely.
    """
    cfg = model.config
    d, hd = cfg.hidden_size, cfg.hidden_size // cfg.num_attention_heads
    l0, l1 = model.model.layers[0], model.model.layers[1]
    masks: dict[torch.nn.Parameter, torch.Tensor] = {}

    def freeze(p: torch.nn.Parameter, index=...) -> None:
        m = masks.setdefault(p, torch.ones_like(p))
        m[index] = 0

    freeze(model.model.embed_tokens.weight, (slice(None), slice(d - hd, d)))
    for p in l0.parameters():
        freeze(p)
    for p in (l1.input_layernorm.weight, *(getattr(l1.self_attn, n).bias for n in ("q_proj", "k_proj", "v_proj"))):
        freeze(p, slice(0, hd) if p.ndim == 1 and p is not l1.input_layernorm.weight else ...)
    for n in ("q_proj", "k_proj", "v_proj"):
        freeze(getattr(l1.self_attn, n).weight, slice(0, hd))
    freeze(l1.self_attn.o_proj.weight, (slice(None), slice(0, hd)))
    return [p.register_hook(lambda g, m=m: g * m) for p, m in masks.items()]


def pack(seqs: list[tuple[list[int], list[int]]], seq_len: int, pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Concatenate (ids, loss-mask) pairs into fixed-length rows for next-token training."""
    ids, mask, rows_i, rows_m = [], [], [], []
    for s, m in seqs:
        ids += s
        mask += m
        while len(ids) >= seq_len + 1:
            rows_i.append(ids[: seq_len + 1])
            rows_m.append(mask[: seq_len + 1])
            ids, mask = ids[seq_len:], mask[seq_len:]
    return torch.tensor(rows_i), torch.tensor(rows_m, dtype=torch.bool)


def train(
    model, ids: torch.Tensor, mask: torch.Tensor, steps: int, lr: float, batch: int, seed: int, label: str, monitor=None
) -> None:
    """AdamW with warm-up and cosine decay; loss only where ``mask`` is set."""
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.98))
    model.train()
    t0 = time.time()
    for step in range(steps):
        warm = min(1.0, (step + 1) / max(1, steps // 20))
        for grp in opt.param_groups:
            grp["lr"] = lr * warm * 0.5 * (1 + math.cos(math.pi * step / steps))
        idx = torch.randint(0, ids.shape[0], (batch,), generator=g)
        x, m = ids[idx], mask[idx]
        logits = model(input_ids=x[:, :-1]).logits
        tgt = x[:, 1:].masked_fill(~m[:, 1:], -100)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1))
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % 100 == 0 or step == steps - 1:
            extra = ""
            if monitor is not None and (step % 500 == 0 or step == steps - 1):
                model.eval()
                extra = f" recall {monitor(model):.3f}"
                model.train()
            print(f"[{label}] step {step}/{steps} loss {loss.item():.3f}{extra} ({time.time() - t0:.0f}s)", flush=True)
    model.eval()


@torch.no_grad()
def recall_accuracy(model, tok, suites: Path, n: int = 40, k: int = 10) -> float:
    """A quick in-script look at the base's in-context lookup (the sweep's lm-eval suite is the real number)."""
    rnd, hits, total = random.Random(0), 0, 0
    for f in sorted(suites.glob("recall_*.test.jsonl")):
        train_rows = [json.loads(x) for x in open(str(f).replace(".test.", ".train."))]
        for d in [json.loads(x) for x in open(f)][:n]:
            ctx = "\n".join(f"{x['key']} {x['label']}" for x in rnd.sample(train_rows, k)) + f"\n{d['key']}"
            ids = tok.encode(ctx)
            scores = []
            for c in d["choices"]:
                cid = tok.encode(" " + c)
                lp = model(input_ids=torch.tensor([ids + cid])).logits[0].log_softmax(-1)
                scores.append(sum(lp[len(ids) - 1 + i, t].item() for i, t in enumerate(cid)))
            hits += d["choices"][scores.index(max(scores))] == d["label"]
            total += 1
    return hits / max(1, total)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("data"))
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--pretrain-steps", type=int, default=2500)
    ap.add_argument("--sft-steps", type=int, default=400)
    ap.add_argument("--pretrain-lr", type=float, default=1e-3)
    ap.add_argument("--sft-lr", type=float, default=1e-3)
    ap.add_argument("--quick", action="store_true", help="tiny run to check the script works")
    ap.add_argument(
        "--base-from",
        type=Path,
        help="continue from this base (its tokenizer and weights) "
        "instead of a fresh model; --pretrain-steps more steps, then SFT as usual",
    )
    args = ap.parse_args()
    if args.quick:
        args.pretrain_steps, args.sft_steps = 3, 2
    from transformers import Qwen2Config, Qwen2ForCausalLM

    rng = random.Random(args.seed)
    torch.manual_seed(args.seed)
    keys = key_pool(rng)
    n_docs = 200 if args.quick else 24000
    pre_texts = pretrain_documents(rng, keys, n_docs)
    sft_texts = sft_documents(rng, n_docs // 3)
    if args.base_from:
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(args.base_from)
    else:
        tok = train_tokenizer([p + a for p, a in pre_texts + sft_texts], vocab=4096)
    eos = tok.convert_tokens_to_ids("<|endoftext|>")

    def encode(pairs: list[tuple[str, str]], prompt_loss: bool) -> list[tuple[list[int], list[int]]]:
        enc = []
        for p, a in pairs:
            pi, ai = tok.encode(p) if p else [], tok.encode(a) + [eos]
            enc.append((pi + ai, [int(prompt_loss)] * len(pi) + [1] * len(ai)))
        return enc

    cfg = Qwen2Config(
        vocab_size=len(tok),
        hidden_size=128,
        intermediate_size=512,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        rope_theta=10000.0,
        eos_token_id=tok.eos_token_id,
        bos_token_id=None,
        pad_token_id=eos,
        torch_dtype="float32",
    )
    if args.base_from:
        model = Qwen2ForCausalLM.from_pretrained(args.base_from, dtype=torch.float32)
    else:
        model = Qwen2ForCausalLM(cfg)
        plant_induction_circuit(model)
    suites = args.out / "toy_suites"
    write_suites(suites, keys, random.Random(args.seed + 2), n_icl=120, n_if=120)

    def monitor(m) -> float:
        return recall_accuracy(m, tok, suites, n=20)

    ids, mask = pack(encode(pre_texts, True), 256, eos)
    if args.pretrain_steps:
        hooks = freeze_circuit(model)
        train(model, ids, mask, args.pretrain_steps, args.pretrain_lr, 16, args.seed, "pretrain", monitor)
        for h in hooks:
            h.remove()
    save(model, tok, args.out / "toy_pair" / "base")
    print(f"base: recall accuracy {recall_accuracy(model, tok, suites):.3f}", flush=True)
    ids, mask = pack(encode(sft_texts, False), 256, eos)
    train(model, ids, mask, args.sft_steps, args.sft_lr, 16, args.seed + 1, "sft", monitor)
    save(model, tok, args.out / "toy_pair" / "instruct")
    print(f"instruct: recall accuracy {recall_accuracy(model, tok, suites):.3f}", flush=True)
    print(f"wrote {args.out / 'toy_pair'} and {args.out / 'toy_suites'}")


def save(model, tok, path: Path) -> None:
    from transformers import GenerationConfig

    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path, safe_serialization=True)
    tok.save_pretrained(path)
    GenerationConfig(eos_token_id=[tok.eos_token_id, tok.pad_token_id], do_sample=False).save_pretrained(path)


if __name__ == "__main__":
    main()
