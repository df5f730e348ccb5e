"""Write one sweep point as an ordinary Hugging Face checkpoint directory.

Why: a point that looks good in the sweep should be usable anywhere (vLLM, transformers, the hub) without
mergesweep, and reproducible from its record. So the export is plain safetensors + the instruct model's
config, tokenizer and chat template, plus ``mergesweep_point.json`` (method, lam, knobs, source hashes).

The merge streams from disk (``storage_device="disk"``) and shards are written as they fill, so exporting
needs about one shard of memory, not the model.

Nothing already on disk is put at risk: every value is checked before the first tensor is written, ``--out``
may not be, hold or lie inside a source checkpoint, and the new checkpoint is built beside ``--out`` and
renamed into place only when complete (``staging.py``). Bad input ends in one line (``--debug`` or
``HYDRA_FULL_ERROR=1``: the traceback).

CLI (``mergesweep-export``)::

    mergesweep-export --base B --instruct I --method linear --lam 0.5 --out merged/ [--knob k=v ...]
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from .. import __version__
from ..app import oneline
from ..checks.preflight import knob_values, strength_fits
from ..errors import ConfigError
from ..merge import describe_point, get_method
from ..merge.sources import build_plan, point_roles
from ..merge.spec import merge_spec
from ..paths import apply_env, conf_dir
from ..weights.checkpoints import dir_hashes, resolve
from .staging import check_target, staged

# Tokenizer, chat template and generation files copied verbatim from the instruct directory.
COPY_PATTERNS = (
    "tokenizer*",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "vocab.txt",
    "merges.txt",
    "*.model",
    "*.tiktoken",
    "chat_template*",
    "*.jinja",
    "generation_config.json",
    "preprocessor_config.json",
)
MAX_SHARD_BYTES = 5 * 1024**3
POINT_FILE = "mergesweep_point.json"  # every export has it; a folder without it is never replaced


def export_point(
    model_cfg: Mapping[str, Any],
    merge_cfg: Mapping[str, Any],
    lam: float,
    out_dir: str | Path,
    dtype: str | torch.dtype = "float32",
    max_shard_bytes: int = MAX_SHARD_BYTES,
    progress: bool = False,
) -> Path:
    """Merge one point and write it to ``out_dir``, atomically.

    Every check runs before the first tensor is written: lam finite, dtype, method and knob values (a dry
    run, see ``preflight.knob_values``), checkpoint shapes and vocabularies (the plan), ``out_dir`` outside
    every source, and the point's JSON. The checkpoint is then built in a hidden folder beside ``out_dir`` and
    renamed into place when complete; an earlier export there is replaced only then (``staging.py``).
    """
    out = Path(out_dir)
    tdtype = _float_dtype(dtype)
    lam = _finite(lam)
    merge = merge_spec(merge_cfg).validate()  # what the config leaves out is the method's default
    name, knobs = merge.name, merge.knobs
    check_target(out, _local_dirs(model_cfg), POINT_FILE)  # before reading anything

    n_deltas = max(1, sum(r == "instruct" or r.startswith("finetuned") for r in point_roles(model_cfg, merge)))
    knob_values(merge, lam, n_deltas)  # knob types and values first: the strength check runs the method
    strength_fits(merge, lam, n_deltas)  # lam=1e30: one line, before any input is loaded (or a bar drawn)
    plan = build_plan(
        model_cfg, merge, device="cpu", storage_device="disk", storage_dtype=torch.float32, progress=progress
    )
    check_target(out, _source_dirs(plan), POINT_FILE)
    instruct = Path(resolve(str(model_cfg["instruct"]), model_cfg.get("revision")))
    config = _config(instruct, tdtype)
    point = _point(plan, name, lam, knobs, tdtype)
    with staged(out) as tmp:
        point["shards"] = _write_shards(plan.build(get_method(name), lam, tdtype, **knobs), tmp, max_shard_bytes)
        (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        for pattern in COPY_PATTERNS:
            for f in instruct.glob(pattern):
                if f.is_file():
                    shutil.copy2(f, tmp / f.name)
        (tmp / POINT_FILE).write_text(_json(point) + "\n")
    return out


def _float_dtype(dtype: str | torch.dtype) -> torch.dtype:
    tdtype = getattr(torch, dtype, None) if isinstance(dtype, str) else dtype
    if not isinstance(tdtype, torch.dtype) or not tdtype.is_floating_point:
        raise ConfigError(f"export dtype must be a float dtype name like float32/bfloat16, got {dtype!r}")
    return tdtype


def _finite(lam: Any) -> float:
    try:
        value = float(lam)
    except (TypeError, ValueError):
        raise ConfigError(f"--lam must be a number, got {lam!r}") from None
    if not math.isfinite(value):
        raise ConfigError(f"--lam must be finite, got {lam!r}")
    return value


def _local_dirs(model_cfg: Mapping[str, Any]) -> list[Path]:
    """The local folders named in ``model_cfg`` (hub ids are checked once resolved, via the plan)."""
    paths = [model_cfg.get(k) for k in ("base", "instruct", "target", "adapter")]
    paths += list(model_cfg.get("finetuned") or [])
    return [Path(str(p)).expanduser() for p in paths if p and Path(str(p)).expanduser().is_dir()]


def _source_dirs(plan: Any) -> list[Path]:
    """Every folder the plan reads (an export must not land in, over or around one)."""
    cks = [plan.anchor, *plan.finetuned, *([plan.reference] if plan.reference is not None else [])]
    return [c.path for c in cks] + ([plan.adapter.path] if plan.adapter is not None else [])


def _config(instruct: Path, tdtype: torch.dtype) -> dict:
    """The instruct config with the export's dtype under both keys transformers versions read."""
    try:
        config = json.loads((instruct / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"{instruct / 'config.json'}: cannot read ({e})") from None
    dname = str(tdtype).replace("torch.", "")
    config["torch_dtype"] = dname  # the key vLLM and transformers < 5 read
    if "dtype" in config or "torch_dtype" not in config:
        config["dtype"] = dname  # transformers >= 5 writes this one
    return config


def _point(plan: Any, name: str, lam: float, knobs: dict, tdtype: torch.dtype) -> dict:
    """``mergesweep_point.json`` without its shard list, checked to be strict JSON before any tensor."""
    sources = {
        "anchor": str(plan.anchor.path),
        "finetuned": [str(c.path) for c in plan.finetuned],
        "reference": None if plan.reference is None else str(plan.reference.path),
        "adapter": None if plan.adapter is None else str(plan.adapter.path),
    }
    hashes = {
        str(c.path): dir_hashes(c.path)
        for c in [plan.anchor, *plan.finetuned, *([plan.reference] if plan.reference else [])]
    }
    if plan.adapter is not None:
        hashes[str(plan.adapter.path)] = dir_hashes(plan.adapter.path, ("adapter_*",))
    point = {
        **describe_point(name, lam, knobs),
        "dtype": str(tdtype).replace("torch.", ""),
        "sources": sources,
        "source_sha256": hashes,
        "notes": plan.notes,
        "shards": [],
        "mergesweep_version": __version__,
    }
    _json(point)
    return point


def _json(obj: Any) -> str:
    """Strict JSON (``NaN``/``Infinity`` are not JSON: a knob like that is a ConfigError, not a bad file)."""
    try:
        return json.dumps(obj, indent=2, default=str, allow_nan=False)
    except ValueError as e:
        raise ConfigError(f"export metadata is not valid JSON ({e}); check --lam and --knob values") from None


def _write_shards(tensors: Iterable[tuple[str, torch.Tensor]], out: Path, max_shard_bytes: int) -> list[str]:
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
    """The method's conf/merge YAML (given, or under ``paths.conf_dir()``), else just its name."""
    import yaml

    path = Path(conf) if conf else conf_dir() / "merge" / f"{method}.yaml"
    if path.is_file():
        cfg = yaml.safe_load(path.read_text()) or {}
        schemas = [str(d)[: -len("_schema")] for d in cfg.pop("defaults", None) or [] if str(d).endswith("_schema")]
        named = cfg.get("name", schemas[0] if schemas else None)  # a shipped YAML names its method by its schema
        if named != method:
            raise ConfigError(f"{path} is for method {named!r}, not {method!r}")
        return {**cfg, "name": method}
    if conf:
        raise ConfigError(f"merge config not found: {conf}")
    return {"name": method, "knobs": {}}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        prog="mergesweep-export", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
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
    ap.add_argument("--online", action="store_true", help="may download hub ids (default: offline, as sweeps)")
    ap.add_argument("--debug", action="store_true", help="full tracebacks (also HYDRA_FULL_ERROR=1)")
    args = ap.parse_args(argv)

    apply_env(offline=not args.online)
    model_cfg = {
        "base": args.base,
        "instruct": args.instruct,
        "target": args.target,
        "finetuned": args.finetuned,
        "adapter": args.adapter,
        "revision": args.revision,
        "allow_pickle": args.allow_pickle,
    }

    def export() -> Path:
        merge_cfg = _merge_conf(args.method, args.merge_conf)
        merge_cfg["knobs"] = {**(merge_cfg.get("knobs") or {}), **dict(args.knob)}
        return export_point(model_cfg, merge_cfg, args.lam, args.out, args.dtype, progress=True)

    out = oneline.run(
        "mergesweep-export",
        export,
        debug=args.debug,
        interrupted="interrupted (nothing was replaced; the partial export was removed)",
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
