"""Sphinx configuration of the book (`make book`, tools/build_book.py): every notebook as a page, with the outputs
committed in it (nothing is executed), the solutions in their own part, the glossary and the references.

tools/build_book.py assembles the source tree in build/book/src (index.md from this folder, a copy of notebooks/
made at build time) and runs Sphinx with this folder as its configuration directory.
"""

# The one place that names the repository: the launch buttons of every notebook page (Colab, Binder) and the
# repository link. Set it to your copy of the collection, as `LCLIB_REPO` in the notebooks' setup cell.
REPOSITORY = "OWNER/REPO"
BRANCH = "main"

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # notebook_outputs.py, the extension beside this file

project = "Long-Context Models, hands-on"

extensions = ["myst_nb", "notebook_outputs"]
root_doc = "index"
include_patterns = ["index.md", "notebooks/[0-9]*.ipynb", "notebooks/solutions/*.ipynb",
                    "notebooks/glossary.md", "notebooks/references.md"]
exclude_patterns = ["**/.ipynb_checkpoints"]

# The committed outputs are the content: a notebook is never run to build the book.
nb_execution_mode = "off"
# No ipywidgets JavaScript (it would come from a CDN): notebook_outputs.py leaves the panels' widget views out of
# the pages, and the static picture of each panel's default view stands in for the panel. It also puts each
# figure's alt text on its <img>.
nb_ipywidgets_js = {}
# The guarded setup cell (first code cell) of each notebook carries the cell tag remove-input: the book hides it.
myst_enable_extensions = ["dollarmath", "amsmath"]

html_theme = "sphinx_book_theme"
html_title = project
html_theme_options = {
    "repository_url": f"https://github.com/{REPOSITORY}",
    "repository_branch": BRANCH,
    "path_to_docs": "",  # the source tree mirrors the repository: notebooks/01_....ipynb is that path in the repo
    "use_repository_button": True,
    "launch_buttons": {
        "colab_url": "https://colab.research.google.com",
        "binderhub_url": "https://mybinder.org",
        "notebook_interface": "jupyterlab",
    },
}
