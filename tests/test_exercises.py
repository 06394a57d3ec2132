"""Stubs, checkers and solutions cannot drift apart: every checker fails on its stub and passes on its solution.

For each notebook, the cells tagged "exercise" (stubs raising NotImplementedError) and "checker"
(calls into lclib.checks) are paired with the cells tagged "solution" in
notebooks/solutions/NN_topic_solutions.ipynb. A static test checks the structure (every exercise
has a checker and a solution with the same function name and signature, both notebooks call the
same checkers); a kernel test runs, in one fresh kernel and the reduced profile:

    the notebook's first code cell, then each stub and its checker cells  -> "Not done yet", never "Correct"
    the solutions notebook's code (its own checker cells left out),
    then the notebook's checker cells                                     -> "Correct", no error

Cheap by design: only the setup cell, the exercises, the solutions and the checkers run. If a
checker cell needs a name the notebook defines further up, the whole notebook before the first
exercise runs as context (slower; a warning says so).
"""

from __future__ import annotations

import ast
import re
import warnings
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "browser_demo.ipynb"
CELL_TIMEOUT_S = 300
CHECK_CALL = re.compile(r"\bchecks\.(check_\w+)\s*\(")


def solutions_path(notebook: Path) -> Path:
    return notebook.parent / "solutions" / f"{notebook.stem}_solutions.ipynb"


NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb")) + [FIXTURE]
IDS = [p.name if p != FIXTURE else "fixture-browser_demo" for p in NOTEBOOKS]


def tags(cell) -> set[str]:
    return set(cell.get("metadata", {}).get("tags", []))


def code_cells(nb) -> list:
    return [c for c in nb.cells if c.cell_type == "code" and c.source.strip()]


def exercises_with_checkers(nb) -> list[tuple[object, list]]:
    """[(exercise cell, [its checker cells])]: checkers are the checker-tagged cells before the next exercise."""
    pairs: list[tuple[object, list]] = []
    for cell in code_cells(nb):
        if "exercise" in tags(cell):
            pairs.append((cell, []))
        elif "checker" in tags(cell):
            if not pairs:
                raise AssertionError(f"a checker cell comes before any exercise: {cell.source[:80]!r}")
            pairs[-1][1].append(cell)
    return pairs


def functions(source: str) -> dict[str, str]:
    """Top-level function names -> their signature (argument names and defaults, annotations ignored)."""
    found = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.FunctionDef):
            args = node.args
            for a in args.posonlyargs + args.args + args.kwonlyargs + [args.vararg, args.kwarg]:
                if a is not None:
                    a.annotation = None
            found[node.name] = ast.dump(args)
    return found


def checkers_called(cells) -> set[str]:
    return {name for c in cells for name in CHECK_CALL.findall(c.source)}


def output_text(cell) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if out.output_type == "stream":
            parts.append(out.text)
        elif out.output_type in ("execute_result", "display_data"):
            parts.append(str(out.data.get("text/plain", "")))
        elif out.output_type == "error":
            parts.append(f"{out.ename}: {out.evalue}")
    return "".join(parts)


def errors(cell) -> list[str]:
    return [f"{o.ename}: {o.evalue}" for o in cell.get("outputs", []) if o.output_type == "error"]


# --- Static: structure and names (milliseconds) ---------------------------------------------------

@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=IDS)
def test_every_exercise_has_checker_and_solution(notebook):
    from lclib import checks

    nb = nbformat.read(notebook, as_version=4)
    pairs = exercises_with_checkers(nb)
    assert pairs, f"{notebook.name} has no cell tagged 'exercise' (every notebook ends with exercises)"
    solutions = solutions_path(notebook)
    assert solutions.exists(), f"{notebook.name} has exercises but no {solutions.relative_to(ROOT)}"
    sol = nbformat.read(solutions, as_version=4)
    solution_cells = [c for c in code_cells(sol) if "solution" in tags(c)]
    assert solution_cells, f"{solutions.name} has no cell tagged 'solution'"
    solved = {}
    for cell in solution_cells:
        solved.update(functions(cell.source))

    for stub, checker_cells in pairs:
        stubbed = functions(stub.source)
        head = stub.source.strip().splitlines()[0]
        assert stubbed, f"exercise cell {head!r} defines no function"
        assert "NotImplementedError" in stub.source, f"exercise {head!r} must stay a stub raising NotImplementedError"
        assert checker_cells, f"exercise {head!r} has no cell tagged 'checker' after it"
        for cell in checker_cells:
            assert "raises-exception" in tags(cell), f"checker cell {cell.source[:60]!r} lacks the 'raises-exception' tag"
            assert CHECK_CALL.search(cell.source), f"checker cell {cell.source[:60]!r} calls no checks.check_*"
        for name, signature in stubbed.items():
            assert name in solved, f"{solutions.name} has no solution defining {name}() (tag it 'solution')"
            assert solved[name] == signature, f"{name}(): the solution's arguments differ from the stub's"

    used, used_in_solutions = checkers_called(c for _, cs in pairs for c in cs), checkers_called(code_cells(sol))
    assert used == used_in_solutions, (f"checkers called in {notebook.name}: {sorted(used)}; "
                                       f"in {solutions.name}: {sorted(used_in_solutions)}")
    missing = sorted(name for name in used if not callable(getattr(checks, name, None)))
    assert not missing, f"lclib.checks lacks {missing}"


# --- In a kernel: stub -> "Not done yet", solution -> "Correct" -----------------------------------

def _run(cells: list, cwd: Path) -> list:
    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c.source) for c in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(cwd)}}).execute()
    return nb.cells


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=IDS)
def test_checkers_fail_on_stubs_and_pass_on_solutions(notebook, monkeypatch):
    monkeypatch.setenv("CI", "1")
    monkeypatch.setenv("LCLIB_FAST", "1")
    nb = nbformat.read(notebook, as_version=4)
    pairs = exercises_with_checkers(nb)
    solutions = solutions_path(notebook)
    if not pairs or not solutions.exists():
        pytest.skip("no exercises or no solutions notebook (test_every_exercise_has_checker_and_solution says so)")
    sol = nbformat.read(solutions, as_version=4)
    cells = code_cells(nb)
    first_exercise = cells.index(pairs[0][0])
    contexts = [cells[:2],  # the setup cells alone (Colab install, then imports and setup_notebook)
                [c for c in cells[:first_exercise] if not tags(c) & {"exercise", "checker"}]]  # everything above
    stub_phase = [cell for stub, checkers in pairs for cell in [stub, *checkers]]
    solution_phase = [c for c in code_cells(sol) if "checker" not in tags(c)] + [c for _, cs in pairs for c in cs]

    for attempt, context in enumerate(contexts):
        ran = _run(context + stub_phase + solution_phase, notebook.parent)
        if not any(e.startswith("NameError") for c in ran for e in errors(c)) or attempt == len(contexts) - 1:
            break
        warnings.warn(f"{notebook.name}: an exercise or checker needs a name defined above the exercises; "
                      "ran the whole notebook before them as context (slower)")
    ran_context, ran = ran[:len(context)], ran[len(context):]
    for cell in ran_context:
        assert not errors(cell), f"setup cell {cell.source[:60]!r} failed: {errors(cell)}"

    ran_stubs, ran_solutions = ran[:len(stub_phase)], ran[len(stub_phase):]
    problems = []
    for original, cell in zip(stub_phase, ran_stubs):
        if "checker" not in tags(original):
            continue
        text = output_text(cell)
        if "Correct" in text or "Not done yet" not in text or errors(cell):
            problems.append(f"on the stub, {original.source.strip()!r} should print 'Not done yet' and return False; "
                            f"it printed: {text.strip()[:300]!r}")
    for original, cell in zip(solution_phase, ran_solutions):
        text = output_text(cell)
        if errors(cell):
            problems.append(f"solutions: {original.source.strip()[:80]!r} raised {errors(cell)}")
        elif "checker" in tags(original) and ("Correct" not in text or text.strip().endswith("False")):
            problems.append(f"on the solution, {original.source.strip()!r} should print 'Correct'; "
                            f"it printed: {text.strip()[:300]!r}")
    assert not problems, f"{notebook.name} / {solutions.name}:\n  " + "\n  ".join(problems)
