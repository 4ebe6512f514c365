"""What each option means: the comments of the master configuration, read.

Every option of ``ocd/data/ocd.cfg`` has its description above it and a last
comment line ``unit: ...; live: yes|no``. This module reads them (and nothing
else): :class:`ocd.config.Config` asks it which options ``ocd config send``
may change, and the documentation's option tables are generated from it
(``docs/_ext/ocd_docs.py``). Kept apart from the configuration reader, which
has other reasons to change.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


class OptionDocError(ValueError):
    """An option of the master file without its ``unit: ...; live: ...`` line."""


@dataclass(frozen=True)
class OptionDoc:
    """One option of the master file with the comment written above it."""

    section: str
    option: str
    default: str
    help: str
    unit: str
    live: bool


_META_RE = re.compile(r"^unit:\s*(?P<unit>.*?);\s*live:\s*(?P<live>yes|no)\s*$")


def parse_option_docs(text: str, name: str = "ocd.cfg") -> list[OptionDoc]:
    """Read the descriptions and ``unit: ...; live: ...`` lines of a config text.

    The master file is the one source of truth for what an option means and
    whether it may change at run time; the docs and ``config send`` both
    read it through this function.
    """
    docs: list[OptionDoc] = []
    section = None
    comments: list[str] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line:
            comments = []
            continue
        if line.startswith("#"):
            comments.append(line[1:].strip())
            continue
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
            comments = []
            continue
        if "=" in line and section is not None:
            option, _, default = line.partition("=")
            meta = _META_RE.match(comments[-1]) if comments else None
            if meta is None:
                raise OptionDocError(
                    f"{name}, line {lineno}: option [{section}] "
                    f"{option.strip()} lacks its 'unit: ...; live: ...' comment"
                )
            docs.append(
                OptionDoc(
                    section=section,
                    option=option.strip(),
                    default=default.strip(),
                    help=" ".join(comments[:-1]),
                    unit=meta["unit"],
                    live=meta["live"] == "yes",
                )
            )
            comments = []
    return docs
