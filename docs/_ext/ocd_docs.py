"""Sphinx directives that generate OCD's reference text from the code.

``.. ocd-usage:: run_shot`` prints ``ocd run_shot -h`` as a literal block,
from the real parser, at a fixed width of 80 columns.

``.. ocd-config-options::`` writes, for each section of the master
configuration, a table of its options (default, unit, live, description)
read from the comments of ``ocd/data/ocd.cfg``.

The index's toctree also lists, at build time, every other page found in
``docs/`` (Markdown pages written by other people, such as ``zmq.md``), so
a new page is never an orphan that fails ``sphinx-build -W``.
"""

from __future__ import annotations

import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from docutils import nodes
from docutils.parsers.rst import directives
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles

WIDTH = "80"
OTHER_PAGES = "   ocd-other-pages\n"


@contextmanager
def _environ(**values: str) -> Iterator[None]:
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def usage_text(path: list[str]) -> str:
    """``ocd <path> -h`` exactly as the parser prints it on 80 columns."""
    from ocd.cli import subcommand_parser

    with _environ(COLUMNS=WIDTH, NO_COLOR="1"):
        return subcommand_parser(path).format_help().rstrip() + "\n"


class OcdUsage(SphinxDirective):
    """``.. ocd-usage:: config send`` -> the help of ``ocd config send``."""

    required_arguments = 0
    optional_arguments = 3
    has_content = False

    def run(self) -> list[nodes.Node]:
        text = usage_text(list(self.arguments))
        block = nodes.literal_block(text, text)
        block["language"] = "none"
        return [block]


_LITERAL = re.compile(r"(``.+?``)")
_SPECIAL = re.compile(r"([\\*`_|\[\]<>])")


def rst_text(text: str) -> str:
    """A master-file comment as RST: ``literals`` kept, the rest escaped."""
    parts = _LITERAL.split(text)
    return "".join(
        part if part.startswith("``") and part.endswith("``") else _SPECIAL.sub(r"\\\1", part)
        for part in parts
    )


def config_tables_rst(underline: str = "~") -> list[str]:
    from ocd.config import master_text
    from ocd.config_checks import accepts
    from ocd.config_docs import parse_option_docs

    docs = parse_option_docs(master_text())
    sections: dict[str, list] = {}
    for doc in docs:
        sections.setdefault(doc.section, []).append(doc)
    lines: list[str] = []
    for section, options in sections.items():
        title = f"[{section}]"
        lines += [
            f".. _config-{section}:",
            "",
            title,
            underline * len(title),
            "",
            ".. list-table::",
            "   :header-rows: 1",
            "   :widths: 22 22 14 6 36",
            "",
            "   * - option",
            "     - default",
            "     - unit",
            "     - live",
            "     - description",
        ]
        for doc in options:
            default = f"``{doc.default}``" if doc.default else "*(empty)*"
            lines += [
                f"   * - ``{doc.option}``",
                f"     - {default}",
                f"     - {rst_text(doc.unit)}"
                + (f" ({accepts(doc.section, doc.option)})" if accepts(doc.section, doc.option)
                   else ""),
                f"     - {'yes' if doc.live else 'no'}",
                f"     - {rst_text(doc.help)}",
            ]
        lines.append("")
    return lines


class OcdConfigOptions(SphinxDirective):
    """``.. ocd-config-options::`` -> one titled table per section."""

    has_content = False
    option_spec = {"underline": directives.unchanged}

    def run(self) -> list[nodes.Node]:
        from ocd.config import master_path

        self.env.note_dependency(str(master_path()))
        underline = self.options.get("underline", "~")
        container = nodes.section()
        container.document = self.state.document
        content = StringList(config_tables_rst(underline), source="ocd/data/ocd.cfg")
        nested_parse_with_titles(self.state, content, container)
        return container.children


class OcdLiveOptions(SphinxDirective):
    """``.. ocd-live-options::`` -> the options ``ocd config send`` may change."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        from ocd.config import master_text
        from ocd.config_docs import parse_option_docs

        items = [f"``[{d.section}] {d.option}``" for d in parse_option_docs(master_text()) if d.live]
        container = nodes.container()
        content = StringList([", ".join(items) + "."], source="ocd/data/ocd.cfg")
        self.state.nested_parse(content, self.content_offset, container)
        return container.children


def _other_pages(srcdir: Path, index_text: str) -> list[str]:
    """Pages in ``docs/`` that the index's toctree does not list by name."""
    listed = set(re.findall(r"^\s{3}(\S+)\s*$", index_text, re.M))
    found = []
    for path in sorted(srcdir.rglob("*")):
        if path.suffix not in (".rst", ".md") or not path.is_file():
            continue
        rel = path.relative_to(srcdir)
        if rel.parts[0].startswith(("_", ".")):
            continue
        name = rel.with_suffix("").as_posix()
        if name != "index" and name not in listed:
            found.append(name)
    return found


def _source_read(app, docname: str, source: list[str]) -> None:
    if docname == "index" and OTHER_PAGES in source[0]:
        pages = _other_pages(Path(app.srcdir), source[0])
        source[0] = source[0].replace(OTHER_PAGES, "".join(f"   {p}\n" for p in pages))


def _outdated(app, env, added, changed, removed) -> list[str]:
    """Re-read the index when pages come or go, so its toctree follows."""
    return ["index"] if added or removed else []


def setup(app):
    app.add_directive("ocd-usage", OcdUsage)
    app.add_directive("ocd-config-options", OcdConfigOptions)
    app.add_directive("ocd-live-options", OcdLiveOptions)
    app.connect("source-read", _source_read)
    app.connect("env-get-outdated", _outdated)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
