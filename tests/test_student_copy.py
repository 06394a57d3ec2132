"""`make student` hands out the collection without its answers: no outputs, no solutions, stubs still stubs."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
TOOL = ROOT / "tools" / "student_copy.py"
FIXTURES = ROOT / "tests" / "fixtures"
MIN_LINE = 25  # shorter solution lines ("return out") may appear anywhere by coincidence


def build(src: Path, dest: Path, root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TOOL), str(src), str(dest), "--root", str(root)],
                          capture_output=True, text=True, check=True, timeout=120)


def normalize(code: str) -> str:
    return re.sub(r"\s+", " ", code).strip()


def solution_fingerprints(src: Path) -> list[tuple[str, set[str], str]]:
    """Per solution cell: (where, its lines beyond those of the exercise stubs, its normalized body)."""
    found = []
    for sol_path in sorted((src / "solutions").glob("*.ipynb")):
        sol = nbformat.read(sol_path, as_version=4)
        student = src / f"{sol_path.stem.removesuffix('_solutions')}.ipynb"
        given = set()
        if student.exists():
            # only the stubs' lines (signature, docstring) may repeat a solution's: any other cell of the
            # notebook that holds a solution's code answers the exercise in the student's copy
            given = {line.strip() for c in nbformat.read(student, as_version=4).cells
                     if "exercise" in c.metadata.get("tags", []) for line in c.source.splitlines()}
        for cell in sol.cells:
            if "solution" not in cell.metadata.get("tags", []):
                continue
            lines = {line.strip() for line in cell.source.splitlines()}
            own = {line for line in lines - given if len(line) >= MIN_LINE and not line.startswith("#")}
            body = normalize("\n".join(line for line in cell.source.splitlines() if line.strip() not in given))
            found.append((f"{sol_path.name}: {cell.source.strip().splitlines()[0]}", own, body))
    return found


def check_student_copy(src: Path, dest: Path) -> None:
    originals = sorted(p.name for p in src.glob("*.ipynb"))
    copies = sorted(p.name for p in (dest / "notebooks").glob("*.ipynb"))
    assert copies == originals, f"student copy has {copies}, the collection {originals}"

    everything = [p for p in dest.rglob("*")]
    assert not [p for p in everything if "solution" in p.name.lower()], "a solutions file or folder was copied"
    assert (dest / "README.md").is_file() and "jupyter lab" in (dest / "README.md").read_text()
    assert (dest / "lclib" / "checks" / "__init__.py").is_file(), "the notebooks import lclib: the copy must carry it"
    if (src.parent / "weights").is_dir():  # notebooks 04 and 05 load shipped checkpoints from weights/
        shipped = sorted(p.relative_to(src.parent) for p in (src.parent / "weights").rglob("*.safetensors"))
        copied = sorted(p.relative_to(dest) for p in (dest / "weights").rglob("*.safetensors"))
        assert copied == shipped, f"the copy must carry the shipped weights {shipped}, has {copied}"

    fingerprints = solution_fingerprints(src)
    texts = {}
    for path in (dest / "notebooks").glob("*.ipynb"):
        raw = path.read_text()
        nb = nbformat.reads(raw, as_version=4)
        assert "widgets" not in nb.metadata, f"{path.name} keeps widget state"
        original = nbformat.read(src / path.name, as_version=4)
        stubs = [c.source for c in original.cells if "exercise" in c.metadata.get("tags", [])]
        for cell in nb.cells:
            tags = cell.metadata.get("tags", [])
            assert "solution" not in tags, f"{path.name} has a cell tagged 'solution'"
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, f"{path.name} keeps outputs"
        assert [c.source for c in nb.cells if "exercise" in c.metadata.get("tags", [])] == stubs, \
            f"{path.name}: exercise cells differ from the collection's stubs"
        texts[path.name] = "\n".join(c.source for c in nb.cells) + "\n" + raw
    texts["README.md"] = (dest / "README.md").read_text()
    for where, own, body in fingerprints:
        for name, text in texts.items():
            stripped = {line.strip() for line in text.splitlines()}
            leaked = sorted(line for line in own if line in stripped or line in text)
            assert not leaked, f"{name} contains solution code from {where}: {leaked[:3]}"
            assert not body or normalize(text).find(body) < 0, f"{name} contains the solution of {where}"


def test_student_copy_of_the_collection(tmp_path):
    src = ROOT / "notebooks"
    if not list(src.glob("*.ipynb")):
        pytest.skip("no notebooks in notebooks/ yet (the fixture test below still runs)")
    dest = tmp_path / "student"
    build(src, dest, ROOT)
    check_student_copy(src, dest)
    # the pages the notebooks link to travel with them; no solutions notebook does
    assert (dest / "notebooks" / "glossary.md").is_file() and (dest / "notebooks" / "references.md").is_file()
    assert not list(dest.rglob("*solutions*.ipynb"))


def test_student_copy_of_fixture(tmp_path):
    """The same checks on a throwaway collection with one exercise, its solution, and an answer leaked into a cell."""
    src = tmp_path / "collection" / "notebooks"
    (src / "solutions").mkdir(parents=True)
    shutil.copy(FIXTURES / "browser_demo.ipynb", src)
    shutil.copy(FIXTURES / "solutions" / "browser_demo_solutions.ipynb", src / "solutions")
    for name in ("lclib", "pyproject.toml"):
        (tmp_path / "collection" / name).symlink_to(ROOT / name)
    figure = tmp_path / "collection" / "figures" / "demo" / "wave.png"
    figure.parent.mkdir(parents=True)
    figure.write_bytes(b"\x89PNG\r\n\x1a\n")
    nb = nbformat.read(src / "browser_demo.ipynb", as_version=4)
    nb.cells.insert(1, nbformat.v4.new_markdown_cell("A figure: ![wave](../figures/demo/wave.png)"))
    leaked = nbformat.read(src / "solutions" / "browser_demo_solutions.ipynb", as_version=4)
    answer = next(c for c in leaked.cells if "solution" in c.metadata.get("tags", []))
    nb.cells.append(nbformat.v4.new_code_cell(answer.source, metadata={"tags": ["solution"]}))
    nb.cells[2].outputs = [nbformat.v4.new_output("stream", text="python ... | profile full\n")]
    nbformat.write(nb, src / "browser_demo.ipynb")

    dest = tmp_path / "student"
    result = build(src, dest, src.parent)
    assert "tagged 'solution'" in result.stderr
    check_student_copy(src, dest)
    assert (dest / "figures" / "demo" / "wave.png").is_file(), "an image the markdown shows was not copied"
    assert "browser_demo.ipynb" in (dest / "README.md").read_text()

    build(src, dest, src.parent)  # again: an earlier student copy is replaced
    (dest / ".student-copy").unlink()
    with pytest.raises(subprocess.CalledProcessError):
        build(src, dest, src.parent)  # a folder that is not a student copy is never overwritten


def test_fingerprints_catch_a_leak(tmp_path):
    """The leak check itself can fail: a copy that carries a solution body is caught."""
    src = tmp_path / "notebooks"
    (src / "solutions").mkdir(parents=True)
    shutil.copy(FIXTURES / "browser_demo.ipynb", src)
    shutil.copy(FIXTURES / "solutions" / "browser_demo_solutions.ipynb", src / "solutions")
    dest = tmp_path / "student"
    build(src, dest, ROOT)
    copy = dest / "notebooks" / "browser_demo.ipynb"
    nb = nbformat.read(copy, as_version=4)
    sol = nbformat.read(src / "solutions" / "browser_demo_solutions.ipynb", as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(next(c.source for c in sol.cells if "solution" in c.metadata.get("tags", []))))
    nbformat.write(nb, copy)
    with pytest.raises(AssertionError, match="solution"):
        check_student_copy(src, dest)
    assert json.loads(copy.read_text())  # still a readable notebook
