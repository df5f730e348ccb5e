"""Records: atomic writes, the resume rule, and no credential in anything written."""
from __future__ import annotations

import json

from mergesweep.provenance import REDACTED, redact
from mergesweep.records import RecordStore, point_id


def test_point_id_changes_with_config_and_is_stable():
    a = point_id("toy", "linear", 0.5, {"suite": {"limit": None}})
    assert a == point_id("toy", "linear", 0.5, {"suite": {"limit": None}})
    assert a != point_id("toy", "linear", 0.5, {"suite": {"limit": 10}})
    assert a.startswith("toy__linear__lam0.5__")


def test_write_is_atomic_and_resume_ignores_torn_files(tmp_path):
    store = RecordStore(tmp_path)
    pid = point_id("toy", "linear", 1.0, {})
    assert not store.done(pid)
    store.records.mkdir(parents=True)
    store.path(pid).write_text('{"point_id": "' + pid + '", "complete": tr')  # a torn write from elsewhere
    assert not store.done(pid)
    store.write({"point_id": pid, "summary": {"icl": 0.5, "if": 0.5}})
    assert store.done(pid)
    assert [r["point_id"] for r in store] == [pid]
    assert not list(store.records.glob(".*.tmp")), "no temporary file may stay behind"
    assert json.loads(store.path(pid).read_text())["complete"] is True


def test_redact_hides_keys_and_token_like_values():
    cfg = {"judge": {"api_key": "sk-abcdefghijklmnopqrstuvwx", "base_url": "http://127.0.0.1:8000/v1"},
           "tokenizer": "keep/me", "env": ["hf_ABCDEFGHIJKLMNOPQRSTUVWX"], "HF_TOKEN": "abc"}
    out = redact(cfg)
    assert out["judge"]["api_key"] == REDACTED and out["HF_TOKEN"] == REDACTED
    assert out["env"] == [REDACTED]
    assert out["judge"]["base_url"] == cfg["judge"]["base_url"] and out["tokenizer"] == "keep/me"
    assert "sk-abc" not in json.dumps(out)
