"""The first code cell of every notebook: installs the collection where lclib is missing (Colab), else nothing."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p for p in (ROOT / "notebooks").glob("**/*.ipynb") if ".ipynb_checkpoints" not in p.parts)

SETUP_CELL = '''\
# Colab, or any kernel without lclib: fetch this collection and install it. Where lclib is installed: nothing.
import importlib.util
import os
import subprocess
import sys

if importlib.util.find_spec("lclib") is None:
    REPO = os.environ.get("LCLIB_REPO", "https://github.com/OWNER/REPO")  # your class's copy of the collection
    subprocess.run(["git", "clone", "--quiet", "--depth", "1", REPO, "long-context-hands-on"], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "-e", "long-context-hands-on"], check=True)
    sys.path.insert(0, os.path.abspath("long-context-hands-on"))  # this kernel started before the install
    os.chdir("long-context-hands-on/notebooks")  # where the notebooks find weights/ and figures/'''


def first_code_cells(path: Path, n: int = 2) -> list[str]:
    cells = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
    return ["".join(c["source"]) for c in cells[:n]]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[str(p.relative_to(ROOT)) for p in NOTEBOOKS])
def test_every_notebook_starts_with_the_setup_cell(path):
    setup, imports = first_code_cells(path)
    assert setup == SETUP_CELL, f"{path.name}: the first code cell must be tests/test_setup_cell.py's SETUP_CELL"
    assert "setup_notebook" in imports, f"{path.name}: the second code cell seeds and prints the banner"


def _run_setup(monkeypatch, lclib_found: bool) -> list:
    """Execute SETUP_CELL with subprocess.run, os.chdir and sys.path recorded instead of acting."""
    calls: list = []
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: (real_find_spec(name, *a) if lclib_found or name != "lclib" else None))
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: calls.append(("run", cmd, kw)))
    monkeypatch.setattr(os, "chdir", lambda where: calls.append(("chdir", where)))
    monkeypatch.setenv("LCLIB_REPO", "https://example.org/class/long-context-hands-on")
    monkeypatch.setattr("sys.path", list(__import__("sys").path))
    exec(compile(SETUP_CELL, "setup-cell", "exec"), {})
    return calls


def test_setup_cell_does_nothing_where_lclib_is_installed(monkeypatch):
    assert importlib.util.find_spec("lclib") is not None
    assert _run_setup(monkeypatch, lclib_found=True) == []


def test_setup_cell_clones_and_installs_where_lclib_is_missing(monkeypatch):
    calls = _run_setup(monkeypatch, lclib_found=False)
    (run1, clone, kw1), (run2, install, kw2), (chdir, where) = calls
    assert clone[:2] == ["git", "clone"] and "https://example.org/class/long-context-hands-on" in clone
    assert install[1:5] == ["-m", "pip", "install", "--quiet"] and install[-1] == "long-context-hands-on"
    assert kw1["check"] and kw2["check"]  # a failed clone or install stops the cell with its error
    assert where == "long-context-hands-on/notebooks"
