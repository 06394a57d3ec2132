"""`make book` (tools/build_book.py, book/): the collection as a static HTML book, built once here into a temp folder.

Every notebook and solutions notebook becomes a page in reading order; every figure an <img> with the notebook's alt
text; no page shows widget text; the setup cell's code is hidden; launch links carry book/conf.py's REPOSITORY; the
glossary and references are pages; the build fetches nothing, takes under two minutes, treats warnings as errors
and refuses a notebook saved without outputs in one line that names it.
"""

from __future__ import annotations

import os
import runpy
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

pytest.importorskip("sphinx", reason="the book needs the `book` extra: pip install -e '.[book]' (make test installs it)")

import bs4  # noqa: E402  (the `book` extra: sphinx, myst-nb, sphinx-book-theme, beautifulsoup4)
from tool_module import load_tool  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
build_book = load_tool("build_book")
PAGES = build_book.notebook_pages(NOTEBOOKS)
CONF = runpy.run_path(str(ROOT / "book" / "conf.py"))
BUILD_LIMIT_S = 120  # the budget on 2 cores

# Loaded first by every Python process of the build (PYTHONPATH): any network connection fails and is recorded.
NO_NETWORK = '''\
import os, socket
_log = os.environ["BOOK_TEST_NETLOG"]
open(_log + ".loaded", "w").close()
def _refuse(self, address, *args, **kwargs):
    with open(_log, "a") as f:
        f.write(repr(address) + "\\n")
    raise OSError("tests/test_book.py: the book build must not use the network")
socket.socket.connect = _refuse
socket.socket.connect_ex = _refuse
'''


def run_build(notebooks: Path, out: Path, guard: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if guard is not None:
        guard.mkdir(parents=True, exist_ok=True)
        (guard / "sitecustomize.py").write_text(NO_NETWORK)
        env["PYTHONPATH"] = os.pathsep.join([str(guard), env.get("PYTHONPATH", "")])
        env["BOOK_TEST_NETLOG"] = str(guard / "connections.log")
    return subprocess.run([sys.executable, str(ROOT / "tools" / "build_book.py"), "--notebooks", str(notebooks),
                           "--out", str(out)], capture_output=True, text=True, env=env, timeout=600)


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    work = tmp_path_factory.mktemp("book")
    start = time.perf_counter()
    result = run_build(NOTEBOOKS, work / "html", guard=work / "guard")
    elapsed = time.perf_counter() - start
    assert result.returncode == 0, f"the book did not build cleanly (warnings are errors):\n{result.stderr[-3000:]}"
    return {"html": work / "html", "guard": work / "guard", "seconds": elapsed}


def page(book, relative: str) -> bs4.BeautifulSoup:
    path = book["html"] / relative
    assert path.is_file(), f"no page {relative}"
    return bs4.BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")


def page_of(path: Path) -> str:
    return path.relative_to(NOTEBOOKS.parent).with_suffix(".html").as_posix()


def code_cells(path: Path) -> list:
    return [c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]


def tags(cell) -> set[str]:
    return set(cell.metadata.get("tags", []))


def test_the_build_is_quick_and_offline(book):
    assert book["seconds"] < BUILD_LIMIT_S, f"the book took {book['seconds']:.0f} s to build"
    assert (book["guard"] / "connections.log.loaded").exists(), "the network guard was not loaded"
    log = book["guard"] / "connections.log"
    assert not log.exists(), f"the build tried the network: {log.read_text()}"


def test_every_notebook_is_a_page_in_reading_order(book):
    assert len(PAGES) >= 18 and any(p.parent.name == "solutions" for p in PAGES)
    index = page(book, "index.html")
    captions = [c.get_text(strip=True) for c in index.select("article p.caption")]
    assert captions == ["Notebooks", "Solutions", "Reference"]
    linked = [a["href"] for a in index.select("div.toctree-wrapper a.reference.internal") if "#" not in a["href"]]
    assert linked == [page_of(p) for p in PAGES] + ["notebooks/glossary.html", "notebooks/references.html"]
    for path in PAGES:
        title = next(line for c in nbformat.read(path, as_version=4).cells if c.cell_type == "markdown"
                     for line in c.source.splitlines() if line.startswith("# "))[2:]
        h1 = page(book, page_of(path)).find("h1")
        assert h1 is not None and h1.get_text().rstrip("#¶ ").strip() == title.replace("$", "").strip(), page_of(path)


def test_solutions_are_their_own_part(book):
    index = page(book, "index.html")
    caption = next(c for c in index.select("article p.caption") if c.get_text(strip=True) == "Solutions")
    part = caption.find_next_sibling("ul")
    links = [a["href"] for a in part.select("a")]
    assert links and all(href.startswith("notebooks/solutions/") for href in links)


def test_every_figure_is_an_image_with_the_notebook_alt_text(book):
    figures = 0
    for path in PAGES:
        expected = [out["metadata"]["image/png"]["alt"] for cell in code_cells(path)
                    if not tags(cell) & {"remove-output", "remove-cell"}
                    for out in cell.outputs if "image/png" in out.get("data", {})]
        shown = [img.get("alt", "") for img in page(book, page_of(path)).select("div.cell_output img")]
        assert shown == expected, f"{page_of(path)}: the figures' alt texts differ from the notebook's"
        assert all(alt.strip() for alt in shown), f"{page_of(path)}: a figure without alt text"
        figures += len(shown)
    assert figures >= 40


def test_no_page_shows_widget_text(book):
    panels = 0
    for path in PAGES:
        html = (book["html"] / page_of(path)).read_text(encoding="utf-8")
        assert "widget-view" not in html and "interactive(children" not in html, page_of(path)
        outputs = page(book, page_of(path)).select("div.cell_output")
        assert not [o for o in outputs if "interactive(" in o.get_text()], page_of(path)
        if any("widgets.interactive(" in c.source for c in code_cells(path)):
            panels += 1
            alts = [img.get("alt", "") for img in page(book, page_of(path)).select("img")]
            assert any("default view" in alt for alt in alts), f"{page_of(path)}: no static picture of its panel"
    assert panels == 3  # notebooks 01, 02 and 03


def test_the_setup_cell_is_hidden_and_the_rest_is_shown(book):
    for path in PAGES:
        setup, imports = (c.source for c in code_cells(path)[:2])
        code = "\n".join(pre.get_text() for pre in page(book, page_of(path)).select("div.cell_input pre"))
        assert 'find_spec("lclib")' in setup and 'find_spec("lclib")' not in code, page_of(path)
        assert imports.splitlines()[-1].strip() in code, f"{page_of(path)}: the second code cell is missing"


def test_launch_links_use_the_configured_repository(book):
    slug, branch = CONF["REPOSITORY"], CONF["BRANCH"]
    assert slug.count("/") == 1
    for path in PAGES:
        rel = path.relative_to(NOTEBOOKS.parent).as_posix()
        hrefs = {a.get("href") for a in page(book, page_of(path)).select("a")}
        assert f"https://colab.research.google.com/github/{slug}/blob/{branch}/{rel}" in hrefs, page_of(path)
        assert f"https://mybinder.org/v2/gh/{slug}/{branch}?urlpath=lab/tree/{rel}" in hrefs, page_of(path)


def test_glossary_and_references_are_pages(book):
    for name in ("glossary", "references"):
        h1 = page(book, f"notebooks/{name}.html").find("h1")
        assert h1 is not None and h1.get_text(strip=True), name


def tree_copy(tmp_path: Path) -> Path:
    """A copy of the notebooks folder, to spoil one notebook in."""
    return Path(shutil.copytree(NOTEBOOKS, tmp_path / "notebooks",
                                ignore=shutil.ignore_patterns(".ipynb_checkpoints")))


def test_a_notebook_saved_without_outputs_is_refused_in_one_line(tmp_path):
    tree = tree_copy(tmp_path)
    stripped = tree / PAGES[0].name
    nb = nbformat.read(stripped, as_version=4)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nbformat.write(nb, stripped)
    result = run_build(tree, tmp_path / "html")
    lines = result.stderr.strip().splitlines()
    assert result.returncode != 0 and len(lines) == 1 and str(stripped) in lines[0], result.stderr
    assert "without outputs" in lines[0]
    assert not (tmp_path / "html").exists(), "Sphinx ran on a notebook without outputs"


def test_check_outputs_passes_run_notebooks_and_names_the_one_never_run(tmp_path):
    for path in PAGES:
        build_book.check_outputs(path)
    half = tmp_path / "half_run.ipynb"
    nb = nbformat.read(PAGES[0], as_version=4)
    next(c for c in nb.cells if c.cell_type == "code" and c.outputs).execution_count = None
    nbformat.write(nb, half)
    with pytest.raises(ValueError, match=r"half_run\.ipynb was saved without outputs \(code cell \d+ was never run\)"):
        build_book.check_outputs(half)
    broken = tmp_path / "broken.ipynb"
    broken.write_text("{not json")
    with pytest.raises(ValueError, match=r"broken\.ipynb: not a readable notebook"):
        build_book.check_outputs(broken)


def test_warnings_fail_the_build(tmp_path):
    # the full tree builds cleanly (the book fixture); one broken link is a warning, and the build fails on it
    tree = tree_copy(tmp_path)
    nb = nbformat.read(tree / PAGES[0].name, as_version=4)
    nb.cells.append(nbformat.v4.new_markdown_cell("See [the missing page](no_such_page.md)."))
    nbformat.write(nb, tree / PAGES[0].name)
    result = run_build(tree, tmp_path / "html")
    assert result.returncode != 0, "a warning did not fail the build"
    assert PAGES[0].stem in result.stderr and "no_such_page" in result.stderr, result.stderr[-2000:]
