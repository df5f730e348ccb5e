#!/usr/bin/env python
"""Merge-layer benchmark: throughput against a plain copy, and peak memory while sweeping.

1. Throughput. A random model-shaped pair is held in memory (``MemoryCheckpoint``) and a ``MergePlan``
   builds points from it exactly as a sweep does. GB/s = bytes of merged tensors produced per second,
   against ``dst.copy_(src)`` of the same tensors (preallocated ``dst``, same device, same process): a
   merge reads two inputs and writes one, a copy reads one and writes one, so ~0.67x is the memory-bound
   ceiling for ``linear``. Target on CPU: >= 0.5x. Methods run with ``reuse_outputs=True`` (how an engine
   that copies each tensor into its weights uses the plan); "linear (fresh outputs)" shows the cost of
   faulting in new pages for every output tensor instead.
2. Peak RSS. A sharded random pair is written to a temp dir and swept (a few points, outputs dropped as
   an engine would after loading them) in a fresh process per mode: resident (inputs held in RAM) and
   streaming (``storage_device="disk"``). Reported as (peak RSS - RSS after imports) / checkpoint size.
   Targets: resident < 3x, streaming < 1.5x.

    python scripts/bench_merge.py                          # small (~250 MB fp32) shapes, CPU, < 2 min
    python scripts/bench_merge.py --shape 8b --device cuda --dtype bfloat16 --no-rss --stem merge-8b-cuda

Results: results/bench/<stem>.json and <stem>.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT))

from tests.helpers import save_interleaved_shards

from mergesweep.merge import get_method
from mergesweep.merge.plan import MergePlan
from mergesweep.weights.checkpoints import Checkpoint, MemoryCheckpoint

SHAPES = {  # Llama-style dims: hidden, intermediate, layers, heads, kv heads, vocab
    "small": dict(hidden=768, inter=2048, layers=6, heads=12, kv=4, vocab=16000),
    "8b": dict(hidden=4096, inter=14336, layers=32, heads=32, kv=8, vocab=128256),  # Llama-3-8B
}
KNOBS = {"ties": {"density": 0.2}, "dare_linear": {"p": 0.5, "seed": 0}}


def model_shapes(kind: str) -> dict[str, tuple[int, ...]]:
    d = SHAPES[kind]
    h, kv = d["hidden"], d["kv"] * d["hidden"] // d["heads"]
    out = {"model.embed_tokens.weight": (d["vocab"], h)}
    for i in range(d["layers"]):
        p = f"model.layers.{i}."
        out.update(
            {
                p + "self_attn.q_proj.weight": (h, h),
                p + "self_attn.k_proj.weight": (kv, h),
                p + "self_attn.v_proj.weight": (kv, h),
                p + "self_attn.o_proj.weight": (h, h),
                p + "mlp.gate_proj.weight": (d["inter"], h),
                p + "mlp.up_proj.weight": (d["inter"], h),
                p + "mlp.down_proj.weight": (h, d["inter"]),
                p + "input_layernorm.weight": (h,),
                p + "post_attention_layernorm.weight": (h,),
            }
        )
    out.update({"model.norm.weight": (h,), "lm_head.weight": (d["vocab"], h)})
    return out


def random_pair(kind: str, dtype: torch.dtype, device: str, seed: int = 0) -> tuple[dict, dict]:
    g = torch.Generator(device=device).manual_seed(seed)
    base, inst = {}, {}
    for name, shape in model_shapes(kind).items():
        b = torch.randn(shape, generator=g, device=device, dtype=torch.float32).mul_(0.02)
        base[name] = b.to(dtype)
        inst[name] = b.add_(torch.randn(shape, generator=g, device=device, dtype=torch.float32), alpha=2e-3).to(dtype)
        del b
    return base, inst


def config(kind: str) -> dict:
    d = SHAPES[kind]
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "num_hidden_layers": d["layers"],
        "hidden_size": d["hidden"],
        "vocab_size": d["vocab"],
        "tie_word_embeddings": False,
    }


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fns: dict, device: str, repeats: int) -> dict[str, list[float]]:
    """Seconds of each ``fn()`` per round: one warm-up, then ``repeats`` rounds running every fn in turn.

    Interleaving matters on a shared machine: a copy and a merge timed in the same round see the same
    load, so their ratio stays meaningful when absolute numbers swing with other jobs.
    """
    for fn in fns.values():
        fn()
    sync(device)
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            sync(device)
            times[k].append(time.perf_counter() - t0)
    return times


def throughput(args) -> dict:
    dtype = getattr(torch, args.dtype)
    base, inst = random_pair(args.shape, dtype, args.device)
    plans = {
        reuse: MergePlan(
            anchor=MemoryCheckpoint(base, config(args.shape)),
            finetuned=[MemoryCheckpoint(inst, config(args.shape))],
            device=args.device,
            progress=False,
            reuse_outputs=reuse,
        )
        for reuse in (True, False)
    }
    nbytes = sum(t.numel() * t.element_size() for t in base.values())
    dst = {k: torch.empty_like(v) for k, v in base.items()}

    def copy() -> None:
        for k, v in base.items():
            dst[k].copy_(v)

    def copy_fresh() -> None:
        for v in base.values():
            torch.empty_like(v).copy_(v)

    pool: dict = {}

    def copy_recycled() -> None:  # what the plan's reuse_outputs does: one buffer per distinct shape
        for v in base.values():
            key = (tuple(v.shape), v.dtype)
            if key not in pool:
                pool[key] = torch.empty_like(v)
            pool[key].copy_(v)

    def point(name: str, reuse: bool = True):
        method, knobs, plan = get_method(name.split(" ")[0]), KNOBS.get(name.split(" ")[0], {}), plans[reuse]

        def run() -> None:
            for _, t in plan.build(method, 0.5, dtype, **knobs):
                del t  # an engine copies each tensor into its weights here

        return run

    fns = {
        "copy": copy,
        "copy_fresh_alloc": copy_fresh,
        "copy_recycled": copy_recycled,
        **{m: point(m) for m in args.methods},
    }
    if "linear" in args.methods:
        fns["linear (fresh outputs)"] = point("linear", reuse=False)
        args.methods = [*args.methods, "linear (fresh outputs)"]
    times = timed(fns, args.device, args.repeats)
    med = {k: statistics.median(v) for k, v in times.items()}
    out = {"bytes_per_point": nbytes, "repeats": args.repeats, "methods": {}}

    def ratio(base_key: str, name: str) -> float:
        return statistics.median(c / t for c, t in zip(times[base_key], times[name]))

    for k in ("copy", "copy_fresh_alloc", "copy_recycled"):
        out[k] = {"s": med[k], "gbps": nbytes / med[k] / 1e9, "s_all": times[k]}
        print(f"  {k:22s} {med[k]:8.3f} s/point {nbytes / med[k] / 1e9:7.2f} GB/s", flush=True)
    for name in args.methods:
        like = "copy_fresh_alloc" if "fresh" in name else "copy_recycled"
        out["methods"][name] = {
            "s_per_point": med[name],
            "gbps": nbytes / med[name] / 1e9,
            "ratio_vs_copy": ratio("copy", name),
            "like_for_like_copy": like,
            "ratio_vs_like_for_like_copy": ratio(like, name),
            "s_all": times[name],
        }
        print(
            f"  {name:22s} {med[name]:8.3f} s/point {nbytes / med[name] / 1e9:7.2f} GB/s  "
            f"{ratio('copy', name):5.2f}x copy, {ratio(like, name):5.2f}x {like}",
            flush=True,
        )
    return out


def write_sharded(kind: str, dtype: torch.dtype, root: Path, shards: int = 4) -> int:
    """A random base/instruct pair as sharded safetensors; returns one checkpoint's weight bytes."""
    base, inst = random_pair(kind, dtype, "cpu")
    for label, sd in (("base", base), ("instruct", inst)):
        d = root / label
        d.mkdir(parents=True)
        (d / "config.json").write_text(json.dumps(config(kind)))
        save_interleaved_shards(sd, d, shards)
    return sum(t.numel() * t.element_size() for t in base.values())


def _status_kib(key: str) -> int:
    """``VmRSS`` / ``VmHWM`` of this process. (Not ``ru_maxrss``: Linux carries it across fork + exec, so a
    child would report its parent's peak.)"""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def rss_child(mode: str, root: str, method: str, points: int) -> None:
    """Run in a fresh process: sweep ``points`` points and print peak RSS numbers as JSON."""
    torch.set_num_threads(1)
    baseline = _status_kib("VmRSS")
    plan = MergePlan(
        anchor=Checkpoint(Path(root) / "base"),
        finetuned=[Checkpoint(Path(root) / "instruct")],
        storage_device=None if mode == "resident" else mode,
        progress=False,
    )
    after_load = _status_kib("VmRSS")
    m = get_method(method)
    dtype = torch.bfloat16
    t0 = time.perf_counter()
    for i in range(points):
        for _, t in plan.build(m, i / max(1, points - 1), dtype, **KNOBS.get(method, {})):
            del t
    peak = _status_kib("VmHWM")
    print(
        json.dumps(
            {
                "baseline_kib": baseline,
                "after_load_kib": after_load,
                "peak_kib": peak,
                "resident_bytes": plan.resident_bytes(),
                "s_per_point": (time.perf_counter() - t0) / points,
            }
        )
    )


def rss(args) -> dict:
    out = {}
    with tempfile.TemporaryDirectory(prefix="bench_merge_") as tmp:
        size = write_sharded(args.rss_shape, torch.bfloat16, Path(tmp))
        out["model_bytes"] = size
        for mode in ("resident", "disk"):
            for method in ("linear", "ties"):
                r = subprocess.run(
                    [sys.executable, __file__, "--rss-child", mode, tmp, method, str(args.points)],
                    capture_output=True,
                    text=True,
                    check=True,
                )
                res = json.loads(r.stdout.strip().splitlines()[-1])
                res["peak_over_model"] = (res["peak_kib"] - res["baseline_kib"]) * 1024 / size
                res["peak_total_over_model"] = res["peak_kib"] * 1024 / size
                out[f"{mode}/{method}"] = res
                print(
                    f"  {mode:8s} {method:7s} peak {res['peak_over_model']:.2f}x model above baseline "
                    f"({res['peak_kib'] / 1024:.0f} MiB total, baseline {res['baseline_kib'] / 1024:.0f} MiB, "
                    f"{res['s_per_point']:.2f} s/point)",
                    flush=True,
                )
    return out


def markdown(res: dict) -> str:
    t = res["throughput"]
    lines = [
        f"# Merge benchmark ({res['shape']} shapes, {res['dtype']}, {res['device']}, {res['threads']} threads)",
        "",
        f"{res['host']}. {t['bytes_per_point'] / 1e6:.0f} MB of tensors per point.",
        "",
        "| what | s/point | GB/s | vs copy | vs like-for-like copy |",
        "| --- | --- | --- | --- | --- |",
        f"| copy (`dst.copy_(src)`, preallocated dst per tensor) | {t['copy']['s']:.3f} | "
        f"{t['copy']['gbps']:.2f} | 1.00x | |",
        f"| copy into recycled dst (one per shape) | {t['copy_recycled']['s']:.3f} | "
        f"{t['copy_recycled']['gbps']:.2f} | | |",
        f"| copy into fresh dst (`empty_like`) | {t['copy_fresh_alloc']['s']:.3f} | "
        f"{t['copy_fresh_alloc']['gbps']:.2f} | | |",
    ]
    for name, m in t["methods"].items():
        lines.append(
            f"| {name} | {m['s_per_point']:.3f} | {m['gbps']:.2f} | {m['ratio_vs_copy']:.2f}x | "
            f"{m['ratio_vs_like_for_like_copy']:.2f}x ({m['like_for_like_copy']}) |"
        )
    lines += [
        "",
        "s/point and GB/s: medians over rounds; vs copy: median of per-round ratios (same load). "
        f"Load average at start: {', '.join(f'{x:.2f}' for x in res['load_avg'])}.",
    ]
    if res.get("rss"):
        r = res["rss"]
        lines += [
            "",
            f"Peak RSS sweeping {res['points']} points of a 4-shard bf16 pair ({res['rss_shape']} shapes, "
            f"{r['model_bytes'] / 1e6:.0f} MB per checkpoint), above the RSS after imports, outputs dropped "
            "as they come:",
            "",
            "| mode | method | peak / model size | target | s/point |",
            "| --- | --- | --- | --- | --- |",
        ]
        for key, v in r.items():
            if key == "model_bytes":
                continue
            mode, method = key.split("/")
            target = {"resident": "< 3x", "disk": "< 1.5x"}[mode] if method == "linear" else "(info)"
            label = "streaming (`storage_device='disk'`)" if mode == "disk" else "resident"
            lines.append(f"| {label} | {method} | {v['peak_over_model']:.2f}x | {target} | {v['s_per_point']:.2f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--rss-child":
        rss_child(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shape", choices=sorted(SHAPES), default="small")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32", help="checkpoint and output dtype for the throughput part")
    ap.add_argument("--methods", default="linear,slerp,ties,dare_linear")
    ap.add_argument("--repeats", type=int, default=5, help="timed rounds (each runs copy and every method)")
    ap.add_argument("--points", type=int, default=3, help="points swept in the RSS part")
    ap.add_argument("--no-rss", action="store_true")
    ap.add_argument(
        "--rss-shape",
        choices=sorted(SHAPES),
        default="small",
        help="shapes of the pair written to disk for the RSS part (8b writes 2 x 16 GB)",
    )
    ap.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (1 keeps timings stable on a shared machine: OpenMP barriers stall "
        "when another job takes a core)",
    )
    ap.add_argument("--stem", default="merge")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "bench")
    args = ap.parse_args()
    args.methods = [m for m in args.methods.split(",") if m]
    torch.set_num_threads(args.threads)
    host = platform.processor() or platform.machine()
    try:
        host = next(ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    if args.device.startswith("cuda"):
        host = torch.cuda.get_device_name()
    res = {
        "shape": args.shape,
        "rss_shape": args.rss_shape,
        "dtype": args.dtype,
        "device": args.device,
        "threads": torch.get_num_threads(),
        "host": host,
        "torch": torch.__version__,
        "points": args.points,
        "load_avg": os.getloadavg(),
    }
    print(f"throughput ({args.shape}, {args.dtype}, {args.device}):", flush=True)
    res["throughput"] = throughput(args)
    if not args.no_rss:
        print("peak RSS:", flush=True)
        res["rss"] = rss(args)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.stem}.json").write_text(json.dumps(res, indent=2) + "\n")
    (args.out / f"{args.stem}.md").write_text(markdown(res))
    print(f"wrote {args.out / (args.stem + '.json')} and .md")


if __name__ == "__main__":
    main()
