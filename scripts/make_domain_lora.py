"""Continue pre-training gemma-3-270m on a domain corpus, as a LoRA: the "new base" of the instruction-residual
miniature (issue 22, study 1), on this CPU.

Corpus: WikiText-2's validation split as shipped in ``data/real/wikitext2_valid.txt`` (CC BY-SA 3.0), which no
evaluation of this project reads. It is split by article (top-level ``= Title =`` headings): every fifth article
is held out, the rest is trained on, so the held-out loss measures the domain, not memorised passages. Plain
next-token loss on chunks of ``--max-len`` tokens (``<bos>`` + text, never crossing an article). LoRA r=16,
alpha=32 on every attention and MLP projection of layers ``--first-layer``..17; AdamW, linear warm-up then
cosine decay (``lora_train``'s loop, shared with the instruct and task LoRAs); fixed seed, deterministic on one
machine. ``training.json`` records the held-out loss before and after: the new base must score lower.

What "new knowledge" means here, plainly: the held-out articles are other articles, so a lower loss is the
domain (encyclopedic prose in WikiText's raw tokenisation: `` @-@ ``, spaced punctuation, ``<unk>``), not facts.

CPU budget (2 cores): a step is batch 8 x 128 tokens with the 262k-row head at every position. The committed
adapter (``data/real/gemma3_270m_wiki_lora``, the defaults: 100 steps, 800 of the 1,590 train chunks, ~100k
tokens) took 856 s on two idle cores (8.6 s a step; 107-136 s a step under ``nice`` beside another training run),
plus ~20 s for each held-out evaluation (64 chunks). Held-out loss 3.793 -> 2.772 nats per token.

    python scripts/make_domain_lora.py --out data/real/gemma3_270m_wiki_lora
    python scripts/make_domain_lora.py --steps 2 --eval-chunks 4 --out /tmp/domain_smoke   # determinism check
    python scripts/make_domain_lora.py --eval MODEL_DIR ...      # held-out loss of any folder (e.g. exported points)
Then ``mergesweep setup-real`` builds ``gemma-3-270m-mergesweep-wiki`` (base + this adapter), the ``target`` of
``model=gemma3_270m_residual``.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
import lora_train

CORPUS = Path(__file__).resolve().parents[1] / "data" / "real" / "wikitext2_valid.txt"
HELD_OUT_EVERY = 5  # article i is held out when i % 5 == 4
_TITLE = re.compile(r"^ = [^=].* = $")


def articles(path: Path = CORPUS) -> list[str]:
    """The corpus's articles in file order, each its heading line and body, lines stripped, blank lines dropped."""
    out: list[list[str]] = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if _TITLE.match(line):
            out.append([])
        if out and line.strip():
            out[-1].append(line.strip())
    return ["\n".join(a) for a in out]


def split(texts: list[str]) -> tuple[list[str], list[str]]:
    """(train, held-out) by article index: a fixed split, whatever the seed."""
    held = [t for i, t in enumerate(texts) if i % HELD_OUT_EVERY == HELD_OUT_EVERY - 1]
    return [t for i, t in enumerate(texts) if i % HELD_OUT_EVERY != HELD_OUT_EVERY - 1], held


def chunks(tok, texts: list[str], max_len: int, min_len: int = 32) -> list[lora_train.Row]:
    """``<bos>`` + up to ``max_len - 1`` tokens of one article per row, every token after ``<bos>`` trained;
    an article's last piece is kept if it has ``min_len`` tokens."""
    bos = [tok.bos_token_id] if tok.bos_token_id is not None else []
    width = max_len - len(bos)
    rows: list[lora_train.Row] = []
    for text in texts:
        ids = tok(text, add_special_tokens=False).input_ids
        pieces = [bos + ids[i : i + width] for i in range(0, len(ids), width)]
        rows += [(p, 1) for p in pieces if len(p) >= min_len or p is not pieces[-1]]
    return rows


def held_out(tok, max_len: int, n: int) -> list[lora_train.Row]:
    """The first ``n`` chunks of the held-out articles (0: all): the fixed set every held-out loss is taken on."""
    rows = chunks(tok, split(articles())[1], max_len)
    return rows[:n] if n else rows


def train(a: argparse.Namespace) -> dict:
    """One run: held-out loss, training, held-out loss again; returns what ``training.json`` holds."""
    base = a.base or lora_train.real_base()
    run = lora_train.start(base, a.seed, a.first_layer)
    train_texts, _ = split(articles())
    data = chunks(run.tok, train_texts, a.max_len)
    evalset = held_out(run.tok, a.max_len, a.eval_chunks)
    pad = run.tok.pad_token_id
    before = lora_train.mean_loss(run.model, evalset, a.batch, pad)  # LoRA B starts at zero: this is the base
    print(f"held-out loss before: {before:.4f} ({len(evalset)} chunks)", flush=True)
    losses, seconds = lora_train.fit(run, data, a.steps, a.batch, a.lr)
    after = lora_train.mean_loss(run.model, evalset, a.batch, pad)
    print(f"held-out loss after: {after:.4f}", flush=True)
    info = lora_train.record(
        a,
        seconds,
        losses,
        corpus="data/real/wikitext2_valid.txt, articles i % 5 != 4 (held out: i % 5 == 4)",
        corpus_sha256=hashlib.sha256(CORPUS.read_bytes()).hexdigest(),
        heldout_loss_before=round(before, 4),
        heldout_loss_after=round(after, 4),
        heldout_chunks=len(evalset),
        train_chunks=len(data),
        epochs=round(a.steps * a.batch / max(1, len(data)), 2),
    )
    lora_train.save(run, a.out, base, info)
    return info


def folder_losses(folder: Path, max_len: int, eval_chunks: int, batch: int) -> list[tuple[float, int]]:
    """Each held-out chunk's summed loss and token count under the model in ``folder`` (its own tokenizer)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, attn_implementation="eager")
    return lora_train.row_losses(model, held_out(tok, max_len, eval_chunks), batch, tok.pad_token_id)


def evaluate(folders: list[Path], a: argparse.Namespace) -> None:
    """Print the held-out loss of each model folder (the same chunks as training's before/after)."""
    for folder in folders:
        loss = lora_train.pooled(folder_losses(folder, a.max_len, a.eval_chunks, a.batch))
        print(f"{folder}\theldout_loss {loss:.4f}", flush=True)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--out", type=Path, help="where the adapter goes (required unless --eval)")
    ap.add_argument("--eval", type=Path, nargs="+", metavar="MODEL_DIR", help="only print these folders' loss")
    ap.add_argument("--base", type=Path, help="the base folder (default: mergesweep setup-real's gemma-3-270m)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--max-len", type=int, default=128)
    ap.add_argument("--eval-chunks", type=int, default=64, help="held-out chunks scored (0: all)")
    ap.add_argument("--first-layer", type=int, default=0)
    a = ap.parse_args(argv)
    if a.eval:
        return evaluate(a.eval, a)
    if not a.out:
        ap.error("--out is required (or --eval MODEL_DIR ...)")
    info = train(a)
    print(f"done: {info['steps']} steps in {info['train_seconds']} s, held-out loss {before_after(info)}")


def before_after(info: dict) -> str:
    """``3.41 -> 3.02`` from a ``training.json``."""
    return f"{info['heldout_loss_before']} -> {info['heldout_loss_after']}"


if __name__ == "__main__":
    main()
