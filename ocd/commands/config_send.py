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
from ocd.core.topics import Topic



@inlineCallbacks
def send(config: Config, section: str, option: str, value: str, attempts: int,
         interval: float, reactor: Any, out: Any = None) -> Deferred:
    """Fires with the exit status; messages for a person go to ``out``."""
    from ocd.protocols.control import request_main_loop

    out = out if out is not None else sys.stderr
    bind_url = config.get_url_at("ocd_config", "config", "n_ocd_config")
    answer = yield request_main_loop(
        config, bind_url, Topic.CONFIG_UPDATE, {"section": section, "option": option, "value": value},
        Topic.CONFIG_UPDATED, attempts, interval, reactor, out, "ocd config send", "update")
    if answer is None:
        return EXIT_UNREACHABLE
    if answer.get("applied") is True:
        print(f"ocd config send: applied: {answer.get('message', '')}", file=out)
        return EXIT_OK
    print(f"ocd config send: refused: {answer.get('message', '')}", file=out)
    return EXIT_FAILED


def main(args: argparse.Namespace, config: Config) -> int:
    from ocd.commands import react, warn_both_sources

    warn_both_sources(config, "config send")
    from ocd.protocols.curve import client_settings

    # -N out of range or incomplete CurveZMQ keys: exit 2 before anything starts
    config.get_url_at("ocd_config", "config", "n_ocd_config")
    client_settings(config)
    return react(lambda reactor: send(
        config, args.section, args.option, args.value, args.max_attempts, args.interval, reactor))
