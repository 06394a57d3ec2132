"""Sphinx extension: two changes to how myst-nb (1.4) shows the notebooks' outputs in the book.

1. Alt text. Every PNG output carries {"image/png": {"alt": "..."}} in its metadata (lclib.plotting.show writes
   it); myst-nb keeps only width and height from there, and Sphinx would then write the file name as alt. myst-nb
   names each image file it writes by the sha256 of the image's bytes, so each image node gets the alt text of the
   output with that hash.
2. Widget views. An interactive panel's output is a widget view, which only a running kernel can draw: without
   one it shows as `interactive(children=...)`. Each panel's default view is also drawn as a static picture (with
   alt text "Static picture of the panel's default view ..."), so the widget output is left out of the page.

Both run when a page is parsed; tests/test_book.py checks every figure's alt text and that no page holds widget text.
"""

from __future__ import annotations

import binascii
import hashlib
import json
from pathlib import Path

from docutils import nodes

IMAGE_MIMES = ("image/png", "image/jpeg", "image/gif")
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def alt_by_hash(notebook: Path) -> dict[str, str]:
    """sha256 hex digest of each image output's bytes -> its alt text, for the outputs that carry one."""
    found = {}
    for cell in json.loads(notebook.read_text(encoding="utf-8"))["cells"]:
        for output in cell.get("outputs", []):
            for mime in IMAGE_MIMES:
                data = output.get("data", {}).get(mime)
                alt = output.get("metadata", {}).get(mime, {}).get("alt")
                if data and alt:
                    data = "".join(data) if isinstance(data, list) else data
                    found[hashlib.sha256(binascii.a2b_base64(data)).hexdigest()] = str(alt)
    return found


def is_widget_output(node: nodes.Node) -> bool:
    """A myst-nb output (all its mime types, the text fallback too) that holds a widget view."""
    return (isinstance(node, nodes.container) and node.get("nb_element") == "mime_bundle"
            and any(child.get("mime_type") == WIDGET_VIEW for child in node.children))


def fix_outputs(app, doctree: nodes.document) -> None:
    source = Path(app.env.doc2path(app.env.docname))
    if source.suffix != ".ipynb":
        return
    alts = alt_by_hash(source)
    for image in doctree.findall(nodes.image):
        alt = alts.get(Path(image["uri"]).stem)
        if alt:
            image["alt"] = alt
    for bundle in list(doctree.findall(is_widget_output)):
        parent = bundle.parent
        parent.remove(bundle)
        if not parent.children and "cell_output" in parent.get("classes", []):
            parent.parent.remove(parent)


def setup(app):
    app.connect("doctree-read", fix_outputs)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
