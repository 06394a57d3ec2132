"""Write an nbgrader course source of the collection: one assignment per notebook, exercises graded.

    python tools/nbgrader_course.py notebooks build/nbgrader        (what `make nbgrader` runs)
    cd build/nbgrader && nbgrader generate_assignment 02_rope_scaling   # the students' version, answers removed

Each notebook becomes source/<name>/<name>.ipynb (outputs cleared) with nbgrader's cell metadata (nbgrader 0.9,
schema 3). An exercise's stub becomes an answer cell: its signature, then the worked solution of
notebooks/solutions/ between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` (nbgrader puts ``raise
NotImplementedError()`` there in the release). Its checker cell becomes a locked autograder test,
``assert checks.check_...(fn)``: a checker raises on a wrong answer and returns False on an untouched stub, so the
assert fails on both. Points by the difficulty an exercise states: easy 1, medium 2, hard 3; an open exercise is
a manually graded task of 3 points. nbgrader_config.py names the course and raises the execution timeout; the
notebooks find weights/ and figures/ in the repository above the course folder, so write it inside the checkout.
"""

from __future__ import annotations

import argparse
import ast
import re
import shutil
import sys
from pathlib import Path

import nbformat

POINTS = {"easy": 1, "medium": 2, "hard": 3, "open": 3}
LEVEL = re.compile(r"\*\*Exercise (\d+) \((easy|medium|hard|open)\b")
CHECK = re.compile(r"\bchecks\.(check_\w+)\((\w+)\)")
CONFIG = """\
c = get_config()  # noqa: F821 (nbgrader's config loader provides it)
c.CourseDirectory.course_id = "long-context-hands-on"
c.ExecutePreprocessor.timeout = 1800  # a notebook's slowest cell in the full profile, with room
c.ClearSolutions.code_stub = {"python": "# YOUR CODE HERE\\nraise NotImplementedError()"}
"""


def tags(cell) -> set[str]:
    return set(cell.get("metadata", {}).get("tags", []))


def nbgrader_meta(grade_id: str, *, solution: bool = False, grade: bool = False, task: bool = False,
                  locked: bool = False, points: int | None = None) -> dict:
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": 3, "solution": solution,
            "task": task}
    if points is not None:
        meta["points"] = points
    return meta


def solutions_by_function(solutions: Path) -> tuple[dict[str, str], list[str]]:
    """{function name: its worked solution's source} and the import lines of the solutions notebook."""
    nb = nbformat.read(solutions, as_version=4)
    found, imports = {}, []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        if "solution" in tags(cell):
            for node in ast.parse(cell.source).body:
                if isinstance(node, ast.FunctionDef):
                    found[node.name] = cell.source
        else:
            imports += [line for line in cell.source.splitlines() if re.match(r"^(import |from \S+ import )", line)]
    return found, imports


def answer_cell(stub: str, solution: str, imports: list[str]) -> str:
    """The stub's signature and docstring, then the solution's body inside nbgrader's solution markers."""
    fn = next(n for n in ast.parse(solution).body if isinstance(n, ast.FunctionDef))
    body = fn.body[1:] if ast.get_docstring(fn) else fn.body
    lines = solution.splitlines()
    first = body[0].lineno - 1  # 0-based line of the first statement after the docstring
    indent = re.match(r"\s*", lines[first]).group(0)
    kept = [line for line in stub.splitlines() if "raise NotImplementedError" not in line]
    return "\n".join([*kept, f"{indent}### BEGIN SOLUTION", *(indent + line for line in imports),
                      *lines[first:fn.end_lineno], f"{indent}### END SOLUTION"])


def course_notebook(path: Path, solutions: Path) -> tuple[nbformat.NotebookNode, dict[str, int]]:
    """The notebook as nbgrader source; returns it and {grade_id: points}."""
    nb = nbformat.read(path, as_version=4)
    found, imports = solutions_by_function(solutions) if solutions.exists() else ({}, [])
    points, level = {}, None
    for cell in nb.cells:
        cell.metadata.pop("nbgrader", None)
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
        if cell.cell_type == "markdown":
            found_here = LEVEL.findall(cell.source)
            level = found_here[-1][1] if found_here else level
            open_ones = [number for number, difficulty in found_here if difficulty == "open"]
            if open_ones:  # one manually graded task per cell, worth all the open exercises it states
                grade_id = f"exercise_{'_'.join(open_ones)}_open"
                cell.metadata["nbgrader"] = nbgrader_meta(grade_id, grade=True, task=True, points=POINTS["open"] * len(open_ones))
                points[grade_id] = POINTS["open"] * len(open_ones)
        elif "exercise" in tags(cell):
            name = next(n.name for n in ast.parse(cell.source).body if isinstance(n, ast.FunctionDef))
            if name not in found:
                raise SystemExit(f"{path.name}: exercise {name}() has no solution in {solutions.name}")
            cell.source = answer_cell(cell.source, found[name], imports)
            cell.metadata["nbgrader"] = nbgrader_meta(name, solution=True)
            cell.metadata["tags"] = [t for t in cell.metadata.get("tags", []) if t != "exercise"]
        elif "checker" in tags(cell):
            check, name = CHECK.search(cell.source).groups()
            grade_id = f"{name}_test"
            cell.source = f"assert checks.{check}({name})  # raises on a wrong answer, False on an untouched stub"
            cell.metadata["nbgrader"] = nbgrader_meta(grade_id, grade=True, locked=True, points=POINTS[level or "medium"])
            cell.metadata["tags"] = [t for t in cell.metadata.get("tags", []) if t not in ("checker", "raises-exception")]
            points[grade_id] = POINTS[level or "medium"]
    nb.metadata.pop("widgets", None)
    return nb, points


def write_course(src: Path, dest: Path, only: list[str] | None = None) -> dict[str, dict[str, int]]:
    """Write dest/nbgrader_config.py and dest/source/<name>/<name>.ipynb; return {name: {grade_id: points}}."""
    notebooks = sorted(p for p in src.glob("*.ipynb") if not only or any(p.stem.startswith(o) for o in only))
    if not notebooks:
        raise SystemExit(f"no notebooks in {src}" + (f" matching {only}" if only else ""))
    if dest.exists():
        if not (dest / "nbgrader_config.py").exists():
            raise SystemExit(f"{dest} exists and is not a course written by this tool; refusing to overwrite it")
        shutil.rmtree(dest)
    (dest / "source").mkdir(parents=True)
    (dest / "nbgrader_config.py").write_text(CONFIG)
    points = {}
    for path in notebooks:
        nb, points[path.stem] = course_notebook(path, src / "solutions" / f"{path.stem}_solutions.ipynb")
        (dest / "source" / path.stem).mkdir()
        nbformat.write(nb, dest / "source" / path.stem / path.name)
    return points


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("src", type=Path, help="the collection's notebooks folder (notebooks)")
    parser.add_argument("dest", type=Path, help="the course folder to write (build/nbgrader)")
    parser.add_argument("--only", nargs="+", help="notebooks whose names start with these (e.g. 02 05b)")
    args = parser.parse_args()
    points = write_course(args.src, args.dest, args.only)
    for name, grades in points.items():
        print(f"{name}: {len(grades)} graded cells, {sum(grades.values())} points")
    print(f"course source -> {args.dest}; then, in it: nbgrader generate_assignment NAME")
    return 0


if __name__ == "__main__":
    sys.exit(main())
