"""``ocd run``: build the service tree and run it on the reactor.

The same tree as ``twistd ocd`` (``ocd.app.makeService``). SIGINT and
SIGTERM stop the reactor, which stops the services (sockets closed, with
LINGER so a last event still leaves); the exit status is then 0.
"""

from __future__ import annotations

import argparse
import sys

from ocd.cli import EXIT_OK, EXIT_USAGE
from ocd.config import Config, ConfigError


def main(args: argparse.Namespace, config: Config) -> int:
    from ocd.logs import start_logging
    from ocd.protocols.zmq import BindError
    from ocd.app import makeService

    try:
        service = makeService(config)
    except ConfigError as exc:
        print(f"ocd run: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    start_logging(config, program="ocd run")
    from twisted.internet import reactor

    try:
        service.startService()
    except BindError as exc:
        print(f"ocd run: {exc}", file=sys.stderr)
        return EXIT_USAGE
    reactor.addSystemEventTrigger("before", "shutdown", service.stopService)
    reactor.run()
    return EXIT_OK
