"""``ocd status``: what the running OCD is doing, printed for a terminal.

Asks ``GET /status`` on ``[status] endpoint`` (``-e`` overrides it: the
same endpoint string ``ocd run`` listens on, turned into a client one) and
prints the answer. Exit status: 0 healthy, 1 not healthy (the reason is
printed), 3 no OCD answers within ``--timeout``.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from typing import Any

from ocd.config import Config

EXIT_HEALTHY = 0
EXIT_UNHEALTHY = 1
EXIT_NO_ANSWER = 3


def add_parser(subparsers: Any, sub: Any, add_config: Any) -> None:
    from ocd.cli import OverrideGroup
    from ocd.commands import seconds

    parser = sub(subparsers, "status",
                 "Show what the running OCD is doing and why: its verdict, blockers, arming, "
                 "running shot, next shot and the TCS heartbeat. Exit status 0 when healthy, "
                 "1 when not, 3 when no OCD answers.")
    parser.set_defaults(command_module="status")
    add_config(parser)
    parser.add_argument("-t", "--timeout", type=seconds, default=5,
                        help="Wait at most 'timeout' seconds for OCD's answer")
    parser.add_argument("--json", action="store_true",
                        help="Print the JSON document of /status as it came")
    group = OverrideGroup(parser, "status")
    group.add("-e", "--endpoint",
              help="Twisted endpoint string on which OCD serves its status "
                   "(tcp:PORT:interface=HOST or unix:PATH)")


class EndpointError(ValueError):
    """An endpoint string ``ocd status`` cannot turn into a client."""


def client_endpoint(description: str) -> tuple[str, str]:
    """``(client endpoint string, URL)`` of the server endpoint ``description``.

    ``tcp:8642:interface=127.0.0.1`` -> ``tcp:host=127.0.0.1:port=8642``; a
    server on every interface (no ``interface``, ``0.0.0.0`` or ``::``) is
    asked on the loopback address; ``unix:PATH`` -> ``unix:path=PATH``.
    """
    parts = description.strip().split(":")
    kind, args = parts[0].lower(), parts[1:]
    positional = [a for a in args if "=" not in a]
    named = dict(a.split("=", 1) for a in args if "=" in a)
    if kind in ("tcp", "tcp6"):
        port = named.get("port") or (positional[0] if positional else "")
        if not port.isdigit():
            raise EndpointError(f"no port in the status endpoint {description!r}")
        host = named.get("interface", "")
        if host in ("", "0.0.0.0"):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        shown = f"[{host}]" if ":" in host else host
        escaped = host.replace(":", "\\:")
        return f"{kind}:host={escaped}:port={port}", f"http://{shown}:{port}/status"
    if kind == "unix":
        path = named.get("address") or (positional[0] if positional else "")
        if not path:
            raise EndpointError(f"no path in the status endpoint {description!r}")
        return f"unix:path={path}", "http://localhost/status"
    raise EndpointError(f"ocd status cannot ask a {kind!r} endpoint ({description!r}): "
                        "use tcp:PORT:interface=HOST or unix:PATH")


def fetch_status(reactor: Any, description: str, timeout: float) -> Any:
    """A Deferred firing with the parsed ``/status`` document (errors on no answer)."""
    from twisted.internet.endpoints import clientFromString
    from twisted.web.client import Agent, readBody

    client, url = client_endpoint(description)

    class _Factory:
        def endpointForURI(self, uri: Any) -> Any:
            return clientFromString(reactor, f"{client}:timeout={max(int(timeout), 1)}")

    agent = Agent.usingEndpointFactory(reactor, _Factory())
    d = agent.request(b"GET", url.encode("ascii"), None)
    d.addCallback(readBody)
    d.addCallback(lambda body: json.loads(body.decode("utf-8")))
    d.addTimeout(timeout, reactor)
    return d


def _clock(iso: str | None) -> str:
    if not iso:
        return "unknown"
    try:
        return datetime.fromisoformat(iso).astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    except ValueError:
        return iso


def _duration(seconds: Any) -> str:
    if seconds is None:
        return "unknown"
    s = max(int(round(float(seconds))), 0)
    hours, rest = divmod(s, 3600)
    minutes, s = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {s:02d} s"
    return f"{s} s"


def render(status: dict[str, Any], where: str) -> str:
    """The ``/status`` document as lines for a terminal."""
    from ocd.core.topics import ArmingState

    lines = []
    state = "healthy" if status.get("healthy") else "NOT HEALTHY"
    lines.append(f"OCD {status.get('version', '?')} at {where}: {state} ({status.get('health')})")
    if status.get("shadow"):
        lines.append("mode        SHADOW: OCD decides as if allowed but starts nothing")
    verdict = status.get("verdict")
    lines.append(f"verdict     {('would ' if status.get('shadow') else '') + str(verdict).upper() if verdict else 'no decision yet'}")
    reasons = status.get("reasons") or []
    for i, text in enumerate(reasons):
        lines.append(f"{'blockers' if i == 0 else '':<12}{text}")
    if status.get("stand_ins"):
        lines.append(f"STAND-INS   {status['stand_ins']}")
    allowed = status.get("hetdex_allowed")
    arming = ("HETDEX shots allowed" if allowed == ArmingState.ALLOWED
              else "HETDEX shots not allowed")
    if status.get("failed_shot"):
        arming += "; the last shot failed (ocd allow_hetdex start clears it)"
    lines.append(f"arming      {arming}; run_shot {status.get('run_shot')}")
    shot = status.get("shot")
    if shot:
        step = f", {shot['step']}" if shot.get("step") else ""
        lines.append(f"shot        {shot['shotid']} (observation {shot['obs_number']}){step}, "
                     f"{_duration(shot['elapsed'])} of up to {_duration(shot['expected'])}")
    else:
        lines.append("shot        none running")
    nxt = status.get("next")
    if nxt:
        when = ("window open now" if nxt.get("open_now")
                else f"window opens {_clock(nxt.get('opens'))} (in {_duration(nxt.get('opens_in'))})")
        lines.append(f"next        {nxt['shotid']} on the {nxt['track']} track, {when}")
    else:
        lines.append("next        no shot with observations left")
    tcs = status.get("tcs") or {}
    age = tcs.get("heartbeat_age")
    heard = "never heard" if age is None else f"last heartbeat {_duration(age)} ago"
    urls = " ".join(tcs.get("urls") or []) or "no URL"
    lines.append(f"TCS         {heard}; time {_clock(tcs.get('time'))} ({tcs.get('kind')}: {urls})")
    lines.append(f"OCD time    {_clock(status.get('now'))}; up {_duration(status.get('uptime'))}")
    return "\n".join(lines)


def ask(config: Config, timeout: float, as_json: bool, reactor: Any, out: Any = None,
        err: Any = None) -> Any:
    """Fires with the exit status; the report goes to ``out``, problems to ``err``."""
    from twisted.internet import defer

    out = out if out is not None else sys.stdout
    err = err if err is not None else sys.stderr
    description = config.get_str("status", "endpoint").strip()
    if not description:
        print("ocd status: the status service is turned off ([status] endpoint is empty)",
              file=err)
        return defer.succeed(EXIT_NO_ANSWER)
    try:
        _, url = client_endpoint(description)
    except EndpointError as exc:
        print(f"ocd status: {exc}", file=err)
        return defer.succeed(EXIT_NO_ANSWER)

    def answered(status: Any) -> int:
        if not isinstance(status, dict) or "healthy" not in status:
            print(f"ocd status: {url} answered, but not with OCD's status", file=err)
            return EXIT_NO_ANSWER
        print(json.dumps(status, indent=1) if as_json else render(status, url), file=out)
        return EXIT_HEALTHY if status.get("healthy") else EXIT_UNHEALTHY

    def no_answer(failure: Any) -> int:
        why = "no answer" if failure.check(defer.TimeoutError, defer.CancelledError) else (
            failure.getErrorMessage() or failure.type.__name__)
        print(f"ocd status: no OCD answers at {url} ([status] endpoint {description}) within "
              f"{timeout:g} s: {why}", file=err)
        return EXIT_NO_ANSWER

    return fetch_status(reactor, description, timeout).addCallbacks(answered, no_answer)


def main(args: argparse.Namespace, config: Config) -> int:
    from ocd.commands import react

    return react(lambda reactor: ask(config, args.timeout, args.json, reactor))
