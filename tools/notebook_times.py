"""Write each notebook's "Time needed" section from what was counted and measured, not guessed.

    python tools/notebook_times.py          # print each notebook's three lines and the README's run times
    python tools/notebook_times.py --write  # put them into the notebooks' "Time needed" sections

Reading time: markdown words at 150 a minute plus one minute per code cell. Exercises: the labels the
notebook gives them ("**Exercise 2 (medium, 15 min).**"). Running time: notebooks/run_times.json,
which tools/run_notebooks.py (`make run`, and `--fast` for the reduced profile) keeps up to date.
Rerun this after either changes; tests/test_notebook_hygiene.py fails while a section disagrees.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
TIMES = NOTEBOOKS / "run_times.json"
WORDS_PER_MINUTE = 150
WORD = re.compile(r"[A-Za-z0-9][\w'’-]*")
EXERCISE = re.compile(r"\*\*Exercise (\d+) \((easy|medium|hard|open)(?:, ([^)]*))?\)\.?\*\*")
LINK_TARGET = re.compile(r"\]\([^)]*\)")  # a link's target is not read: "[KV cache](glossary.md#kv-cache)" is two words
HEADING = "## Time needed"
PREFIXES = ("Reading: ", "Exercises: ", "Running it: ")


def reading(nb) -> tuple[int, int, int]:
    """(minutes, markdown words, code cells) of a notebook, at WORDS_PER_MINUTE and one code cell a minute."""
    words = sum(len(WORD.findall(LINK_TARGET.sub("]", c.source))) for c in nb.cells if c.cell_type == "markdown")
    code = sum(1 for c in nb.cells if c.cell_type == "code" and c.source.strip())
    return round(words / WORDS_PER_MINUTE + code), words, code


def exercises(nb) -> list[tuple[str, str, str | None]]:
    """(number, difficulty, time or None) of each exercise, as its label gives them."""
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    return [(n, level, time or None) for n, level, time in EXERCISE.findall(markdown)]


def duration(seconds: float) -> str:
    """About how long, rounded the way one says it: '40 s', '2 minutes'."""
    if seconds < 90:
        return f"{max(5, 5 * round(seconds / 5)):.0f} s"
    return f"{round(seconds / 60)} minutes"


def lines(path: Path, times: dict) -> list[str]:
    """The three lines of the notebook's "Time needed" section."""
    nb = nbformat.read(path, as_version=4)
    minutes, words, code = reading(nb)
    words_rounded = max(100, 100 * round(words / 100))
    exercise = ", ".join(f"{n} ({level}, {time})" if time else f"{n} ({level}: an hour or more)"
                         for n, level, time in exercises(nb))
    measured = times.get(path.relative_to(NOTEBOOKS).as_posix(), {})
    if "full" not in measured or "reduced" not in measured:
        raise SystemExit(f"{path.name}: no full and reduced run recorded in {TIMES.name}; run "
                         f"`make run` and `python tools/run_notebooks.py --fast notebooks` first")
    full, reduced = measured["full"], measured["reduced"]
    running = (f"Running it: about {duration(full['seconds'])} in the full profile and about "
               f"{duration(reduced['seconds'])} in the reduced one (`LCLIB_FAST=1`), measured on "
               f"{full['cpu_cores']} CPU cores.")
    slow = [s for s in full.get("long_cells", {}).values() if s > 120]
    if slow:
        running += (" One cell takes over 2 minutes; the text before it says so." if len(slow) == 1 else
                    f" {len(slow)} cells take over 2 minutes each; the text before each says so.")
    return [f"Reading: about {minutes} minutes (about {words_rounded:,} words and {code} code cells, at "
            f"{WORDS_PER_MINUTE} words and one code cell a minute).",
            f"Exercises: {exercise}." if exercise else "Exercises: none.",
            running]


def write(path: Path, new: list[str]) -> bool:
    """Replace the three lines in the notebook's "Time needed" section; keep whatever else it says."""
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "markdown" and HEADING in cell.source:
            head, rest = cell.source.split(HEADING, 1)
            body, sep, after = rest.partition("\n## ")
            kept = [ln for ln in body.strip("\n").splitlines() if not ln.startswith(PREFIXES)]
            section = "\n".join([HEADING, *new, *kept])
            source = head + section + ("\n\n## " + after if sep else "")
            if source != cell.source:
                cell.source = source
                nbformat.write(nb, path)
                return True
            return False
    raise SystemExit(f"{path.name} has no '{HEADING}' section")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="write the lines into the notebooks")
    args = parser.parse_args()
    times = json.loads(TIMES.read_text()) if TIMES.exists() else {}
    for path in sorted(NOTEBOOKS.glob("*.ipynb")):
        new = lines(path, times)
        changed = write(path, new) if args.write else False
        print(f"{path.name}{' (written)' if changed else ''}\n  " + "\n  ".join(new))
    return 0


if __name__ == "__main__":
    sys.exit(main())
