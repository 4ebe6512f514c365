"""``ocd docker_mysql``: not implemented yet."""

from __future__ import annotations

import argparse

from ocd.commands import not_available
from ocd.config import Config


def main(args: argparse.Namespace, config: Config) -> int:
    return not_available("docker_mysql")
