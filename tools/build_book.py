"""Build the collection as a static HTML book from the notebooks' committed outputs (nothing is executed).

    python tools/build_book.py                                  (what `make book` runs: build/book/html)
    python tools/build_book.py --notebooks DIR --out DIR/html   (another notebooks folder, another output)

First every notebook is checked to hold the outputs of a run: one saved without outputs (a code cell never run,
or no code cell with any output) is refused in one line that names it, before Sphinx starts. Then the source
tree is assembled beside the output, OUT/../src: index.md from book/ and a fresh copy of the notebooks folder (a
build product; Sphinx resolves links between pages through real paths, so a link to the folder would not do;
the copy keeps file times, so an unchanged notebook is not read again). Sphinx builds it with book/conf.py,
warnings as errors (-W --keep-going). Doctrees go to OUT/../doctrees, myst-nb's images to OUT/../jupyter_execute.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"


def notebook_pages(notebooks: Path) -> list[Path]:
    """The notebooks that become pages, in reading order: NN_*.ipynb, then solutions/*.ipynb."""
    return sorted(notebooks.glob("[0-9]*.ipynb")) + sorted((notebooks / "solutions").glob("*.ipynb"))


def check_outputs(path: Path) -> None:
    """Refuse a notebook saved without the outputs of a run: the book shows outputs, it never computes them."""
    try:
        cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{path}: not a readable notebook ({type(err).__name__}: {err})") from None
    code = [c for c in cells if c.get("cell_type") == "code"]
    never_run = [i for i, c in enumerate(code, 1) if c.get("execution_count") is None]
    if code and (never_run or not any(c.get("outputs") for c in code)):
        where = f"code cell {never_run[0]} was never run" if never_run else "no code cell has an output"
        raise ValueError(f"{path} was saved without outputs ({where}): run it (make run NB={path}) "
                         "and save it before building the book")


def assemble_source(notebooks: Path, src: Path) -> None:
    """src/index.md from book/, src/notebooks/ a copy of the notebooks folder (replaced each time)."""
    if src.exists():
        shutil.rmtree(src)
    src.mkdir(parents=True)
    shutil.copy2(BOOK / "index.md", src / "index.md")
    shutil.copytree(notebooks, src / "notebooks", ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))


def build_book(notebooks: Path, out: Path, jobs: str = "auto") -> int:
    """Check every page's notebook, then run Sphinx; returns Sphinx's exit status (0: built without a warning)."""
    pages = notebook_pages(notebooks)
    if not pages:
        raise ValueError(f"notebooks must hold NN_*.ipynb notebooks, found none in {notebooks}")
    for path in pages:
        check_outputs(path)
    from sphinx.cmd.build import build_main  # only after the check: a refusal needs no Sphinx

    work = out.resolve().parent
    assemble_source(notebooks, work / "src")
    return build_main(["-b", "html", "-W", "--keep-going", "-q", "-j", jobs, "-c", str(BOOK),
                       "-d", str(work / "doctrees"), str(work / "src"), str(out)])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notebooks", type=Path, default=ROOT / "notebooks", help="the notebooks folder (notebooks)")
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "book" / "html", help="the HTML output folder")
    parser.add_argument("-j", "--jobs", default="auto", help="Sphinx's parallel jobs (default: one per core)")
    args = parser.parse_args()
    start = time.perf_counter()
    try:
        status = build_book(args.notebooks, args.out, args.jobs)
    except ValueError as err:
        print(f"make book: {err}", file=sys.stderr)
        return 2
    if status == 0:
        pages = len(notebook_pages(args.notebooks))
        print(f"book: {pages} notebook pages -> {os.path.relpath(args.out / 'index.html')} "
              f"({time.perf_counter() - start:.0f} s)")
    return status


if __name__ == "__main__":
    sys.exit(main())
