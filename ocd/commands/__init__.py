"""One module per subcommand: ``main(args, config) -> exit status``.

Subcommands that are ours (not in the user's page) also add their own
parser through ``add_parser(subparsers, sub, add_config)``.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

#: Modules of subcommands beyond the user's page, in the order of ``ocd -h``.
EXTRA_MODULES = ("sample_night", "simulate_night", "status")


def extra_subcommands() -> list[Callable[..., Any]]:
    return [importlib.import_module(f"ocd.commands.{name}").add_parser for name in EXTRA_MODULES]


def not_available(name: str) -> int:
    """The answer of a subcommand whose implementation has not landed yet."""
    import sys

    print(f"ocd {name}: not available yet", file=sys.stderr)
    return 2
