"""tools/run_notebooks.py records what each run took; tools/notebook_times.py turns counts and records into words."""

from __future__ import annotations

import json

import nbformat
import pytest
from tool_module import load_tool

times_tool = load_tool("notebook_times")
runner = load_tool("run_notebooks")


def _notebook(markdown: list[str], code: list[str]) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(m) for m in markdown] + [nbformat.v4.new_code_cell(c) for c in code]
    nb.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
    return nb


@pytest.mark.parametrize("seconds, said", [(3, "5 s"), (44, "45 s"), (89, "90 s"), (100, "2 minutes"),
                                           (418, "7 minutes")])
def test_duration_rounds_the_way_one_says_it(seconds, said):
    assert times_tool.duration(seconds) == said


def test_reading_counts_markdown_words_and_code_cells():
    nb = _notebook(["# Title\n" + "word " * 299], ["x = 1", "   ", "y = 2"])  # a blank cell is not read
    minutes, words, code = times_tool.reading(nb)
    assert (words, code) == (300, 2) and minutes == 300 // 150 + 2


def test_a_link_is_read_as_its_text_not_its_target():
    nb = _notebook(["A [KV cache](glossary.md#kv-cache) and [Su et al., 2021](references.md#su2021)."], [])
    assert times_tool.reading(nb)[1] == 8  # A, KV, cache, and, Su, et, al, 2021


def test_exercises_are_read_from_their_labels():
    nb = _notebook(["**Exercise 1 (easy, 10 min).** Do this.", "**Exercise 2 (open).** And that."], [])
    assert times_tool.exercises(nb) == [("1", "easy", "10 min"), ("2", "open", None)]


def test_write_replaces_the_three_lines_and_keeps_the_rest(tmp_path):
    path = tmp_path / "01_x.ipynb"
    nb = _notebook(["# 01\n\n## Time needed\nReading: about 1 minutes (old).\nNo GPU needed.\n\n## Next\nText."], [])
    nbformat.write(nb, path)
    new = ["Reading: about 9 minutes.", "Exercises: none.", "Running it: about 5 s."]
    assert times_tool.write(path, new)
    source = nbformat.read(path, as_version=4).cells[0].source
    assert source == ("# 01\n\n## Time needed\nReading: about 9 minutes.\nExercises: none.\nRunning it: about 5 s.\n"
                      "No GPU needed.\n\n## Next\nText.")
    assert not times_tool.write(path, new)  # already so: nothing written


def test_a_run_is_timed_and_recorded_under_its_profile(tmp_path, monkeypatch):
    folder = tmp_path / "notebooks"
    folder.mkdir()
    path = folder / "00_tiny.ipynb"
    nbformat.write(_notebook(["# tiny"], ["x = 1 + 1", "print(x)"]), path)
    monkeypatch.setattr(runner, "TIMES", folder / "run_times.json")
    status, elapsed, long_cells = runner.run_one(path, fast=True, timeout=120)
    assert status == "ok" and elapsed > 0 and long_cells == {}
    assert nbformat.read(path, as_version=4).cells[2].outputs == []  # the reduced profile writes nothing back
    runner.record_time(path, True, elapsed, {3: 75.0})
    runner.record_time(path, True, elapsed, {})  # a second run replaces the first
    times = json.loads((folder / "run_times.json").read_text())
    assert times == {"00_tiny.ipynb": {"reduced": {"seconds": round(elapsed, 1), "cpu_cores": times["00_tiny.ipynb"]
                                                   ["reduced"]["cpu_cores"], "long_cells": {}}}}
