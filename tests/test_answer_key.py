"""Every "Check your understanding" question has its answer in the notebook's solutions, folded, in order."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def markdown(path: Path) -> list[str]:
    return ["".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "markdown"]


def questions(path: Path) -> list[int]:
    """The numbers of the notebook's "Check your understanding" questions."""
    text = "\n".join(markdown(path))
    section = text[text.index("## Check your understanding"):]
    section = section[:section.find("\n## ", 5)] if "\n## " in section[5:] else section
    section = section.split("**Exercise")[0]  # an exercise may follow in the same cell
    return [int(n) for n in re.findall(r"^\s*(\d+)\. ", section, re.M)]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_every_question_has_a_folded_answer(path):
    asked = questions(path)
    assert asked == list(range(1, len(asked) + 1)) and len(asked) >= 4, asked
    key = [m for m in markdown(path.parent / "solutions" / f"{path.stem}_solutions.ipynb")
           if m.startswith("## Check your understanding: answers")]
    assert len(key) == 1, "the solutions notebook needs one 'Check your understanding: answers' cell"
    blocks = re.findall(r"<details><summary><b>(\d+)\.</b>(.*?)</summary>(.*?)</details>", key[0], re.S)
    assert [int(n) for n, _, _ in blocks] == asked, f"answers {[n for n, _, _ in blocks]} for questions {asked}"
    for n, _, answer in blocks:
        assert len(answer.split()) >= 30, f"question {n}: the answer is {len(answer.split())} words"
