"""``ocd config send SECTION OPTION VALUE``: a live update (events.md 3.3).

Binds the ``ocd_config`` URL picked by ``-N``, shakes hands with the main
loop, sends ``ocd.config.update`` and waits for the ``ocd.config.updated``
with the same ``id``: exit 0 when applied, 1 when refused (with why), 3
when the main loop cannot be reached.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from twisted.internet.defer import Deferred, inlineCallbacks

from ocd.cli import EXIT_FAILED, EXIT_OK, EXIT_UNREACHABLE
from ocd.config import Config

REQUEST = "ocd.config.update"
ANSWER = "ocd.config.updated"


def warn_both_sources(config: Config, command: str) -> None:
    """Only ``ocd run`` refuses both telescope sources; the others warn."""
    if config.get_urls("urls", "event_urls") and config.get_urls("urls", "ocd_db_replay"):
        print(f"WARNING: ocd {command}: both [urls] event_urls and [urls] ocd_db_replay are "
              "given; `ocd run` would refuse this configuration", file=sys.stderr)


@inlineCallbacks
def reach_main_loop(config: Config, bind_url: str, attempts: int, interval: float,
                    reactor: Any, out: Any, command: str) -> Deferred:
    """Open a bus, bind, shake hands: fires ``(bus, client)``, client None on failure.

    The handshake waits ``attempts * interval`` seconds (at least 1 s).
    """
    from ocd.control import ControlClient
    from ocd.protocols.zmq import BindError, Bus

    main_urls = config.get_urls("urls", "ocd_main_loop")
    bus = Bus(reactor)
    bus.open()
    try:
        client = ControlClient(bus, [bind_url], main_urls, reactor)
    except BindError as exc:
        bus.close()
        print(f"{command}: {exc}", file=out)
        return bus, None
    timeout = max(1.0, attempts * interval)
    ok = yield client.handshake(timeout, interval=min(0.25, max(interval, 0.05)))
    if not ok:
        client.close()
        bus.close()
        print(f"{command}: no answer from the OCD main loop on {' '.join(main_urls)} within "
              f"{timeout:g} s (is `ocd run` running, and listening on {bind_url}?)", file=out)
        return bus, None
    return bus, client


@inlineCallbacks
def request_main_loop(config: Config, bind_url: str, topic: str, fields: dict,
                      answer_topic: str, attempts: int, interval: float, reactor: Any,
                      out: Any, command: str, what: str) -> Deferred:
    """Reach the main loop, send one request, fire with its answer.

    Fires None when the main loop could not be reached or did not answer
    (``out`` has been told why): the caller exits with EXIT_UNREACHABLE.
    """
    bus, client = yield reach_main_loop(config, bind_url, attempts, interval, reactor, out,
                                        command)
    if client is None:
        return None
    try:
        answer = yield client.request(topic, fields, answer_topic, attempts, interval)
    finally:
        client.close()
        bus.close()
    if answer is None:
        print(f"{command}: the main loop answered the heartbeat but not the {what} "
              f"after {attempts} attempt(s)", file=out)
    return answer


@inlineCallbacks
def send(config: Config, section: str, option: str, value: str, attempts: int,
         interval: float, reactor: Any, out: Any = None) -> Deferred:
    """Fires with the exit status; messages for a person go to ``out``."""
    out = out if out is not None else sys.stderr
    bind_url = config.get_url_at("ocd_config", "config", "n_ocd_config")
    answer = yield request_main_loop(
        config, bind_url, REQUEST, {"section": section, "option": option, "value": value},
        ANSWER, attempts, interval, reactor, out, "ocd config send", "update")
    if answer is None:
        return EXIT_UNREACHABLE
    if answer.get("applied") is True:
        print(f"ocd config send: applied: {answer.get('message', '')}", file=out)
        return EXIT_OK
    print(f"ocd config send: refused: {answer.get('message', '')}", file=out)
    return EXIT_FAILED


def main(args: argparse.Namespace, config: Config) -> int:
    from ocd.control import run_on_reactor

    warn_both_sources(config, "config send")
    return run_on_reactor(lambda reactor: send(
        config, args.section, args.option, args.value, args.max_attempts, args.interval, reactor))
