"""Layering: the engine knows nothing of its users; the public namespace is complete."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import rio_core

import rio_rt as rio

REPO = Path(__file__).resolve().parent.parent
ENGINE_SOURCES = REPO / "rio_core"
PACKAGE_SOURCES = REPO / "python" / "rio_rt"

IMPORT_OF_RIO_RT = re.compile(
    r"""
    ^\s*(?:from|c?import)\s+rio_rt\b              # import rio_rt / from rio_rt... / cimport
    | ^[ \t]*import[ \t]+[\w., \t]*\brio_rt\b      # import os, rio_rt
    | (?:import_module|__import__)\(\s*['"]rio_rt  # dynamic imports
    """,
    re.MULTILINE | re.VERBOSE,
)

CONTRACT_NAMES = {
    "block_on",
    "Runtime",
    "spawn",
    "Task",
    "current_task",
    "CancelledError",
    "Future",
    "Context",
    "Waker",
    "Ready",
    "PENDING",
    "Sleep",
    "sleep",
    "sleep_until",
    "monotonic",
    "yield_now",
    "timeout",
    "timeout_at",
    "wait_for",
    "spawn_blocking",
}


def engine_source_files() -> list[Path]:
    files = []
    for pattern in ("*.pyx", "*.pxd", "*.py", "*.pyi", "*.pxi"):
        files.extend(ENGINE_SOURCES.rglob(pattern))
    return sorted(files)


def test_the_pattern_catches_imports():
    for line in (
        "import rio_rt",
        "from rio_rt import spawn",
        "from rio_rt.time import sleep",
        "    import rio_rt as rio",
        "import os, rio_rt",
        "cimport rio_rt",
        "importlib.import_module('rio_rt')",
    ):
        assert IMPORT_OF_RIO_RT.search(line), line
    for line in ("import rio_core", "# rio_core never imports rio_rt", "x = 'rio_rt_thing'"):
        assert not IMPORT_OF_RIO_RT.search(line), line


def test_rio_core_sources_never_import_rio_rt():
    files = engine_source_files()
    assert any(f.suffix == ".pyx" for f in files), f"no engine sources under {ENGINE_SOURCES}"
    offenders = []
    for path in files:
        text = path.read_text(encoding="utf-8")
        for match in IMPORT_OF_RIO_RT.finditer(text):
            line_number = text.count("\n", 0, match.start()) + 1
            offenders.append(f"{path.relative_to(REPO)}:{line_number}: {match.group().strip()}")
    assert offenders == []


def test_importing_rio_core_does_not_import_rio_rt(tmp_path):
    script = textwrap.dedent(
        """
        import importlib, pkgutil, sys
        import rio_core
        for info in pkgutil.iter_modules(rio_core.__path__):
            importlib.import_module(f"rio_core.{info.name}")
        loaded = sorted(name for name in sys.modules if name.split(".")[0] == "rio_rt")
        print("ENGINE-MODULES", len(list(pkgutil.iter_modules(rio_core.__path__))))
        print("LOADED", loaded)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=tmp_path,  # not the source tree: import what is installed
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "LOADED []" in proc.stdout, proc.stdout
    assert "ENGINE-MODULES 0" not in proc.stdout


def test_all_names_resolve():
    assert len(rio.__all__) == len(set(rio.__all__)), "duplicate names in __all__"
    missing = [name for name in rio.__all__ if not hasattr(rio, name)]
    assert missing == []


def test_all_covers_the_contract():
    assert CONTRACT_NAMES <= set(rio.__all__), sorted(CONTRACT_NAMES - set(rio.__all__))


def test_rio_core_exports_what_it_declares():
    exported = getattr(rio_core, "__all__", None)
    assert exported is not None
    assert [name for name in exported if not hasattr(rio_core, name)] == []
    assert callable(rio_core.debug_build)
    assert callable(rio_core.debug_counters)


def test_rio_rt_uses_only_the_documented_rio_core_api():
    """rio_rt reaches the engine only through names in rio_core.__all__."""
    documented = set(rio_core.__all__)
    files = sorted(PACKAGE_SOURCES.rglob("*.py"))
    assert files, f"no package sources under {PACKAGE_SOURCES}"
    offenders = []
    for path in files:
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        where = f"{path.relative_to(REPO)}"
        engine_aliases = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.startswith("rio_core."):
                        offenders.append(f"{where}:{node.lineno}: import {alias.name}")
                    elif alias.name == "rio_core":
                        engine_aliases.add(alias.asname or "rio_core")
            elif isinstance(node, ast.ImportFrom) and node.module:
                if node.module.startswith("rio_core."):
                    offenders.append(f"{where}:{node.lineno}: from {node.module} import ...")
                elif node.module == "rio_core":
                    for alias in node.names:
                        if alias.name not in documented:
                            offenders.append(f"{where}:{node.lineno}: rio_core.{alias.name}")
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in engine_aliases
                and node.attr not in documented
            ):
                offenders.append(f"{where}:{node.lineno}: rio_core.{node.attr}")
    assert offenders == []
