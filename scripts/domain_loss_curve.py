#!/usr/bin/env python
"""Domain held-out loss of every point of a sweep: the instruction-residual miniature's second figure (issue 22).

The question it answers: when the instruct residual is added to a base continued on a domain (WikiText-2 here,
``scripts/make_domain_lora.py``), is the domain knowledge kept? A record's parts are ICL and IF
(``records.Summary``); the held-out loss is a property of the weights, so this script rebuilds each point from its
record (``config.model``, ``config.merge``, ``lam``) with the exporter (``mergesweep-export``'s ``export_point``:
the weights the engine served), scores the held-out chunks that ``make_domain_lora.py`` reports before and after
training (same split, ``--max-len``, ``--eval-chunks``), and deletes the export. The sweep's three sources are
scored as references: the base, the instruct model and the new base (``model.target``).

Each loss is the token-weighted mean cross-entropy (nats per token) with a percentile bootstrap CI over chunks, and
the paired difference to the new base (same chunks, resampled together): negative means the point predicts the
domain better than the new base, positive means it forgot some.

    python scripts/domain_loss_curve.py results/miniatures/mini_residual        # ~1.5 min a point on 2 cores
Writes ``<sweep>/domain_loss.csv`` and ``<sweep>/figures/domain_loss.{png,pdf}``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "scripts"))

from make_domain_lora import folder_losses
from mergesweep.store.records import read_record
from mergesweep.tools.export import export_point

Losses = list[tuple[float, int]]  # per chunk: summed cross-entropy, token count
REFERENCES = {"base": "base", "instruct": "instruct", "new base": "target"}  # label -> model config key


def ratio_ci(losses: Losses, other: Losses | None = None, n: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """(value, low, high): the token-weighted mean loss, or its difference to ``other``'s on the same chunks, with
    a 95% percentile bootstrap over chunks (both resampled with the same indices)."""
    s, c = np.array([x[0] for x in losses]), np.array([x[1] for x in losses], dtype=float)
    s0, c0 = (np.array([x[0] for x in other]), np.array([x[1] for x in other], dtype=float)) if other else (0, 1)
    idx = np.random.default_rng(seed).integers(0, len(s), size=(n, len(s)))
    if other is None:
        value, draws = s.sum() / c.sum(), s[idx].sum(1) / c[idx].sum(1)
    else:
        value = s.sum() / c.sum() - np.sum(s0) / np.sum(c0)
        draws = s[idx].sum(1) / c[idx].sum(1) - s0[idx].sum(1) / c0[idx].sum(1)
    low, high = np.percentile(draws, [2.5, 97.5])
    return float(value), float(low), float(high)


def point_losses(sweep: Path, max_len: int, eval_chunks: int, batch: int) -> list[dict]:
    """One row per record (by lam) and per reference source: its chunks' losses and where they come from."""
    recs = sorted((read_record(p) for p in (sweep / "records").glob("*.json")), key=lambda r: (r.family, r.lam))
    if not recs:
        raise SystemExit(f"no records under {sweep / 'records'}")
    model = recs[0].config["model"]
    rows = [{"label": k, "lam": None, "losses": folder_losses(Path(model[v]), max_len, eval_chunks, batch)}
            for k, v in REFERENCES.items() if model.get(v)]  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="domain_loss_") as tmp:
        for r in recs:
            out = export_point(r.config["model"], r.config["merge"], r.lam, Path(tmp) / r.point_id)
            rows.append({"label": r.family, "lam": r.lam, "point_id": r.point_id,
                         "losses": folder_losses(out, max_len, eval_chunks, batch)})  # fmt: skip
            print(f"lam={r.lam:g}: {ratio_ci(rows[-1]['losses'])[0]:.4f}", flush=True)
    return rows


def table(rows: list[dict]):
    """The CSV's frame: loss and CI per row, and each row's paired difference to the new base with its CI."""
    import pandas as pd

    ref = next((r["losses"] for r in rows if r["label"] == "new base"), None)
    out = []
    for r in rows:
        loss, low, high = ratio_ci(r["losses"])
        d = ratio_ci(r["losses"], ref) if ref is not None else (np.nan, np.nan, np.nan)
        out.append({"label": r["label"], "lam": r["lam"], "point_id": r.get("point_id"), "heldout_loss": loss,
                    "low": low, "high": high, "minus_new_base": d[0], "minus_new_base_low": d[1],
                    "minus_new_base_high": d[2], "chunks": len(r["losses"])})  # fmt: skip
    return pd.DataFrame(out)


def plot(df, out_dir: Path) -> list[Path]:
    """Held-out loss against lam with CIs, the references as horizontal lines (PNG and PDF)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.2, 3.0))
    pts = df[df["lam"].notna()].sort_values("lam")
    err = [pts["heldout_loss"] - pts["low"], pts["high"] - pts["heldout_loss"]]
    ax.errorbar(pts["lam"], pts["heldout_loss"], yerr=err, marker="o", ms=4, capsize=2, label="new base + λ·residual")
    for (_, r), style in zip(df[df["lam"].isna()].iterrows(), ["--", ":", "-."]):
        ax.axhline(r["heldout_loss"], ls=style, color="0.4", lw=0.9, label=r["label"])
    ax.set_xlabel("residual strength λ")
    ax.set_ylabel("held-out domain loss (nats/token)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"domain_loss.{ext}" for ext in ("png", "pdf")]
    for p in paths:
        fig.savefig(p, dpi=200)
    plt.close(fig)
    return paths


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("sweep", type=Path, help="a sweep folder (holds records/)")
    ap.add_argument("--max-len", type=int, default=128, help="as make_domain_lora.py's")
    ap.add_argument("--eval-chunks", type=int, default=64, help="as make_domain_lora.py's (0: all)")
    ap.add_argument("--batch", type=int, default=8)
    a = ap.parse_args(argv)
    df = table(point_losses(a.sweep, a.max_len, a.eval_chunks, a.batch))
    df.to_csv(a.sweep / "domain_loss.csv", index=False, float_format="%.5g")
    for p in plot(df, a.sweep / "figures"):
        print(p)
    print(df.drop(columns=["point_id"]).to_string(index=False, float_format="%.4f"))


if __name__ == "__main__":
    main()
