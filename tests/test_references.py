"""The bibliography (notebooks/references.md) and every citation of it in the notebooks.

An entry is a MyST target line `(key)=`, a heading `## Author et al., YEAR: short name`, then one
`- **Field:** value` line per field. The key is the first author's surname (lower case, accents dropped)
followed by the year and, where one author has two entries in a year, a letter.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
REFERENCES = NOTEBOOKS / "references.md"
MAIN = sorted(NOTEBOOKS.glob("*.ipynb"))
SOLUTIONS = sorted((NOTEBOOKS / "solutions").glob("*.ipynb"))
REQUIRED = ("Title", "Authors", "Year", "Venue", "Cited in")
ARXIV = re.compile(r"^<?https://arxiv\.org/abs/\d{4}\.\d{4,5}>?$")
URL = re.compile(r"^<?https?://[^\s<>]+>?$")
TARGET = re.compile(r"^\(([^)]*)\)=\s*$")
HEADING = re.compile(r"^## (?P<cite>(?P<author>[^,]+?)(?: et al\.)?(?: \([^)]*\))?, (?P<year>\d{4})(?P<letter>[a-z]?)): \S")
FIELD = re.compile(r"^- \*\*(?P<name>[A-Za-z ]+):\*\* (?P<value>.+)$")
LINK = re.compile(r"\]\((?P<prefix>(?:\.\./)?)references\.md#(?P<key>[^)\s]*)\)")
IN_PROSE = re.compile(r"\b([A-Z][a-z]+) et al\.,?\s*\(?(\d{4})?")


def fold(name: str) -> str:
    """Lower case without accents: 'Lù' -> 'lu'."""
    return "".join(ch for ch in unicodedata.normalize("NFKD", name) if not unicodedata.combining(ch)).lower()


def first_author(fields: dict[str, str]) -> str:
    """The first author's surname as the heading writes it: 'Robertson and Zaragoza' -> 'Robertson'."""
    return fields["_author"].split(" and ")[0].split()[-1]


def parse_references(text: str) -> dict[str, dict[str, str]]:
    """Entries of a references.md text by key; ValueError naming the entry and field that is wrong."""
    lines = text.splitlines()
    entries: dict[str, dict[str, str]] = {}
    for i, line in enumerate(lines):
        target = TARGET.match(line)
        if not target:
            continue
        key = target.group(1)
        if not re.fullmatch(r"[a-z][a-z0-9]*\d{4}[a-z]?", key):
            raise ValueError(f"references.md: key {key!r} is not lowercase author+year[+letter]")
        if key in entries:
            raise ValueError(f"references.md: key {key!r} appears twice")
        heading = HEADING.match(lines[i + 1]) if i + 1 < len(lines) else None
        if not heading:
            raise ValueError(f"references.md: entry {key!r} is not followed by '## Author et al., YEAR: name'")
        fields: dict[str, str] = {"_cite": heading.group("cite"), "_author": heading.group("author"),
                                  "_heading_year": heading.group("year") + heading.group("letter")}
        for follow in lines[i + 2:]:
            if TARGET.match(follow) or follow.startswith("#") or follow.strip() == "---":
                break
            field = FIELD.match(follow)
            if field:
                fields[field.group("name")] = field.group("value").strip()
        for name in REQUIRED:
            if not fields.get(name):
                raise ValueError(f"references.md: entry {key!r} has no {name!r} field")
        if not re.fullmatch(r"\d{4}", fields["Year"]):
            raise ValueError(f"references.md: entry {key!r} field 'Year' must be 4 digits, got {fields['Year']!r}")
        if "arXiv" in fields:
            if not ARXIV.match(fields["arXiv"]):
                raise ValueError(f"references.md: entry {key!r} field 'arXiv' is not https://arxiv.org/abs/NNNN.NNNNN")
        elif "URL" in fields:
            if not URL.match(fields["URL"]):
                raise ValueError(f"references.md: entry {key!r} field 'URL' is not a URL: {fields['URL']!r}")
        else:
            raise ValueError(f"references.md: entry {key!r} has neither an 'arXiv' nor a 'URL' field")
        entries[key] = fields
    if not entries:
        raise ValueError("references.md: no entry found (expected '(key)=' lines)")
    return entries


@pytest.fixture(scope="module")
def entries() -> dict[str, dict[str, str]]:
    return parse_references(REFERENCES.read_text(encoding="utf-8"))


def markdown_cells(path: Path) -> list[str]:
    return [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "markdown"]


def notebook_id(path: Path) -> str:
    return path.name.split("_", 1)[0]


def where_next(path: Path) -> str:
    """The "## Where next" section of a notebook: from its heading to the next heading of level 1 or 2."""
    for source in markdown_cells(path):
        m = re.search(r"^## Where next[ \t]*$", source, re.M)
        if m:
            rest = source[m.end():]
            nxt = re.search(r"^#{1,2} ", rest, re.M)
            return rest[:nxt.start()] if nxt else rest
    raise AssertionError(f"{path.name}: no '## Where next' section")


def test_entries_have_every_field_and_unique_keys(entries):
    assert len(entries) >= 30
    text = REFERENCES.read_text(encoding="utf-8")
    targets = re.findall(r"^\(([^)]*)\)=\s*$", text, re.M)
    assert len(targets) == len(set(targets)) == len(entries)


def test_key_is_first_author_and_year(entries):
    for key, fields in entries.items():
        surname = fold(first_author(fields))
        assert key == surname + fields["_heading_year"], (key, fields["_cite"])
        assert fields["_heading_year"][:4] == fields["Year"], (key, fields["Year"])


def test_arxiv_ids_unique_and_preprints_have_one(entries):
    ids = [f["arXiv"] for f in entries.values() if "arXiv" in f]
    assert len(ids) == len(set(ids))
    for key, fields in entries.items():
        if "arXiv preprint" in fields["Venue"]:
            assert "arXiv" in fields, f"{key}: an arXiv preprint without its arXiv link"


def test_authors_listed_in_full_or_six_then_et_al(entries):
    for key, fields in entries.items():
        names = [a for a in fields["Authors"].split(" (")[0].split(", ") if a and a != "et al."]
        assert len(names) <= 6, f"{key}: more than six authors listed before 'et al.'"
        if "et al." in fields["Authors"]:
            assert len(names) >= 1


@pytest.mark.parametrize("bad, field", [
    ("(su2021)=\n## Su et al., 2021: RoFormer\n\n- **Authors:** A\n- **Year:** 2021\n- **Venue:** V\n"
     "- **arXiv:** <https://arxiv.org/abs/2104.09864>\n- **Cited in:** notebooks 01\n", "Title"),
    ("(su2021)=\n## Su et al., 2021: RoFormer\n\n- **Title:** T\n- **Authors:** A\n- **Year:** 21\n- **Venue:** V\n"
     "- **arXiv:** <https://arxiv.org/abs/2104.09864>\n- **Cited in:** notebooks 01\n", "Year"),
    ("(su2021)=\n## Su et al., 2021: RoFormer\n\n- **Title:** T\n- **Authors:** A\n- **Year:** 2021\n- **Venue:** V\n"
     "- **arXiv:** <https://arxiv.org/abs/2104.098>\n- **Cited in:** notebooks 01\n", "arXiv"),
    ("(Su2021)=\n## Su et al., 2021: RoFormer\n", "key"),
])
def test_parser_rejects_bad_entries(bad, field):
    with pytest.raises(ValueError, match=field):
        parse_references(bad)


def test_every_link_resolves(entries):
    for path in MAIN + SOLUTIONS:
        expected_prefix = "../" if path.parent.name == "solutions" else ""
        for source in markdown_cells(path):
            for m in LINK.finditer(source):
                assert m.group("key") in entries, f"{path.name}: references.md#{m.group('key')} has no entry"
                assert m.group("prefix") == expected_prefix, f"{path.name}: link must start {expected_prefix!r}"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for m in re.finditer(r"references\.md#([^)\s]*)\)", readme):
        assert m.group(1) in entries, f"README.md: references.md#{m.group(1)} has no entry"


def test_in_prose_citations_name_an_entry(entries):
    by_author: dict[str, set[str]] = {}
    for fields in entries.values():
        by_author.setdefault(first_author(fields), set()).add(fields["Year"])
    for path in MAIN + SOLUTIONS:
        for source in markdown_cells(path):
            for author, year in IN_PROSE.findall(source):
                assert author in by_author, f"{path.name}: '{author} et al.' has no entry"
                if year:
                    assert year in by_author[author], f"{path.name}: '{author} et al. {year}' has no entry"


def test_cited_in_matches_the_links(entries):
    linked: dict[str, dict[str, set[str]]] = {k: {"notebooks": set(), "solutions": set()} for k in entries}
    for path in MAIN + SOLUTIONS:
        kind = "solutions" if path.parent.name == "solutions" else "notebooks"
        for source in markdown_cells(path):
            for m in LINK.finditer(source):
                linked[m.group("key")][kind].add(notebook_id(path))
    for key, fields in entries.items():
        stated = {"notebooks": set(), "solutions": set()}
        for kind in stated:
            m = re.search(kind + r" ([0-9a-z, ]+?)(?:;|\(|$)", fields["Cited in"])
            if m:
                stated[kind] = {s.strip() for s in m.group(1).split(",") if s.strip()}
        assert stated == linked[key], f"{key}: Cited in says {stated}, the notebooks link it from {linked[key]}"
        if not any(linked[key].values()):
            assert fields["Cited in"].startswith("no notebook"), key
        also = re.search(r"\(also in ([^)]*)\)", fields["Cited in"])
        for name in (also.group(1).split(", ") if also else []):
            assert (ROOT / name).exists(), f"{key}: 'also in' names {name}, which does not exist"


@pytest.mark.parametrize("path", MAIN, ids=lambda p: p.stem)
def test_where_next_says_what_the_notebook_rests_on(path, entries):
    section = where_next(path)
    first = next(line for line in section.splitlines() if line.strip())
    assert first.startswith("**This notebook rests on**"), f"{path.name}: first line of Where next: {first!r}"
    rests = [m.group("key") for m in LINK.finditer(first)]
    assert rests and all(k in entries for k in rests), f"{path.name}: {rests}"


def test_readme_states_the_number_of_sources():
    count = len(parse_references(REFERENCES.read_text()))
    assert f"the notebooks cite ({count}," in (ROOT / "README.md").read_text()
