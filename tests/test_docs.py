"""Every Markdown document the repository cites exists in the repository.

Code, tests, config and docs point readers at documents (``docs/native-api.md``,
``benchmarks/README.md``); a citation of a document that is not in the
repository sends the reader nowhere. The scan reads every file git knows (tracked,
or new and not ignored), finds each ``NAME.md`` it mentions, bare or as a path,
and looks for that document relative to the repository root and to the citing
file's folder. URLs are not citations. CHANGELOG.md is history: it may name
documents that have since gone, so it is not scanned.

Without git or a ``.git`` (a tree extracted from the sdist) there is no list of
the repository's files, and the scan is skipped.
"""

from __future__ import annotations

import posixpath
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
THIS_FILE = Path(__file__).resolve().relative_to(REPO).as_posix()

# Files whose mentions are not citations: history, and this file's own samples.
NOT_CITING = {"CHANGELOG.md", THIS_FILE}

# Markdown files that commands write (`--markdown PATH`), named as outputs.
WRITTEN_BY_COMMANDS = {
    "bench.md",  # .github/workflows/bench.yml: benchmarks/run.py --markdown bench.md
    "out.md",  # benchmarks/README.md: an example of run.py --markdown
}

# A document name, bare or as a relative path: `NOTES.md`, `docs/native-api.md`,
# `../README.md`; not part of a longer name or path (`*.md` is not a name).
MARKDOWN_NAME = re.compile(r"(?<![\w./-])((?:\.\.?/)*\w[\w.-]*(?:/\w[\w.-]*)*\.md)(?![\w/-])")
URL = re.compile(r"[A-Za-z][\w+.-]*://\S+")


def missing_documents(citing: str, text: str, known: set[str]) -> list[str]:
    """``citing:line: NAME`` for each Markdown name in ``text`` that is in none
    of ``known`` (repository-relative POSIX paths) from the root or from
    ``citing``'s folder."""
    found = []
    folder = posixpath.dirname(citing)
    for line_number, line in enumerate(text.splitlines(), 1):
        for match in MARKDOWN_NAME.finditer(URL.sub(" ", line)):
            name = match.group(1)
            if name in WRITTEN_BY_COMMANDS:
                continue
            places = {posixpath.normpath(posixpath.join(base, name)) for base in ("", folder)}
            if not places & known:
                found.append(f"{citing}:{line_number}: {name}")
    return found


def repository_files() -> set[str]:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip(
            "not a git checkout (e.g. an extracted sdist): no list of the repository's files"
        )
    listing = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return {path for path in listing.split("\0") if path and (REPO / path).is_file()}


def test_every_cited_markdown_document_exists():
    known = repository_files()
    missing = []
    for path in sorted(known - NOT_CITING):
        try:
            text = (REPO / path).read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # not text
        missing.extend(missing_documents(path, text, known))
    assert not missing, "documents cited but not in the repository:\n" + "\n".join(missing)


def test_the_scanner_reports_a_missing_document_and_only_that():
    known = {"README.md", "docs/native-api.md", "benchmarks/README.md", "benchmarks/run.py"}
    sample = "\n".join(
        [
            'See docs/native-api.md and README.md (PLAN.md, "Waker").',
            "Relative to this folder: README.md, ../README.md, `./README.md`.",
            "Not citations: https://example.org/docs/GONE.md, exclude = ['*.md'], bench.md",
            "[the contract](docs/native-api.md); docs/missing-page.md's table",
        ]
    )
    assert missing_documents("benchmarks/notes.txt", sample, known) == [
        "benchmarks/notes.txt:1: PLAN.md",
        "benchmarks/notes.txt:4: docs/missing-page.md",
    ]
    # From the root, ../README.md leaves the repository.
    assert missing_documents("setup.py", "# ../README.md", known) == ["setup.py:1: ../README.md"]


def engine_modules() -> list[str]:
    """Every module of rio_core: each .pyx, each pure-Python module, each .pxd
    that has no .pyx (inline-only), by name."""
    engine = REPO / "rio_core"
    names = {p.stem for p in engine.glob("*.pyx")}
    names |= {p.stem for p in engine.glob("*.py") if p.stem != "__init__"}
    names |= {p.stem for p in engine.glob("*.pxd") if not (engine / f"{p.stem}.pyx").exists()}
    return sorted(names)


@pytest.mark.parametrize("document", ["CONTRIBUTING.md", "docs/design.md"])
def test_the_module_maps_list_every_engine_module(document):
    """CONTRIBUTING.md's layout and docs/design.md's module map name every module."""
    path = REPO / document
    if not path.exists():
        pytest.skip(f"{document} is not shipped here")
    text = path.read_text(encoding="utf-8")
    modules = engine_modules()
    assert "_runtime" in modules and "_queue" in modules, modules
    assert [name for name in modules if not re.search(rf"\b{name}\b", text)] == []


def python_blocks(document: str) -> list[str]:
    """The ```python blocks of a document that are whole programs (they import rio_rt)."""
    text = (REPO / document).read_text(encoding="utf-8")
    return [b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "import rio_rt" in b]


@pytest.mark.parametrize("document", ["docs/native-api.md"])
def test_the_documents_code_runs(document, tmp_path):
    """Every whole-program example of the contract runs (its own asserts check it)."""
    if not (REPO / document).exists():
        pytest.skip(f"{document} is not shipped here")
    blocks = python_blocks(document)
    assert blocks, f"no runnable example in {document}"
    for block in blocks:
        child = subprocess.run(
            [sys.executable, "-P", "-c", block],
            cwd=tmp_path,  # the installed engine, not the checkout's sources
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert child.returncode == 0, f"{document} example failed:\n{block}\n{child.stderr}"
