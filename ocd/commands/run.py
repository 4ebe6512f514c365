"""``ocd run``: build the service tree and run it on the reactor.

The same tree as ``twistd ocd`` (``ocd.app.makeService``), built with
``daemon=True``: the banner is logged first, and signals stop OCD as
events.md 3.6 says (:mod:`ocd.services.signals`): the first Ctrl+C lets a
running shot finish, a second one aborts it; SIGTERM and SIGHUP stop at
once, ending a running shot's programs and sending its FINISH. The services
stop before the reactor does (sockets closed, with LINGER so a last event
still leaves); the exit status is then 0. A configuration error, a
``--config`` file that does not exist, or a URL that cannot be bound is one
line and exit status 2; so is a file OCD writes that cannot be used
(``[general] json_log`` and ``night_log``, ``[database] sqlite_file``:
:func:`ocd.start_files.check_start_files`, before the service tree is built).
The reactor's clock is made monotonic first (:func:`ocd.app.use_monotonic_clock`).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ocd.cli import EXIT_OK, EXIT_USAGE
from ocd.config import Config, ConfigError
from ocd.start_files import check_start_files, json_log_error

def main(args: argparse.Namespace, config: Config) -> int:
    from ocd.services.channels import StartFailed
    from ocd.services.main_loop import telescope_source

    try:  # what can be checked before the reactor runs (and the service tree is imported)
        config.get_url_at("ocd_main_loop", "run", "n_ocd_main_loop")
        config.get_url_at("ocd_run_shot", "run", "n_ocd_run_shot")
        telescope_source(config)
        check_start_files(config)
    except ConfigError as exc:
        print(f"ocd run: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE

    from twisted.internet import defer

    from ocd.app import makeService, use_monotonic_clock
    from ocd.commands import react
    from ocd.logs import start_logging
    from ocd.protocols.zmq import BindError
    from ocd.services.shot_store import StateDbError

    def serve(reactor: Any) -> defer.Deferred[int] | int:
        use_monotonic_clock(reactor)  # silences and deadlines do not move with the wall clock
        try:
            service = makeService(config, reactor, daemon=True)
        except ConfigError as exc:
            print(f"ocd run: configuration error: {exc}", file=sys.stderr)
            return EXIT_USAGE
        try:
            start_logging(config, program="ocd run")
        except OSError as exc:  # checked above; this is what changed since
            print(f"ocd run: configuration error: {json_log_error(config, exc)}",
                  file=sys.stderr)
            return EXIT_USAGE
        try:
            service.startService()
        except StartFailed:
            return EXIT_USAGE  # the reason is logged, one line
        except (BindError, StateDbError) as exc:
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
