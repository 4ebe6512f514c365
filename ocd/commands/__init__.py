"""One module per subcommand: ``main(args, config) -> exit status``.

Subcommands that are ours (not in the user's page) also add their own
parser through ``add_parser(subparsers, sub, add_config)``.
"""

from __future__ import annotations

import importlib
import sys
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from ocd.config import Config

#: Modules of subcommands beyond the user's page, in the order of ``ocd -h``.
EXTRA_MODULES = ("sample_night", "simulate_night", "night_report")


def extra_subcommands() -> list[Callable[..., Any]]:
    return [importlib.import_module(f"ocd.commands.{name}").add_parser for name in EXTRA_MODULES]


def not_available(name: str) -> int:
    """The answer of a subcommand whose implementation has not landed yet."""
    print(f"ocd {name}: not available yet", file=sys.stderr)
    return 2


def warn_both_sources(config: Config, command: str) -> None:
    """Only ``ocd run`` refuses both telescope sources; the others warn."""
    if config.get_urls("urls", "event_urls") and config.get_urls("urls", "ocd_db_replay"):
        print(f"WARNING: ocd {command}: both [urls] event_urls and [urls] ocd_db_replay are "
              "given; `ocd run` would refuse this configuration", file=sys.stderr)
