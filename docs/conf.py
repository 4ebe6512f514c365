"""Sphinx configuration of the OCD documentation (``make docs``).

The usage blocks and the option tables are generated at build time from the
real parser (``ocd.cli``) and the master configuration (``ocd/data/ocd.cfg``)
by the small extension in ``_ext/ocd_docs.py``: they are never copied by hand.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# This tree's ``ocd`` first, so the docs describe the code next to them.
sys.path[:0] = [str(HERE.parent), str(HERE / "_ext")]

from ocd import __version__  # noqa: E402

project = "OCD"
author = "the OCD developers"
copyright = "the OCD developers"
version = release = __version__

extensions = ["myst_parser", "ocd_docs"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_ext", "Thumbs.db", ".DS_Store"]
templates_path: list[str] = []

# Markdown pages written by several people: a skipped heading level (H1 to
# H3) is a matter of style, not an error that should fail ``-W``.
suppress_warnings = ["myst.header"]
myst_heading_anchors = 3

html_theme = "alabaster"
html_static_path: list[str] = []
html_title = f"OCD {release}"
