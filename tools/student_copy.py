"""Write a student copy of the collection: notebooks with outputs cleared and no solutions.

    python tools/student_copy.py notebooks build/student      (what `make student` runs)

DEST receives notebooks/NN_topic.ipynb (outputs, execution counts and widget state cleared; the
exercise stubs stay stubs; notebooks/solutions/ and any cell tagged "solution" left out), the
images their markdown links to, what installs the library the notebooks import, the weights the
notebooks evaluate and the tools that trained them (lclib/, weights/, pyproject.toml, constraints-cpu.txt,
environment.yml, tools/train_*.py) and a README for students. A teacher can zip
DEST and hand it out, or copy it to a shared JupyterHub. DEST is replaced if it is an earlier
student copy (it holds a .student-copy marker); any other non-empty folder is refused.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from pathlib import Path

import nbformat

MARKER = ".student-copy"
SUPPORT = ("lclib", "weights", "pyproject.toml", "constraints-cpu.txt", "environment.yml",  # relative to the repo root
           # the training tools: the open exercises change and run them (none of the notebooks' cells reads them)
           "tools/train_lost_in_the_middle.py", "tools/train_dilated.py", "tools/train_effective_context.py",
           "tools/train_kv_cache.py")
CELL_METADATA_DROPPED = ("execution", "collapsed", "scrolled", "jupyter")
LINKED = re.compile(r"""(?:!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?|<img[^>]*\bsrc=["']([^"']+)["'])""")

STUDENT_README = """\
# Long-Context Models, hands-on: student copy

Notebooks about how language models handle long contexts (rotary position embeddings, context
extension, dilated attention, lost in the middle, nominal against effective context), backed by a
small library, `lclib`. Read them
in order; each one says what it teaches, what it assumes and how long it takes, and ends with
questions and exercises.

## Notebooks
{listing}

## Setting up (once)
Python 3.10 or newer. In this folder:

```bash
python -m venv .venv
# No NVIDIA GPU? Take the (much smaller) CPU build of PyTorch first:
.venv/bin/pip install torch --index-url https://download.pytorch.org/whl/cpu
.venv/bin/pip install -e ".[hf]" jupyterlab
.venv/bin/jupyter lab notebooks
```

With conda instead: `conda env create -f environment.yml && conda activate lcm`, then
`jupyter lab notebooks`. On a shared JupyterHub your teacher has installed all this already:
open the `notebooks` folder.

Something not working? In this folder, `.venv/bin/python -m lclib env` (or `python -m lclib env` in your
conda environment) prints one line per requirement: OK, or what to do.

The `[hf]` extra adds Hugging Face `transformers` (4.40 or later), which one cell of notebook 06 uses to
compare our key-value cache with theirs. The open exercises retrain models with the scripts in `tools/`.

Nothing is downloaded by the notebooks; everything runs on a laptop CPU. On a slow machine, set
`LCLIB_FAST=1` before starting JupyterLab (`LCLIB_FAST=1 jupyter lab notebooks`): the same
experiments at reduced sizes, figures marked "(FAST)".

## Exercises
Each exercise is a function that raises `NotImplementedError`; write its body, run the cell, then
run the checker cell below it. The checker prints "Not done yet" while the stub is untouched, a
hint when the answer is wrong, and "Correct" when it is right. Keep the function's name and
arguments as they are: the checker calls it.

Your teacher has the worked solutions.
"""


def clean(nb: nbformat.NotebookNode) -> tuple[nbformat.NotebookNode, int]:
    """The student's view of a notebook: no outputs, no counts, no widget state, no solution cells."""
    kept, dropped = [], 0
    for cell in nb.cells:
        if "solution" in cell.get("metadata", {}).get("tags", []):
            dropped += 1
            continue
        for key in CELL_METADATA_DROPPED:
            cell.metadata.pop(key, None)
        if cell.cell_type == "code":
            cell.outputs = []
            cell.execution_count = None
        kept.append(cell)
    nb.cells = kept
    nb.metadata.pop("widgets", None)
    return nb, dropped


def linked_files(nb: nbformat.NotebookNode, notebook_dir: Path, root: Path) -> list[Path]:
    """Local files that markdown cells show or link to (figures, the glossary, the references), inside the
    repository; never a notebook (the copy's notebooks are written separately, and solutions stay behind)."""
    found = []
    for cell in nb.cells:
        if cell.cell_type != "markdown":
            continue
        for groups in LINKED.findall(cell.source):
            link = next(g for g in groups if g)
            if re.match(r"^[a-z]+:", link) or link.startswith("#"):
                continue  # http:, data:, attachment:, anchors
            target = (notebook_dir / link.split("#")[0]).resolve()
            if target.is_file() and target.is_relative_to(root) and target.suffix != ".ipynb":
                found.append(target)
    return found


def notebook_title(nb: nbformat.NotebookNode, fallback: str) -> str:
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
    return fallback


def prepare(dest: Path) -> None:
    if dest.exists() and any(dest.iterdir()):
        if not (dest / MARKER).exists():
            raise SystemExit(f"{dest} exists and is not a student copy (no {MARKER}); refusing to overwrite it")
        shutil.rmtree(dest)
    dest.mkdir(parents=True, exist_ok=True)
    (dest / MARKER).write_text("written by tools/student_copy.py; replaced on the next run\n")


def student_copy(src: Path, dest: Path, root: Path) -> list[Path]:
    """Write the copy; return the notebooks written (relative to dest)."""
    notebooks = sorted(p for p in src.glob("*.ipynb"))  # top level only: solutions/ stays behind
    if not notebooks:
        raise SystemExit(f"no notebooks in {src}")
    src, dest, root = src.resolve(), dest.resolve(), root.resolve()
    if dest == root or root.is_relative_to(dest) or src.is_relative_to(dest):
        raise SystemExit(f"DEST {dest} would contain the sources; pick another folder")
    prepare(dest)
    written, listing = [], []
    for path in notebooks:
        nb, dropped = clean(nbformat.read(path, as_version=4))
        if dropped:
            print(f"warning: {path.name} had {dropped} cell(s) tagged 'solution'; left out", file=sys.stderr)
        target = dest / "notebooks" / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, target)
        written.append(target.relative_to(dest))
        listing.append(f"- `notebooks/{path.name}`: {notebook_title(nb, path.stem)}")
        for linked in linked_files(nb, path.parent, root):
            copy_to = dest / linked.relative_to(root)
            copy_to.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(linked, copy_to)
    for name in SUPPORT:
        source = root / name
        if source.is_dir():
            shutil.copytree(source, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info"))
        elif source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    (dest / "README.md").write_text(STUDENT_README.format(listing="\n".join(listing)))
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path, help="the collection's notebooks folder (notebooks)")
    parser.add_argument("dest", type=Path, help="where to write the student copy (build/student)")
    parser.add_argument("--root", type=Path, help="repository root holding lclib/ (default: SRC's parent)")
    args = parser.parse_args()
    written = student_copy(args.src, args.dest, args.root or args.src.resolve().parent)
    print(f"student copy: {len(written)} notebooks, no outputs, no solutions -> {args.dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
