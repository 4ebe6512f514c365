"""``ocd run``: build the service tree and run it on the reactor.

The same tree as ``twistd ocd`` (``ocd.app.makeService``). SIGINT and
SIGTERM stop the reactor, which stops the services (sockets closed, with
LINGER so a last event still leaves); the exit status is then 0.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ocd.cli import EXIT_OK, EXIT_USAGE
from ocd.config import Config, ConfigError


def main(args: argparse.Namespace, config: Config) -> int:
    from twisted.internet import defer

    from ocd.app import makeService
    from ocd.commands import react
    from ocd.logs import start_logging
    from ocd.protocols.zmq import BindError

    def serve(reactor: Any) -> defer.Deferred[int] | int:
        try:
            service = makeService(config, reactor)
        except ConfigError as exc:
            print(f"ocd run: configuration error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        start_logging(config, program="ocd run")
        try:
            service.startService()
        except BindError as exc:
            print(f"ocd run: {exc}", file=sys.stderr)
            return EXIT_USAGE
        stopped: defer.Deferred[int] = defer.Deferred()

        def stop() -> defer.Deferred[Any]:
            # Services stop before the reactor does; then the status is 0.
            return defer.maybeDeferred(service.stopService).addBoth(
                lambda _: stopped.callback(EXIT_OK))

        reactor.addSystemEventTrigger("before", "shutdown", stop)
        return stopped

    return react(serve)
