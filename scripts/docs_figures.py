#!/usr/bin/env python
"""Render the benchmark figures quoted in README.md and docs/*.md from results/bench/*.json.

Every measured number the documentation quotes lives in a marked block, and this script is the only thing that
writes one. A block is

    <!-- figures:NAME -->
    (generated text: never edit by hand)
    <!-- /figures -->

and NAME is a key of ``RENDERERS`` below. This file is the substitution engine; the renderers it calls
(``figures_bench.py``, ``figures_realsize.py``) read the JSON that ``scripts/bench_*.py`` and
``scripts/fault_matrix.py`` write. After rerunning a benchmark:

    python scripts/docs_figures.py            # rewrite every stale block in README.md and docs/*.md
    python scripts/docs_figures.py --check    # exit 1 naming every stale block (tests/test_docs.py runs this)
    python scripts/docs_figures.py --list     # which JSON each block reads, and where the blocks are

Standard library only, no engine, no model: it runs in a fraction of a second.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the renderers beside this script, however it is loaded
from figures_bench import SWAP_REAL, bench_summary, eval_, eval_real, faults, merge, swap, swap_real, sweep
from figures_json import REPO
from figures_realsize import layout_tradeoff, realsize_notes, realsize_table

BLOCK = re.compile(r"^<!-- figures:([A-Za-z0-9_-]+) -->\n(.*?)^<!-- /figures -->$", re.M | re.S)
OPEN = re.compile(r"^<!-- figures:([A-Za-z0-9_-]+) -->$", re.M)
CLOSE = re.compile(r"^<!-- /figures -->$", re.M)


def doc_files() -> list[Path]:
    """README.md and every page under docs/."""
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


# name -> (renderer, the JSON files it reads); a block names one of these
RENDERERS: dict[str, tuple[Callable[[], str], list[str]]] = {
    "bench-summary": (
        bench_summary,
        ["swap", "sweep", "sweep-large", "merge", "realsize", "eval", "faults", *SWAP_REAL, "eval_real"],
    ),
    "swap": (swap, ["swap"]),
    "swap-real": (swap_real, list(SWAP_REAL)),
    "sweep": (sweep, ["sweep", "sweep-large"]),
    "merge": (merge, ["merge"]),
    "realsize-table": (realsize_table, ["realsize"]),
    "realsize-notes": (realsize_notes, ["realsize"]),
    "layout-tradeoff": (layout_tradeoff, ["realsize"]),
    "eval": (eval_, ["eval"]),
    "eval-real": (eval_real, ["eval_real"]),
    "faults": (faults, ["faults"]),
}


class FiguresError(Exception):
    """A malformed block or an unknown block name."""


def render_text(text: str, where: str = "<text>") -> tuple[str, list[str]]:
    """``text`` with every block re-rendered, and the names of the blocks whose content changed."""
    opens, closes = OPEN.findall(text), CLOSE.findall(text)
    blocks = BLOCK.findall(text)
    if len(opens) != len(closes) or len(blocks) != len(opens):
        raise FiguresError(f"{where}: {len(opens)} '<!-- figures:NAME -->' and {len(closes)} '<!-- /figures -->'")
    changed: list[str] = []

    def sub(m: re.Match[str]) -> str:
        name, old = m.group(1), m.group(2)
        if name not in RENDERERS:
            raise FiguresError(f"{where}: unknown block 'figures:{name}' (known: {', '.join(RENDERERS)})")
        new = RENDERERS[name][0]().rstrip("\n") + "\n"
        if new != old:
            changed.append(name)
        return f"<!-- figures:{name} -->\n{new}<!-- /figures -->"

    return BLOCK.sub(sub, text), changed


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="change nothing; exit 1 if any block is stale")
    ap.add_argument("--list", action="store_true", help="list the blocks and the JSON each reads")
    ap.add_argument("files", nargs="*", type=Path, help="markdown files (default: README.md and docs/*.md)")
    args = ap.parse_args(argv)
    files = args.files or doc_files()
    stale = 0
    try:
        for path in files:
            text = path.read_text()
            rel = path.resolve().relative_to(REPO) if path.resolve().is_relative_to(REPO) else path
            if args.list:
                for name in BLOCK.findall(text):
                    reads = ", ".join(f"results/bench/{j}.json" for j in RENDERERS.get(name[0], (None, []))[1])
                    print(f"{rel}: figures:{name[0]} <- {reads or 'unknown block'}")
                continue
            new, changed = render_text(text, str(rel))
            for name in changed:
                print(f"{rel}: block 'figures:{name}' is {'stale' if args.check else 'updated'}")
            stale += len(changed)
            if changed and not args.check:
                path.write_text(new)
    except (FiguresError, OSError, KeyError, ValueError) as e:
        print(f"docs_figures: {type(e).__name__}: {e}", file=sys.stderr)
        return 2
    if args.check and stale:
        print(f"{stale} stale block(s): run `python scripts/docs_figures.py` and commit the result", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
