"""Where the project's shipped configs, data and caches live.

``conf/`` and ``data/`` are found in this order: the ``MERGESWEEP_CONF`` / ``MERGESWEEP_DATA`` override, the
checkout this code runs from (``conf/`` and ``data/`` at its root, also for an editable install), else the
package data of an installed wheel (``mergesweep/conf``, ``mergesweep/data``, copied in by ``setup.py``; the wheel
leaves out ``data/real/``). Nothing else reads those folders by its own path logic.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
REPO = PACKAGE.parents[1]  # a checkout's root when running from one (src layout); use ``checkout()``


def checkout() -> Path | None:
    """The source checkout this code runs from, or None for an installed wheel.

    A checkout is ``src/mergesweep`` with ``conf/config.yaml`` two folders up; a wheel installs the package at
    ``.../site-packages/mergesweep``, where that path does not exist.
    """
    if PACKAGE.parent.name == "src" and (REPO / "conf" / "config.yaml").is_file():
        return REPO
    return None


def _shipped(name: str) -> Path:
    """``conf`` or ``data`` of the checkout, else of the installed package."""
    root = checkout()
    return (root if root is not None else PACKAGE) / name


def register_resolvers() -> None:
    """``${ms_data:}`` (the shipped data folder) and ``${ms_models:}`` (``models_dir()``) in model configs.
    Every module that composes configs (the job,
    ``status``, ``check``, ``verify``) calls this first; registering twice is harmless."""
    from omegaconf import OmegaConf

    OmegaConf.register_new_resolver("ms_data", lambda: str(data_dir()), replace=True)
    OmegaConf.register_new_resolver("ms_models", lambda: str(models_dir()), replace=True)


def data_dir() -> Path:
    """Shipped models and evaluation data: ``$MERGESWEEP_DATA``, else the checkout's ``data/``, else the installed
    package's copy (without ``data/real/``)."""
    env = os.environ.get("MERGESWEEP_DATA")
    return Path(env) if env else _shipped("data")


def conf_dir() -> Path:
    """Hydra config groups: ``$MERGESWEEP_CONF``, else the checkout's ``conf/``, else the installed package's copy.
    More groups or options come in through Hydra's search path (``hydra.searchpath=[file:///my/conf]``).

    Also stores the typed schemas those YAMLs name in their defaults (``config_schema``: ``app/spec.py``;
    ``engine/vllm_schema``: ``engines/spec.py``; ``tracking/wandb_schema``: ``report/spec.py``;
    ``merge/<method>_schema``: ``merge/spec.py``, made from the methods, so it imports torch; ``suite/suite_schema``:
    ``evals/spec.py``): every composition (the app, ``check``, ``status``, tests) asks here for its folder first, and
    Hydra reads the ``ConfigStore`` only when it composes."""
    # here, not at the top: the spec modules import checks.preflight, which imports this module (a cycle)
    from .app import spec as run_spec
    from .engines import spec as engine_spec
    from .evals import spec as suite_spec
    from .merge import spec as merge_spec
    from .report import spec as tracking_spec
    from .weights import spec as model_spec

    run_spec.register()
    engine_spec.register()
    tracking_spec.register()
    model_spec.register()
    merge_spec.register()
    suite_spec.register()
    env = os.environ.get("MERGESWEEP_CONF")
    return Path(env) if env else _shipped("conf")


def cache_dir() -> Path:
    """Caches that outlive one sweep: ``$MERGESWEEP_CACHE`` or ``~/.cache/mergesweep`` (checkpoint hashes,
    vLLM's per-architecture model-info files, matplotlib's font list).

    Why not under the results folder: vLLM inspects a model class in a subprocess (about 8 s here) unless its
    cache already holds the answer, so a cache per sweep folder made every new sweep, and every launcher job
    with a fresh folder, pay that again.
    """
    return Path(os.environ.get("MERGESWEEP_CACHE", Path.home() / ".cache" / "mergesweep"))


def models_dir() -> Path:
    """``${ms_models:}``: real models converted by ``mergesweep setup-real``: ``$MERGESWEEP_MODELS`` or
    ``cache_dir()/models`` (outside the checkout: they are built from PyPI wheels, never committed)."""
    return Path(os.environ.get("MERGESWEEP_MODELS", cache_dir() / "models"))


def offline_env() -> dict[str, str]:
    """Environment that keeps every library offline and its caches in ``cache_dir()``.

    Set before heavy imports: nothing may try a hub at run time, and NLTK must find the shipped punkt_tab
    (IFEval's scorer otherwise tries a download and later fails on ``LookupError``). Hugging Face's own cache
    (``HF_HOME``) is left where the user has it, so a cache warmed online serves hub ids offline.
    """
    root = cache_dir()
    return {
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "VLLM_CACHE_ROOT": str(root / "vllm"),
        "NLTK_DATA": str(data_dir() / "nltk"),
        "MPLCONFIGDIR": str(root / "mpl"),
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }


def apply_env(offline: bool) -> None:
    """Set ``offline_env()`` where the user has not (online runs keep only what is not about the hub).

    Every entry point calls this before its first import that can reach out (lm-eval's IFEval helper runs
    ``nltk.download`` at import unless punkt_tab is found; ``huggingface_hub`` reads the offline flags at import).
    The shipped NLTK folder is added to a ``NLTK_DATA`` the user set, and to nltk's path if nltk is already in.
    """
    for k, v in offline_env().items():
        if offline or k in ("NLTK_DATA", "MPLCONFIGDIR", "VLLM_CACHE_ROOT", "VLLM_NO_USAGE_STATS", "DO_NOT_TRACK"):
            os.environ.setdefault(k, v)
    add_nltk_data()
    if offline:
        import sys

        if not any(isinstance(f, _NoNltkDownload) for f in sys.meta_path):
            sys.meta_path.insert(0, _NoNltkDownload())


class _NoNltkDownload:
    """Import hook: just before lm-eval's IFEval helper is imported, ``nltk.download`` becomes a no-op.

    Why: the helper calls ``nltk.download("punkt_tab")`` at import when punkt_tab is not found (a data folder
    without ``nltk/``), which is a network attempt on an offline run; the scorer check before the engine
    (``evals.seeded.check_scorer``) then names the missing resource in one line instead.
    """

    TRIGGER = "lm_eval.tasks.ifeval.instructions_util"

    def find_spec(self, name: str, path: object = None, target: object = None) -> None:
        if name == self.TRIGGER:
            import nltk

            nltk.download = _no_download
        return None  # the normal finders import the module


def _no_download(*args: object, **kwargs: object) -> bool:
    """``nltk.download`` on an offline run: nothing is fetched."""
    return False


def add_nltk_data() -> None:
    """The shipped punkt_tab on ``NLTK_DATA`` (after the user's folders) and on a loaded nltk's search path."""
    import sys

    shipped = str(data_dir() / "nltk")
    folders = [p for p in os.environ.get("NLTK_DATA", "").split(os.pathsep) if p]
    if shipped not in folders:
        os.environ["NLTK_DATA"] = os.pathsep.join([*folders, shipped])
    nltk = sys.modules.get("nltk")
    if nltk is not None and shipped not in nltk.data.path:
        nltk.data.path.append(shipped)
