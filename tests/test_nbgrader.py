"""A teacher can grade with nbgrader: `make nbgrader`'s course source, released and autograded by real nbgrader.

For two notebooks (02, three autograded exercises; 05, three autograded and one open, manually graded): generate
the students' version, then autograde two submissions in the reduced profile, one built from the worked
solutions (full marks on every autograded cell) and one of untouched stubs (zero). nbgrader comes with the
`teach` extra, which `make test` installs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENTS = ("02_rope_scaling", "05_effective_context")


def nbgrader(course: Path, *args: str) -> subprocess.CompletedProcess:
    # nbgrader runs alembic (its database migrations) as a program: the environment's bin/ must be on PATH
    env = {**os.environ, "LCLIB_FAST": "1", "CI": "1",
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    run = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, env=env, capture_output=True,
                         text=True, timeout=1800)
    assert run.returncode == 0, run.stderr[-3000:]
    return run


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    pytest.importorskip("nbgrader", reason="nbgrader is the teach extra (make test installs it)")
    from nbgrader.api import Gradebook

    # inside the checkout: the notebooks find weights/ and figures/ in a folder above them
    course = ROOT / "build" / f"test-nbgrader-{os.getpid()}"
    subprocess.run([sys.executable, str(ROOT / "tools" / "nbgrader_course.py"), str(ROOT / "notebooks"), str(course),
                    "--only", *ASSIGNMENTS], check=True, capture_output=True, timeout=300)
    try:
        scores = {}
        for name in ASSIGNMENTS:
            nbgrader(course, "generate_assignment", name, "--force")
            for student, version in (("solutions", "source"), ("stubs", "release")):
                (course / "submitted" / student / name).mkdir(parents=True)
                shutil.copy(course / version / name / f"{name}.ipynb", course / "submitted" / student / name)
            nbgrader(course, "autograde", name, "--create", "--force")
            with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
                for student in ("solutions", "stubs"):
                    nb = gb.find_submission_notebook(name, name, student)
                    scores[name, student] = (nb.code_score, nb.max_code_score, nb.max_written_score)
        released = {name: json.loads((course / "release" / name / f"{name}.ipynb").read_text()) for name in ASSIGNMENTS}
        yield scores, released
    finally:
        shutil.rmtree(course, ignore_errors=True)


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_solutions_get_full_marks_and_stubs_zero(graded, name):
    scores, _ = graded
    got, most, _ = scores[name, "solutions"]
    assert most > 0 and got == most, scores
    assert scores[name, "stubs"][0] == 0, scores


def test_open_exercises_are_manually_graded_tasks(graded):
    scores, released = graded
    assert scores["05_effective_context", "solutions"][2] == 3  # Exercise 4 (open): 3 points, graded by hand
    tasks = [c for c in released["05_effective_context"]["cells"] if c["metadata"].get("nbgrader", {}).get("task")]
    assert len(tasks) == 1 and "Exercise 4 (open)" in "".join(tasks[0]["source"])


def test_the_release_shows_no_solution(graded):
    _, released = graded
    for name, nb in released.items():
        answer_cells = [c for c in nb["cells"] if c["metadata"].get("nbgrader", {}).get("solution")]
        assert answer_cells and all("raise NotImplementedError()" in "".join(c["source"]) for c in answer_cells), name
        assert not any("BEGIN SOLUTION" in "".join(c["source"]) for c in nb["cells"]), name
