"""The README and docs/ stay honest: benchmark figures match results/bench/*.json, links resolve, commands are real.

* every ``<!-- figures:NAME -->`` block is what ``scripts/docs_figures.py`` renders from the JSON now (a rerun
  benchmark, or a number typed by hand inside a block, fails here until the script is rerun);
* every relative link and image in README.md and docs/*.md points at a file that exists (and at a heading that
  exists, for ``#anchors`` into markdown);
* the test command CI runs (``.ci/run``) is the one the README states;
* every ``mergesweep -m ...`` / ``mergesweep check ...`` example composes with Hydra, and every ``--flag`` of the
  other commands shown exists in the tool that takes it.

Fast: no engine, no model; the Hydra compositions take a few seconds.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
SCRIPT = REPO / "scripts" / "docs_figures.py"
FENCE = re.compile(r"^```.*?^```[ \t]*$", re.M | re.S)
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\[\]]*\])*\]\(([^()\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)


def _figures_module():
    spec = importlib.util.spec_from_file_location("docs_figures", SCRIPT)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_docs_exist():
    names = {p.name for p in DOCS}
    assert {"README.md", "benchmarks.md", "design.md", "engine-internals.md", "faults.md"} <= names


# --- figures ----------------------------------------------------------------------------------------------------


def test_figures_match_bench_json():
    """`docs_figures.py --check`, as a reader would run it: every block equals its rendering from the JSON."""
    r = subprocess.run([sys.executable, str(SCRIPT), "--check"], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, f"stale figures (run `python scripts/docs_figures.py`):\n{r.stdout}{r.stderr}"


def test_every_renderer_is_used_and_every_block_known():
    mod = _figures_module()
    used = {name for p in DOCS for name, _ in mod.BLOCK.findall(p.read_text())}
    assert used == set(mod.RENDERERS), f"unused renderers: {set(mod.RENDERERS) - used}"
    for _, jsons in mod.RENDERERS.values():
        for j in jsons:
            assert (REPO / "results" / "bench" / f"{j}.json").is_file(), j


def test_check_fails_on_a_stale_number(tmp_path):
    """A number edited inside a block, or an unknown block, is caught; a fresh file passes and is left alone."""
    mod = _figures_module()
    readme = (REPO / "README.md").read_text()
    m = mod.BLOCK.search(readme)
    assert m is not None and m.group(1) == "bench-summary"
    fresh = tmp_path / "fresh.md"
    fresh.write_text(readme)
    assert mod.main(["--check", str(fresh)]) == 0

    stale = tmp_path / "stale.md"
    block = m.group(0)
    figure = re.search(r"\*\*(\d+)x\*\*", block)
    assert figure is not None
    stale.write_text(readme.replace(block, block.replace(figure.group(0), f"**{int(figure.group(1)) + 1}x**", 1)))
    assert mod.main(["--check", str(stale)]) == 1
    assert mod.main([str(stale)]) == 0  # re-rendered in place
    assert stale.read_text() == readme

    unknown = tmp_path / "unknown.md"
    unknown.write_text("<!-- figures:no-such-block -->\n<!-- /figures -->\n")
    assert mod.main(["--check", str(unknown)]) == 2
    unclosed = tmp_path / "unclosed.md"
    unclosed.write_text("<!-- figures:swap -->\nx\n")
    assert mod.main(["--check", str(unclosed)]) == 2


# --- links ------------------------------------------------------------------------------------------------------


def _prose(text: str) -> str:
    """Markdown without fenced code blocks and inline code spans (links there are not links)."""
    text = FENCE.sub("", text)
    return re.sub(r"`[^`\n]*`", "", text)


def _slug(heading: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens."""
    h = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return h.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    return {_slug(h) for h in HEADING.findall(FENCE.sub("", path.read_text()))}


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_relative_links_resolve(doc):
    links = LINK.findall(_prose(doc.read_text()))
    assert links, f"{doc.name}: no links found (the link pattern is broken?)"
    bad = []
    for target in links:
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path_part, _, anchor = target.partition("#")
        dest = (doc.parent / path_part).resolve() if path_part else doc
        if not dest.exists():
            bad.append(f"{target}: no such file")
            continue
        if anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            bad.append(f"{target}: no heading with anchor #{anchor} in {dest.relative_to(REPO)}")
    assert not bad, f"{doc.relative_to(REPO)}:\n" + "\n".join(bad)


def test_slug_matches_github():
    assert _slug("Real size on this CPU (`bench_realsize.py`)") == "real-size-on-this-cpu-bench_realsizepy"
    assert _slug("Extending: a family, a method, a task") == "extending-a-family-a-method-a-task"


# --- commands ---------------------------------------------------------------------------------------------------


def test_readme_states_the_ci_test_command():
    run = (REPO / ".ci" / "run").read_text().splitlines()
    (cmd,) = [ln.strip() for ln in run if ln.strip().startswith("bash scripts/test.sh")]
    readme = (REPO / "README.md").read_text()
    assert "## Running the tests" in readme
    blocks = "\n".join(FENCE.findall(readme))
    assert re.search(rf"^{re.escape(cmd)}(\s|$)", blocks, re.M), f"README has no code line starting with {cmd!r}"


def _commands() -> list[tuple[str, list[str]]]:
    """(doc name, argv) of every shell line in the fenced code blocks of README.md and docs/*.md."""
    out = []
    for doc in DOCS:
        for block in FENCE.findall(doc.read_text()):
            body = "\n".join(block.splitlines()[1:-1]).replace("\\\n", " ")
            for line in body.splitlines():
                try:
                    argv = shlex.split(line, comments=True)
                except ValueError:
                    continue
                while argv and re.match(r"^[A-Z_]+=", argv[0]):  # VAR=value prefixes
                    argv = argv[1:]
                if argv:
                    out.append((doc.name, argv))
    return out


def _first_of_sweep(arg: str) -> str:
    """``key=a,b,c`` (a Hydra sweep) -> ``key=a``; lists and dicts in brackets are kept whole."""
    key, eq, value = arg.partition("=")
    if not eq:
        return arg
    depth, cut = 0, len(value)
    for i, c in enumerate(value):
        depth += c in "[{("
        depth -= c in "]})"
        if c == "," and depth == 0:
            cut = i
            break
    return f"{key}={value[:cut]}"


def _hydra_overrides(argv: list[str]) -> list[str]:
    return [_first_of_sweep(a) for a in argv if not a.startswith(("-", "hydra/", "hydra."))]


SUBCOMMAND_SOURCES = {
    "verify": "src/mergesweep/tools/verify.py",
    "status": "src/mergesweep/tools/status.py",
    "report": "src/mergesweep/report/report.py",
    "check": "src/mergesweep/checks/check.py",
    "setup-real": "src/mergesweep/tools/real_models.py",
    "export": "src/mergesweep/tools/export.py",
}


def _tool(argv: list[str]) -> tuple[str, list[str]] | None:
    """What a command line runs: ('sweep', args), ('check', args), (source file, args) or None (not ours)."""
    prog = Path(argv[0]).name
    if prog == "mergesweep" and len(argv) > 1 and argv[1] == "-m":
        return "sweep", argv[2:]
    if prog == "mergesweep" and len(argv) > 1 and argv[1] in SUBCOMMAND_SOURCES:
        return ("check" if argv[1] == "check" else SUBCOMMAND_SOURCES[argv[1]]), argv[2:]
    if prog == "mergesweep-export":
        return "src/mergesweep/tools/export.py", argv[1:]
    if argv[:2] == ["bash", "scripts/sweep.sh"]:
        return "sweep", argv[2:]
    if prog == "python" and len(argv) > 2 and argv[1] == "-m" and argv[2].startswith("mergesweep."):
        return "src/" + argv[2].replace(".", "/") + ".py", argv[3:]
    if prog == "python" and len(argv) > 1 and argv[1].startswith("scripts/"):
        return argv[1], argv[2:]
    return None


def test_commands_are_found():
    tools = [t for _, argv in _commands() if (t := _tool(argv))]
    kinds = {k for k, _ in tools}
    assert {"sweep", "check", "src/mergesweep/tools/verify.py", "src/mergesweep/tools/export.py"} <= kinds, kinds
    assert sum(k == "sweep" for k, _ in tools) >= 10


def test_flags_exist():
    """Every --flag shown for a tool other than the sweep appears in that tool's source."""
    bad = []
    for doc, argv in _commands():
        tool = _tool(argv)
        if tool is None or tool[0] == "sweep":
            continue
        src_name = "src/mergesweep/checks/check.py" if tool[0] == "check" else tool[0]
        src = (REPO / src_name).read_text()
        for a in tool[1]:
            flag = a.split("=")[0]
            if flag.startswith("--") and f'"{flag}"' not in src:
                bad.append(f"{doc}: {' '.join(argv)}: {flag} is not a flag of {src_name}")
    assert not bad, "\n".join(bad)


def test_sweep_examples_compose():
    """Every sweep / check example composes into the app's config (the first value of each sweep list)."""
    from mergesweep.checks.check import compose_config

    bad = []
    for doc, argv in _commands():
        tool = _tool(argv)
        if tool is None or tool[0] not in ("sweep", "check"):
            continue
        if any(a.startswith("hydra.searchpath=") for a in tool[1]):
            continue  # its groups live in the user's own folder (tests/test_install.py composes such a one)
        overrides = _hydra_overrides(tool[1])
        try:
            compose_config(overrides)
        except Exception as e:  # any composition error is the finding
            bad.append(f"{doc}: {' '.join(argv)}\n    {type(e).__name__}: {str(e).splitlines()[0]}")
    assert not bad, "\n".join(bad)
