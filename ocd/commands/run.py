"""``ocd run``: build the service tree and run it on the reactor.

The same tree as ``twistd ocd`` (``ocd.app.makeService``), built with
``daemon=True``: the banner is logged first, and signals stop OCD as
events.md 3.6 says (:mod:`ocd.services.signals`): the first Ctrl+C lets a
running shot finish, a second one aborts it; SIGTERM and SIGHUP stop at
once, ending a running shot's programs and sending its FINISH. The exit
status is then 0. A configuration error, a ``--config`` file that does not
exist, or a URL that cannot be bound is one line and exit status 2.
"""

from __future__ import annotations

import argparse
import sys

from ocd.cli import EXIT_OK, EXIT_USAGE
from ocd.config import Config, ConfigError


def main(args: argparse.Namespace, config: Config) -> int:
    from ocd.app import makeService
    from ocd.logs import start_logging
    from ocd.protocols.zmq import BindError
    from ocd.services.main_loop import StartFailed

    try:
        service = makeService(config, daemon=True)
    except ConfigError as exc:
        print(f"ocd run: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    start_logging(config)
    from twisted.internet import reactor

    try:
        service.startService()
    except StartFailed:
        return EXIT_USAGE  # the reason is logged, one line
    except BindError as exc:
        print(f"ocd run: {exc}", file=sys.stderr)
        return EXIT_USAGE
    reactor.addSystemEventTrigger("before", "shutdown", service.stopService)
    reactor.run()
    return EXIT_OK
