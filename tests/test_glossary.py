"""notebooks/glossary.md: one entry per term, each defined and tied to the notebook that builds it; every glossary
link in a notebook resolves; and no notebook uses a glossary term in a heading or a learning objective before it
links the glossary for that term or defines the term itself.

The rule, as the tests read it. A term is its entry's heading and the names on its `Also:` line. A name is matched
case-sensitively when it has a capital letter past its first character (RoPE, PI, NTK, GQA, KV cache; the leading
capital of a mixed-case name may be either case, "Dynamic NTK"), otherwise case-insensitively; as a whole word,
with an optional plural "s"; a space and a hyphen match each other ("edge count", "edge-count"). Where two names
overlap ("NTK", "dynamic NTK"), the longer wins. Names are matched in prose only: code spans, math, link targets,
HTML tags and code blocks are not read, and single letters ($L$, $s$) are not glossary names, so the rule leaves
them out. A notebook has defined a term from the earliest of: a link to its glossary entry; a short bold phrase
that holds it (the notebooks' way of introducing a term, `**prefill**`); and, in the notebook the entry names as
"Built in", the start of the section it names there. Every use of the term in a heading or in the learning
objectives must be a glossary link or come at or after that point; the notebook's title (its H1) is read with
the introduction below it, so a title passes when the first cell defines or links the term.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS_DIR = ROOT / "notebooks"
GLOSSARY = NOTEBOOKS_DIR / "glossary.md"
MAIN_NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("[0-9]*.ipynb"))
ALL_NOTEBOOKS = MAIN_NOTEBOOKS + sorted((NOTEBOOKS_DIR / "solutions").glob("*.ipynb"))

# Named in issue 30 as terms the glossary must hold (by any of an entry's names).
ISSUE_TERMS = ["RoPE", "pair of features", "wavelength", "training context", "scale factor", "PI", "NTK-aware",
               "dynamic NTK", "YaRN", "ABF", "Llama 3 scaling", "NoPE", "ALiBi", "dilation", "segment", "edge count",
               "needle", "haystack", "effective length", "KV cache", "GQA", "MQA", "prefill", "decode", "roofline",
               "BM25", "recall@k", "RULER", "critical dimension", "lost in the middle", "RAG", "teacher forcing",
               "exact match", "perplexity", "dilated attention", "nominal length"]

TARGET = re.compile(r"^\(([a-z0-9_-]+)\)=\s*$")
BUILT_IN = re.compile(r"^Built in: \[notebook (\d+b?), ([^\]]+)\]\(([^)\s]+)\)\s*$")
GLOSSARY_LINK = re.compile(r"\[([^\]]+)\]\((?:\.\./)?glossary\.md#([^)\s]*)\)")
ANY_LINK = re.compile(r"(!?)\[([^\]]*)\]\(([^)\s]*)\)")
BOLD = re.compile(r"\*\*(.+?)\*\*", re.S)
HEADING = re.compile(r"^(#{1,6})[ \t]+(.*)$", re.M)


def slug(heading: str) -> str:
    """A heading's anchor as GitHub and MyST's heading anchors make it: lowercase, punctuation dropped, spaces to
    hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


@dataclass
class Entry:
    term: str
    anchor: str
    definition: str
    aliases: list[str] = field(default_factory=list)
    built_in: tuple[str, str, str] | None = None  # (notebook number, where, link target)

    @property
    def names(self) -> list[str]:
        return [self.term] + self.aliases


def parse_glossary(text: str) -> list[Entry]:
    """The entries of glossary.md, in order; raises ValueError naming the line that breaks the format."""
    entries: list[Entry] = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if not line.startswith("## "):
            continue
        target = TARGET.match(lines[i - 1]) if i else None
        if target is None:
            raise ValueError(f"glossary line {i + 1}: '{line}' has no (anchor)= target on the line above it")
        body = []
        for later in lines[i + 1:]:
            if later.startswith("## ") or TARGET.match(later):
                break
            body.append(later)
        paragraphs = [p.strip() for p in "\n".join(body).split("\n\n") if p.strip()]
        entry = Entry(term=line[3:].strip(), anchor=target.group(1),
                      definition=" ".join(p for p in paragraphs if not p.startswith(("Also:", "Built in:"))))
        for p in paragraphs:
            if p.startswith("Also:"):
                entry.aliases = [a.strip() for a in p[len("Also:"):].split(",") if a.strip()]
            elif p.startswith("Built in:"):
                m = BUILT_IN.match(p)
                if m is None:
                    raise ValueError(f"glossary entry '{entry.term}': cannot read '{p}'")
                entry.built_in = m.groups()
        entries.append(entry)
    return entries


def sentences(text: str) -> int:
    """Sentences in a definition: math and code are left out, a sentence ends at . ! or ? before a capital or the
    end."""
    text = re.sub(r"\$[^$]*\$|`[^`]*`", "x", text)
    return len(re.findall(r"[.!?](?=\s+[A-Z(\"]|\s*$)", text))


# --- reading a notebook's markdown -----------------------------------------------------------------------------

def _blank(match: re.Match) -> str:
    return re.sub(r"[^\n]", " ", match.group(0))


def prose(source: str) -> str:
    """The markdown with everything that is not prose blanked out (same length, same line breaks): fenced and
    indented code, math, code spans, HTML tags and the targets of links. Link texts stay."""
    text = re.sub(r"^```.*?^```", _blank, source, flags=re.M | re.S)
    text = re.sub(r"(?:^|\n)(?: {4}|\t)[^\n]*", lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)
    text = re.sub(r"\$\$.*?\$\$", _blank, text, flags=re.S)
    text = re.sub(r"(?<!\\)\$[^$\n]+?(?<!\\)\$", _blank, text)
    text = re.sub(r"`[^`\n]+`", _blank, text)
    text = re.sub(r"<[^>\n]+>", _blank, text)
    return re.sub(r"(\]\()([^)\s]*)(\))", lambda m: m.group(1) + " " * len(m.group(2)) + m.group(3), text)


def name_pattern(name: str) -> re.Pattern:
    words = [re.escape(w) for w in re.split(r"[\s-]+", name.strip())]
    body = r"[\s-]+".join(words)
    sensitive = any(c.isupper() for c in name[1:])
    if sensitive and name[0].isalpha() and not name[:2].isupper():
        body = f"[{name[0].upper()}{name[0].lower()}]" + body[1:]  # "Dynamic NTK" starts a sentence or not
    return re.compile(rf"(?<![\w@-]){body}(?:s|es)?(?![\w@])", 0 if sensitive else re.I)


@dataclass
class Use:
    anchor: str
    cell: int
    start: int
    end: int


def find_uses(text: str, entries: list[Entry], cell: int) -> list[Use]:
    """Non-overlapping uses of glossary names in prose text; the longest name wins an overlap."""
    found = []
    for entry in entries:
        for name in entry.names:
            if len(name) < 2:
                continue
            for m in name_pattern(name).finditer(text):
                found.append(Use(entry.anchor, cell, m.start(), m.end()))
    found.sort(key=lambda u: (-(u.end - u.start), u.start))
    kept: list[Use] = []
    for use in found:
        if all(use.end <= k.start or use.start >= k.end for k in kept):
            kept.append(use)
    return sorted(kept, key=lambda u: (u.cell, u.start))


def markdown_cells(path: Path) -> list[tuple[int, str]]:
    cells = json.loads(path.read_text())["cells"]
    return [(i, "".join(c["source"])) for i, c in enumerate(cells) if c["cell_type"] == "markdown"]


def glossary_links(source: str) -> list[tuple[str, str, int, int]]:
    """(link text, anchor, start, end) of every glossary link in a markdown source."""
    return [(m.group(1), m.group(2), m.start(), m.end()) for m in GLOSSARY_LINK.finditer(source)]


def section_start(cells: list[tuple[int, str]], where: str) -> tuple[int, int]:
    """Where a notebook's "introduction" or "section N" (N.M) begins, as (cell index, offset)."""
    if where.startswith("introduction"):
        return (cells[0][0], 0)
    m = re.match(r"sections? (\d+(?:\.\d+)?)", where)
    if m is None:
        raise ValueError(f"cannot read the section in '{where}'")
    number = re.escape(m.group(1))
    for index, source in cells:
        h = re.search(rf"^#{{2,3}}\s+{number}\.?\s", source, re.M)
        if h:
            return (index, h.start())
    raise ValueError(f"no section {m.group(1)} in the notebook")


def objective_spans(cells: list[tuple[int, str]]) -> list[tuple[int, int, int]]:
    """(cell, start, end) of the learning objectives: the body of the "Learning objectives" section."""
    spans = []
    for index, source in cells:
        h = re.search(r"^#{2,3}\s+Learning objectives[^\n]*\n", source, re.M)
        if h:
            nxt = re.search(r"^#{1,6}\s", source[h.end():], re.M)
            spans.append((index, h.end(), h.end() + nxt.start() if nxt else len(source)))
    return spans


def violations(path: Path, entries: list[Entry]) -> list[str]:
    """Uses of a glossary term in a heading or a learning objective before the notebook links or defines it."""
    cells = markdown_cells(path)
    by_anchor = {e.anchor: e for e in entries}
    number = path.name.split("_")[0]
    defined: dict[str, tuple[int, int]] = {}

    def note(anchor: str, where: tuple[int, int]) -> None:
        if anchor in by_anchor and where < defined.get(anchor, (10**9, 0)):
            defined[anchor] = where

    for entry in entries:
        if entry.built_in and entry.built_in[0] == number:
            note(entry.anchor, section_start(cells, entry.built_in[1]))
    checked: list[tuple[Use, str, bool]] = []  # (use, where it is, inside a glossary link to its own entry)
    objectives = objective_spans(cells)
    for index, source in cells:
        links = glossary_links(source)
        for _, anchor, start, _ in links:
            note(anchor, (index, start))
        text = prose(source)
        for bold in BOLD.finditer(text):
            if len(bold.group(1).split()) <= 6:
                for use in find_uses(bold.group(1), entries, index):
                    note(use.anchor, (index, bold.start()))
        uses = find_uses(text, entries, index)
        for h in HEADING.finditer(source):
            kind = "title" if h.group(1) == "#" else "heading"
            for use in uses:
                if h.start(2) <= use.start < h.end():
                    linked = any(a == use.anchor and s <= use.start < e for _, a, s, e in links)
                    checked.append((use, kind, linked))
        for cell, start, end in objectives:
            if cell == index:
                for use in uses:
                    if start <= use.start < end:
                        linked = any(a == use.anchor and s <= use.start < e for _, a, s, e in links)
                        checked.append((use, "learning objective", linked))
    problems = []
    for use, kind, linked in checked:
        if linked:
            continue
        point = defined.get(use.anchor)
        source = dict(cells)[use.cell]
        ok = point is not None and (point[0] == use.cell if kind == "title" and use.cell == cells[0][0]
                                    else point <= (use.cell, use.start))
        if not ok:
            problems.append(f"{path.name}, cell {use.cell}: {kind} uses '{source[use.start:use.end]}' before a link "
                            f"to glossary.md#{use.anchor} or the notebook's own definition")
    return problems


@pytest.fixture(scope="module")
def entries() -> list[Entry]:
    return parse_glossary(GLOSSARY.read_text())


# --- the glossary itself ---------------------------------------------------------------------------------------

def test_every_entry_has_an_anchor_a_definition_and_the_notebook_that_builds_it(entries):
    assert 30 <= len(entries) <= 55, f"{len(entries)} entries"
    for e in entries:
        assert e.anchor == slug(e.term), f"'{e.term}': target ({e.anchor})= should be ({slug(e.term)})="
        n = sentences(e.definition)
        assert 2 <= n <= 4, f"'{e.term}': the definition has {n} sentences, not two to four"
        assert e.built_in is not None, f"'{e.term}' has no 'Built in:' line"
        number, where, target = e.built_in
        notebook = NOTEBOOKS_DIR / target
        assert notebook.is_file() and notebook.parent == NOTEBOOKS_DIR, f"'{e.term}': {target} is not a notebook"
        assert target.split("_")[0] == number, f"'{e.term}': 'notebook {number}' links {target}"
        section_start(markdown_cells(notebook), where)  # raises when the named section is not there


def test_entries_are_alphabetical_with_unique_anchors_and_names(entries):
    terms = [e.term for e in entries]
    assert terms == sorted(terms, key=str.casefold), "entries out of alphabetical order"
    assert len({e.anchor for e in entries}) == len(entries), "two entries share an anchor"
    names = [n.casefold() for e in entries for n in e.names]
    shared = sorted({n for n in names if names.count(n) > 1})
    assert not shared, f"a name belongs to two entries: {shared}"


def test_the_issues_terms_are_all_there(entries):
    for term in ISSUE_TERMS:
        assert find_uses(term, entries, 0), f"no glossary entry covers '{term}'"


def test_parse_glossary_rejects_a_heading_without_a_target():
    with pytest.raises(ValueError, match="no \\(anchor\\)= target"):
        parse_glossary("# Glossary\n\n## RoPE\n\nRotates. Pairs.\n")
    bad = "(rope)=\n## RoPE\n\nRotates. Pairs.\n\nBuilt in: notebook 01\n"
    with pytest.raises(ValueError, match="cannot read"):
        parse_glossary(bad)


# --- links from the notebooks ----------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=[str(p.relative_to(NOTEBOOKS_DIR)) for p in ALL_NOTEBOOKS])
def test_every_glossary_link_resolves_and_names_its_term(path, entries):
    by_anchor = {e.anchor: e for e in entries}
    prefix = "../glossary.md#" if path.parent.name == "solutions" else "glossary.md#"
    for index, source in markdown_cells(path):
        for m in ANY_LINK.finditer(source):
            if "glossary.md" in m.group(3):
                assert m.group(3).startswith(prefix), f"cell {index}: '{m.group(3)}' should start '{prefix}'"
        for text, anchor, _, _ in glossary_links(source):
            assert anchor in by_anchor, f"cell {index}: glossary.md#{anchor} is not an entry"
            assert find_uses(text, [by_anchor[anchor]], 0), \
                f"cell {index}: link text '{text}' is not a name of '{by_anchor[anchor].term}'"


@pytest.mark.parametrize("path", MAIN_NOTEBOOKS, ids=[p.name for p in MAIN_NOTEBOOKS])
def test_each_term_is_linked_once_per_notebook(path, entries):
    anchors = [a for _, s in markdown_cells(path) for _, a, _, _ in glossary_links(s)]
    assert anchors, f"{path.name} links no glossary term"
    twice = sorted({a for a in anchors if anchors.count(a) > 1})
    assert not twice, f"{path.name} links these terms more than once: {twice}"


@pytest.mark.parametrize("path", MAIN_NOTEBOOKS, ids=[p.name for p in MAIN_NOTEBOOKS])
def test_no_term_in_a_heading_or_objective_before_its_link_or_definition(path, entries):
    problems = violations(path, entries)
    assert not problems, "\n".join(problems)


def _notebook(tmp_path: Path, *markdown: str) -> Path:
    cells = [{"cell_type": "markdown", "metadata": {}, "source": m} for m in markdown]
    path = tmp_path / "09_demo.ipynb"
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    return path


def test_the_rule_catches_a_term_before_its_link_and_passes_it_after(tmp_path, entries):
    intro = "# 09 · Demo\n\nA demo.\n\n## Learning objectives\n- shrink the cache with GQA and MQA;\n"
    late = "## 1. Section\n\n[GQA](glossary.md#gqa) and the [multi-query attention](glossary.md#mqa)."
    found = violations(_notebook(tmp_path, intro, late), entries)
    assert [p.split("uses ")[1].split(" before")[0] for p in found] == ["'GQA'", "'MQA'"]
    linked = intro.replace("with GQA", "with [GQA](glossary.md#gqa)")
    found = violations(_notebook(tmp_path, linked, late), entries)
    assert [p.split("uses ")[1].split(" before")[0] for p in found] == ["'MQA'"]
    defined = "# 09 · Demo\n\nThe **KV cache** holds keys.\n\n## 1. Shrinking the KV cache\n"
    assert violations(_notebook(tmp_path, defined), entries) == []
    undefined = "# 09 · Demo\n\nThe cache holds keys.\n\n## 1. Shrinking the KV cache\n"
    assert len(violations(_notebook(tmp_path, undefined), entries)) == 1
    # math, code and lowercase look-alikes are not uses: "$L$", `gqa`, "rag" in a word
    quiet = "# 09 · Demo\n\n## Learning objectives\n- read `GQA` and $RoPE$ past $L$; a ragged edge\n"
    assert violations(_notebook(tmp_path, quiet), entries) == []


def test_readme_states_the_number_of_terms():
    count = len(parse_glossary(GLOSSARY.read_text()))
    assert f"defines the collection's terms ({count}," in (ROOT / "README.md").read_text()
