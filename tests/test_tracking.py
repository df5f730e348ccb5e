"""What a point's offline W&B run holds, read back from the run log W&B wrote: the record's numbers under their
names, the tags, and a config with every credential redacted (the secrets appear in no file of the run)."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest

from mergesweep.store.records import SCHEMA, Record

SECRETS = ("hf_AbCdEfGhIjKlMnOpQrStUv", "sk-ZyXwVuTsRqPoNmLkJiHgFe", "plain-password-123")


def record() -> Record:
    config = {
        "model": {"family": "toy", "base": "/models/base", "hf_token": SECRETS[0]},
        "suite": {"parts": {"if": {"judge": {"api_key_env": "MY_JUDGE_KEY", "tokens": ["m", "M"]}}}},
        "notes": SECRETS[1],  # a token-shaped value under an innocent key
        "db": {"password": SECRETS[2]},
        "seed": 1234,
    }
    return Record.from_json({
        "schema": SCHEMA, "complete": True,
        "point_id": "toy__linear__lam0.5__abc", "sweep": "wb_check", "family": "toy", "method": "linear",
        "lam": 0.5, "extrapolation": False, "knobs": {},
        "summary": {"icl": 0.625, "if": 0.25},
        "metrics": {"icl": {"metric": "acc",
                            "tasks": {"toy_recall_colors": {"acc": 0.75}, "toy_recall_animals": {"acc": 0.5}}},
                    "if": {"metric": "prompt_level_strict_acc",
                           "tasks": {"toy_ifeval": {"prompt_level_strict_acc": 0.25}}}},
        "times": {"merge_s": 0.01, "swap_s": 0.02, "total_s": 1.5},
        "config": config,
    })  # fmt: skip


def wandb_records(path: Path):
    """Records of an offline run's ``run-*.wandb`` log (W&B's LevelDB-style log of ``wandb_internal_pb2.Record``).

    W&B 0.31 writes offline runs only there (no files/config.yaml or summary JSON until synced), so this is
    exactly what ``wandb sync`` would upload. Format: a 7-byte file header, then 32 KiB blocks of records, each
    with a 7-byte header (crc32, length, kind: 1 full, 2 first, 3 middle, 4 last chunk).
    """
    from wandb.proto import wandb_internal_pb2 as pb

    data, block, hdr = path.read_bytes(), 32768, 7
    ident, magic, _ = struct.unpack("<4sHB", data[:hdr])
    assert ident == b":W&B" and magic == 0xBEE1, "not a W&B run log"
    pos, buf = hdr, b""
    while pos + hdr <= len(data):
        left = block - pos % block
        if left < hdr:
            pos += left
            continue
        _, n, kind = struct.unpack("<IHB", data[pos : pos + hdr])
        if n == 0 and kind == 0:  # zero padding to the end of the block
            pos += left
            continue
        buf += data[pos + hdr : pos + hdr + n]
        pos += hdr + n
        if kind in (1, 4):
            rec = pb.Record()
            rec.ParseFromString(buf)
            buf = b""
            yield rec


def run_contents(run_dir: Path) -> dict:
    """Config, tags, logged history and final summary of one offline run, from its log."""
    (log,) = run_dir.glob("run-*.wandb")
    out: dict = {"config": {}, "tags": [], "history": {}, "summary": {}}

    def key(item) -> str:
        return item.key or "/".join(item.nested_key)

    for rec in wandb_records(log):
        kind = rec.WhichOneof("record_type")
        if kind in ("run", "config"):
            cfg = rec.run.config if kind == "run" else rec.config
            out["config"].update({key(u): json.loads(u.value_json) for u in cfg.update})
            if kind == "run":
                out["tags"] = list(rec.run.tags)
        elif kind == "history":
            out["history"].update({key(i): json.loads(i.value_json) for i in rec.history.item})
        elif kind == "summary":
            out["summary"].update({key(u): json.loads(u.value_json) for u in rec.summary.update})
    return out


def test_point_run_holds_the_record_and_no_secret(tmp_path, monkeypatch):
    from mergesweep.report import tracking

    monkeypatch.setenv("WANDB_MODE", "offline")
    for var in ("WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(var, str(tmp_path / var.lower()))
    rec = record()
    run_dir = Path(tracking.log_point({"enabled": True, "project": "ms-test"}, tmp_path / "wb_check", rec))
    assert run_dir.parent == tmp_path / "wb_check" / "wandb_runs" / "wandb" and run_dir.name.startswith("offline-run-")
    got = run_contents(run_dir)

    want = {"summary/icl": 0.625, "summary/if": 0.25, "icl/toy_recall_colors/acc": 0.75,
            "icl/toy_recall_animals/acc": 0.5, "if/toy_ifeval/prompt_level_strict_acc": 0.25,
            "time/merge_s": 0.01, "time/swap_s": 0.02, "time/total_s": 1.5, "lam": 0.5}  # fmt: skip
    assert {k: got["history"].get(k) for k in want} == want
    assert {k: got["summary"].get(k) for k in want} == want
    assert got["summary"]["point_id"] == rec.point_id and got["summary"]["extrapolation"] is False
    assert {"toy", "linear"} <= set(got["tags"])

    config = got["config"]
    assert config["model"] == {"family": "toy", "base": "/models/base", "hf_token": "<redacted>"}
    assert config["db"] == {"password": "<redacted>"} and config["notes"] == "<redacted>"
    assert config["suite"]["parts"]["if"]["judge"] == {"api_key_env": "MY_JUDGE_KEY", "tokens": ["m", "M"]}
    assert config["seed"] == 1234

    files = [f for f in run_dir.rglob("*") if f.is_file()]
    for f in files:  # the run log and W&B's own debug logs: nothing on disk carries a secret
        leaked = [s for s in SECRETS if s.encode() in f.read_bytes()]
        assert not leaked, f"{f.relative_to(run_dir)} holds {leaked}"


@pytest.mark.parametrize("cfg", [{"enabled": False}])
def test_tracking_off_writes_nothing(tmp_path, cfg):
    from mergesweep.report import tracking

    assert tracking.log_point(cfg, tmp_path / "s", record()) is None
    assert not (tmp_path / "s").exists()
