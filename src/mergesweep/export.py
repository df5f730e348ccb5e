"""Write one sweep point as an ordinary Hugging Face checkpoint directory.

Why: a point that looks good in the sweep should be usable anywhere (vLLM, transformers, the hub) without
mergesweep, and reproducible from its record. So the export is plain safetensors + the instruct model's
config, tokenizer and chat template, plus ``mergesweep_point.json`` (method, lam, knobs, source hashes).

The merge streams from disk (``storage_device="disk"``) and shards are written as they fill, so exporting
needs about one shard of memory, not the model.

CLI (``mergesweep-export``)::

    mergesweep-export --base B --instruct I --method linear --lam 0.5 --out merged/ [--knob k=v ...]
"""
from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any, Mapping

import torch
from safetensors.torch import save_file

from . import __version__
from .checkpoints import checkpoint_hashes, dir_hashes, resolve
from .merge import describe_point, get_method
from .merge.sources import build_plan

# Tokenizer, chat template and generation files copied verbatim from the instruct directory.
COPY_PATTERNS = ("tokenizer*", "special_tokens_map.json", "added_tokens.json", "vocab.json", "vocab.txt",
                 "merges.txt", "*.model", "*.tiktoken", "chat_template*", "*.jinja", "generation_config.json",
                 "preprocessor_config.json")
MAX_SHARD_BYTES = 5 * 1024**3


def export_point(model_cfg: Mapping[str, Any], merge_cfg: Mapping[str, Any], lam: float, out_dir: str | Path,
                 dtype: str | torch.dtype = "float32", max_shard_bytes: int = MAX_SHARD_BYTES,
                 progress: bool = False) -> Path:
    """Merge one point and write it to ``out_dir`` (created; existing weight files there are replaced)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tdtype = getattr(torch, dtype) if isinstance(dtype, str) else dtype
    if not isinstance(tdtype, torch.dtype) or not tdtype.is_floating_point:
        raise ValueError(f"export dtype must be a float dtype name like float32/bfloat16, got {dtype!r}")
    name = str(merge_cfg["name"])
    knobs = dict(merge_cfg.get("knobs") or {})
    plan = build_plan(model_cfg, merge_cfg, device="cpu", storage_device="disk", storage_dtype=torch.float32,
                      progress=progress)
    for old in list(out.glob("model*.safetensors")) + list(out.glob("model.safetensors.index.json")):
        old.unlink()
    shards = _write_shards(plan.build(get_method(name), lam, tdtype, **knobs), out, max_shard_bytes)

    instruct = Path(resolve(str(model_cfg["instruct"]), model_cfg.get("revision")))
    config = json.loads((instruct / "config.json").read_text())
    dname = str(tdtype).replace("torch.", "")
    config["torch_dtype"] = dname  # the key vLLM and transformers < 5 read
    if "dtype" in config or "torch_dtype" not in config:
        config["dtype"] = dname  # transformers >= 5 writes this one
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    for pattern in COPY_PATTERNS:
        for f in instruct.glob(pattern):
            if f.is_file():
                shutil.copy2(f, out / f.name)

    sources = {"anchor": str(plan.anchor.path), "finetuned": [str(c.path) for c in plan.finetuned],
               "reference": None if plan.reference is None else str(plan.reference.path),
               "adapter": None if plan.adapter is None else str(plan.adapter.path)}
    hashes = {str(c.path): checkpoint_hashes(c)
              for c in [plan.anchor, *plan.finetuned, *([plan.reference] if plan.reference else [])]}
    if plan.adapter is not None:
        hashes[str(plan.adapter.path)] = dir_hashes(plan.adapter.path, ("adapter_*",))
    point = {**describe_point(name, lam, knobs), "dtype": dname, "sources": sources, "source_sha256": hashes,
             "notes": plan.notes, "shards": shards, "mergesweep_version": __version__}
    (out / "mergesweep_point.json").write_text(json.dumps(point, indent=2, default=str) + "\n")
    return out


def _write_shards(tensors, out: Path, max_shard_bytes: int) -> list[str]:
    """Save tensors as they come, one safetensors file per ``max_shard_bytes``; index when > 1 file."""
    parts: list[tuple[Path, list[str]]] = []
    buf: dict[str, torch.Tensor] = {}
    size, total = 0, 0

    def flush() -> None:
        nonlocal buf, size
        if buf:
            tmp = out / f".shard-{len(parts):05d}.safetensors"
            save_file(buf, str(tmp), metadata={"format": "pt"})
            parts.append((tmp, list(buf)))
            buf, size = {}, 0

    for name, t in tensors:
        nbytes = t.numel() * t.element_size()
        if buf and size + nbytes > max_shard_bytes:
            flush()
        buf[name] = t.contiguous()
        size += nbytes
        total += nbytes
    flush()
    if len(parts) == 1:
        parts[0][0].rename(out / "model.safetensors")
        return ["model.safetensors"]
    names, weight_map = [], {}
    for i, (tmp, keys) in enumerate(parts):
        fname = f"model-{i + 1:05d}-of-{len(parts):05d}.safetensors"
        tmp.rename(out / fname)
        names.append(fname)
        weight_map.update({k: fname for k in keys})
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (out / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    return names


def _knob(text: str) -> tuple[str, Any]:
    """``k=v`` with ``v`` parsed as YAML (numbers, lists, ``{attn: 0.5}``), so CLI knobs match the YAMLs."""
    import yaml

    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--knob expects key=value, got {text!r}")
    k, v = text.split("=", 1)
    return k.strip(), yaml.safe_load(v)


def _merge_conf(method: str, conf: str | None) -> dict[str, Any]:
    """The method's conf/merge YAML (given, or found beside the source tree), else just its name."""
    import yaml

    path = Path(conf) if conf else Path(__file__).resolve().parents[2] / "conf" / "merge" / f"{method}.yaml"
    if path.is_file():
        cfg = yaml.safe_load(path.read_text()) or {}
        if cfg.get("name") != method:
            raise SystemExit(f"{path} is for method {cfg.get('name')!r}, not {method!r}")
        return cfg
    if conf:
        raise SystemExit(f"merge config not found: {conf}")
    return {"name": method, "knobs": {}}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="mergesweep-export", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", help="base checkpoint dir or hub id (not needed for adapter_transfer)")
    ap.add_argument("--instruct", required=True)
    ap.add_argument("--target", help="third checkpoint for method residual")
    ap.add_argument("--finetuned", nargs="*", default=[], help="more fine-tunes (model_stock, ties, ...)")
    ap.add_argument("--adapter", help="PEFT LoRA dir for method adapter_transfer")
    ap.add_argument("--method", default="linear")
    ap.add_argument("--merge-conf", help="merge YAML (default: conf/merge/<method>.yaml if present)")
    ap.add_argument("--lam", type=float, required=True)
    ap.add_argument("--knob", type=_knob, action="append", default=[], metavar="K=V")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--dtype", default="float32", help="float32 | bfloat16 | float16")
    ap.add_argument("--revision")
    ap.add_argument("--allow-pickle", action="store_true", help="allow pickled .bin weights (can run code)")
    args = ap.parse_args(argv)
    model_cfg = {"base": args.base, "instruct": args.instruct, "target": args.target, "finetuned": args.finetuned,
                 "adapter": args.adapter, "revision": args.revision, "allow_pickle": args.allow_pickle}
    merge_cfg = _merge_conf(args.method, args.merge_conf)
    merge_cfg["knobs"] = {**(merge_cfg.get("knobs") or {}), **dict(args.knob)}
    out = export_point(model_cfg, merge_cfg, args.lam, args.out, args.dtype, progress=True)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
