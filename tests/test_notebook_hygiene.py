"""Every committed notebook: executed top to bottom in the full profile, no errors, no machine paths, small."""

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p for p in (ROOT / "notebooks").glob("**/*.ipynb") if ".ipynb_checkpoints" not in p.parts)
MACHINE_PATH = re.compile(r"(?<![\w.])/(work|root|tmp|home|Users)/[\w.-]+")


KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


def _code_cells(nb):
    return [c for c in nb["cells"] if c["cell_type"] == "code" and "".join(c["source"]).strip()]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[str(p.relative_to(ROOT)) for p in NOTEBOOKS])
def test_notebook_hygiene(path):
    # 600 KB: a notebook with an interactive panel also carries a static picture of its default view
    assert path.stat().st_size < 600_000, f"{path.name} is {path.stat().st_size / 1e3:.0f} KB (figures too heavy?)"
    nb = json.loads(path.read_text())
    cells = _code_cells(nb)
    counts = [c.get("execution_count") for c in cells]
    assert counts == list(range(1, len(cells) + 1)), "not executed top to bottom from a fresh kernel"
    for i, cell in enumerate(cells):
        for out in cell.get("outputs", []):
            assert out["output_type"] != "error", f"cell {i} has an error output: {out.get('ename')}"
            text = json.dumps(out.get("text", "")) + json.dumps(out.get("data", {}).get("text/plain", ""))
            assert not MACHINE_PATH.search(text), f"cell {i} output shows a machine path"
    # cells[0] is the Colab setup cell (tests/test_setup_cell.py); cells[1] seeds and prints the banner
    banner = "".join("".join(o.get("text", "")) for o in cells[1].get("outputs", []))
    assert "profile full" in banner, "committed outputs must come from the full profile (make run)"
    assert "setup_notebook" in "".join(cells[1]["source"])
    assert nb["metadata"]["kernelspec"] == KERNELSPEC, "one kernelspec for every notebook"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[str(p.relative_to(ROOT)) for p in NOTEBOOKS])
def test_notebook_structure(path):
    nb = json.loads(path.read_text())
    markdown = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown")
    if "solutions" not in path.parts:
        for heading in ("Learning objectives", "Prerequisites", "Time needed", "Check your understanding"):
            assert heading in markdown, f"{path.name} lacks a '{heading}' section"
    code = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    source = "\n".join(code[1:])  # code[0] is the guarded Colab setup cell, the one place that may install
    assert "pip" not in source and "sys.path" not in source and "import *" not in source


@pytest.mark.parametrize("name", ["05_effective_context.ipynb", "05b_reading_past_L.ipynb"])
def test_the_two_halves_of_05_stay_one_sitting_each(name):
    """Notebook 05 was split because it outgrew one sitting: each half stays under 350 KB and about 45 cells."""
    path = ROOT / "notebooks" / name
    assert path.stat().st_size < 350_000, f"{name} is {path.stat().st_size / 1e3:.0f} KB"
    assert len(json.loads(path.read_text())["cells"]) <= 50


# --- readable without running: alt text on every figure, a static picture beside every interactive panel ------

MIN_ALT_WORDS = 8  # lclib.plotting.MIN_ALT_WORDS: say what is plotted and what it shows
MARKDOWN_IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)\s]+)\)")
HTML_IMAGE = re.compile(r"<img\b[^>]*>", re.IGNORECASE)


def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def _figures(cell) -> list[tuple[str, str]]:
    """(alt text, plain text) of every PNG output of a code cell; alt is "" where none was given."""
    return [(_text(out.get("metadata", {}).get("image/png", {}).get("alt", "")), _text(out["data"].get("text/plain", "")))
            for out in cell.get("outputs", []) if "image/png" in out.get("data", {})]


def _markdown_image_alts(markdown: str) -> list[tuple[str, str]]:
    found = [(alt, src) for alt, src in MARKDOWN_IMAGE.findall(markdown)]
    for tag in HTML_IMAGE.findall(markdown):
        alt = re.search(r"""\balt\s*=\s*["']([^"']*)["']""", tag)
        found.append((alt.group(1) if alt else "", tag))
    return found


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[str(p.relative_to(ROOT)) for p in NOTEBOOKS])
def test_every_figure_carries_alt_text(path):
    nb = json.loads(path.read_text())
    for i, cell in enumerate(_code_cells(nb)):
        assert "plt.show()" not in "".join(cell["source"]), \
            f"code cell {i} shows a figure with plt.show(): use plotting.show(fig, alt), which carries alt text"
        for alt, plain in _figures(cell):
            assert len(alt.split()) >= MIN_ALT_WORDS, f"code cell {i} shows a figure without alt text: {alt!r}"
            assert plain == alt, f"code cell {i}: the figure's plain-text form should be its alt text"
    for cell in nb["cells"]:
        if cell["cell_type"] == "markdown":
            for alt, src in _markdown_image_alts("".join(cell["source"])):
                assert len(alt.split()) >= 3, f"{path.name}: the image {src} has no alt text"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[str(p.relative_to(ROOT)) for p in NOTEBOOKS])
def test_every_interactive_panel_has_a_static_picture_beside_it(path):
    """A widget draws nothing where no kernel runs (a web page, a printout): its default view is shown beside it."""
    cells = _code_cells(json.loads(path.read_text()))
    for i, cell in enumerate(cells):
        if "widgets.interactive(" in "".join(cell["source"]):
            near = [alt for c in cells[max(i - 1, 0):i + 2] for alt, _ in _figures(c)]
            assert any("default view" in alt for alt in near), \
                f"code cell {i} builds an interactive panel with no static picture of its default view beside it"


def test_readme_images_carry_alt_text():
    images = _markdown_image_alts((ROOT / "README.md").read_text())
    assert len(images) >= 9, "the README shows one figure per notebook"
    for alt, src in images:
        assert len(alt.split()) >= 3, f"README: the image {src} has no alt text"


# --- true times: every "Time needed" section and the README's teacher table agree with what was measured ------

RUN_TIMES = ROOT / "notebooks" / "run_times.json"
MAIN_NOTEBOOKS = [p for p in NOTEBOOKS if "solutions" not in p.parts]


def _times_tool():
    from tool_module import load_tool

    return load_tool("notebook_times")


def test_run_times_are_recorded_for_every_notebook_in_both_profiles():
    times = json.loads(RUN_TIMES.read_text())
    for path in MAIN_NOTEBOOKS:
        entry = times.get(path.relative_to(ROOT / "notebooks").as_posix(), {})
        assert {"full", "reduced"} <= set(entry), f"{path.name}: run `make run` and `tools/run_notebooks.py --fast`"
        assert 0 < entry["reduced"]["seconds"] and 0 < entry["full"]["seconds"]


@pytest.mark.parametrize("path", MAIN_NOTEBOOKS, ids=[p.name for p in MAIN_NOTEBOOKS])
def test_time_needed_says_what_was_counted_and_measured(path):
    tool = _times_tool()
    nb = json.loads(path.read_text())
    section = next("".join(c["source"]) for c in nb["cells"] if tool.HEADING in "".join(c["source"]))
    for line in tool.lines(path, json.loads(RUN_TIMES.read_text())):
        assert line in section, f"{path.name}: 'Time needed' should say {line!r} (python tools/notebook_times.py --write)"
    # where the notebook prints its own wall time at the end, the recorded full run is the same run's size
    printed = re.findall(r"notebook wall time: (\d+) s \(full profile", json.dumps(nb))
    if printed:
        recorded = json.loads(RUN_TIMES.read_text())[path.relative_to(ROOT / "notebooks").as_posix()]["full"]
        assert 0.5 <= recorded["seconds"] / int(printed[-1]) <= 2, "run_times.json is not from the committed run"


@pytest.mark.parametrize("path", MAIN_NOTEBOOKS, ids=[p.name for p in MAIN_NOTEBOOKS])
def test_cells_over_two_minutes_are_announced(path):
    cells = json.loads(path.read_text())["cells"]
    recorded = json.loads(RUN_TIMES.read_text())[path.relative_to(ROOT / "notebooks").as_posix()]["full"]
    for index, seconds in recorded["long_cells"].items():
        if seconds > 120:
            before = "".join(cells[int(index) - 1]["source"])
            assert "minute" in before, f"{path.name}: cell {index} took {seconds:.0f} s; say so in the text before it"


def test_readme_teacher_table_states_the_measured_run_times():
    tool = _times_tool()
    readme = (ROOT / "README.md").read_text()
    times = json.loads(RUN_TIMES.read_text())
    for path in MAIN_NOTEBOOKS:
        number = path.name.split("_")[0]
        entry = times[path.relative_to(ROOT / "notebooks").as_posix()]
        want = f"~{tool.duration(entry['full']['seconds'])} / ~{tool.duration(entry['reduced']['seconds'])}"
        row = next(line for line in readme.splitlines() if line.startswith(f"| {number} |") and " / ~" in line)
        assert row.rstrip().endswith(f"| {want} |"), f"README teacher table, notebook {number}: should say {want}"
