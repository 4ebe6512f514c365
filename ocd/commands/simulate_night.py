"""``ocd simulate_night``: not implemented yet."""

from __future__ import annotations

import argparse
from typing import Any

from ocd.commands import not_available
from ocd.config import Config


def add_parser(subparsers: Any, sub: Any, add_config: Any) -> None:
    parser = sub(subparsers, "simulate_night", "not implemented yet", epilog=None)
    parser.set_defaults(command_module="simulate_night")
    add_config(parser)


def main(args: argparse.Namespace, config: Config) -> int:
    return not_available("simulate_night")
