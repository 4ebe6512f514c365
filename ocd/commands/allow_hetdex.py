"""``ocd allow_hetdex start|stop``: arm or disarm OCD (events.md 3.2).

Binds the ``ocd_allow_hetdex`` URL picked by ``-N``, shakes hands with the
main loop, sends ``ocd.states.hetdex_allowed`` and waits for the
``ocd.states.hetdex_allowed_changed`` with the same ``id``. ``start`` also
clears ``failed_shot``; the answer's reason says so.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from twisted.internet.defer import Deferred, inlineCallbacks

from ocd.cli import EXIT_FAILED, EXIT_OK, EXIT_UNREACHABLE
from ocd.config import Config
from ocd.core.topics import Topic
from ocd.commands import react, warn_both_sources



def requester() -> str:
    """Who asks, for the night log and the console: ``user@host``."""
    import getpass
    import socket

    try:
        user = getpass.getuser()
    except Exception:  # no user name in this environment (a bare container)
        user = "?"
    return f"{user}@{socket.gethostname()}"


@inlineCallbacks
def allow(config: Config, action: str, attempts: int, interval: float, reactor: Any,
          out: Any = None) -> Deferred:
    """Fires with the exit status; messages for a person go to ``out``."""
    from ocd.protocols.control import request_main_loop

    out = out if out is not None else sys.stderr
    want = action == "start"
    bind_url = config.get_url_at("ocd_allow_hetdex", "allow_hetdex", "n_ocd_allow_hetdex")
    answer = yield request_main_loop(
        config, bind_url, Topic.HETDEX_ALLOWED,
        {"allow": want, "reason": f"asked by {requester()}"},
        Topic.HETDEX_ALLOWED_CHANGED, attempts, interval, reactor, out, "ocd allow_hetdex",
        "request")
    if answer is None:
        return EXIT_UNREACHABLE
    allowed = answer.get("allowed")
    reason = answer.get("reason", "")
    state = "allowed" if allowed else "not allowed"
    if allowed is want:
        print(f"ocd allow_hetdex {action}: confirmed, HETDEX shots {state}: {reason}", file=out)
        return EXIT_OK
    print(f"ocd allow_hetdex {action}: refused, HETDEX shots still {state}: {reason}", file=out)
    return EXIT_FAILED


def main(args: argparse.Namespace, config: Config) -> int:

    warn_both_sources(config, "allow_hetdex")
    from ocd.protocols.curve import client_settings

    # -N out of range or incomplete CurveZMQ keys: exit 2 before anything starts
    config.get_url_at("ocd_allow_hetdex", "allow_hetdex", "n_ocd_allow_hetdex")
    client_settings(config)
    return react(
        lambda reactor: allow(config, args.action, args.max_attempts, args.interval, reactor))
