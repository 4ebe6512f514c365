"""``ocd status``: what the running OCD is doing, printed for a terminal.

Asks ``GET /status`` on ``[status] endpoint`` (``-e`` overrides it: the
same endpoint string ``ocd run`` listens on, turned into a client one) and
prints the answer. Exit status: 0 healthy, 1 not healthy (the reason is
printed), 2 an endpoint that cannot be asked (empty, no port, another
kind), 3 no OCD answers within ``--timeout`` (or the answer is not OCD's
status).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from ocd.cli import EXIT_USAGE
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
                 "1 when not, 2 when the endpoint cannot be asked, 3 when no OCD answers.")
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


@dataclass(frozen=True)
class StatusAddress:
    """Where ``ocd status`` asks: a TCP host and port, or a UNIX socket path."""

    kind: str  # "tcp" or "unix"
    host: str = ""
    port: int = 0
    path: str = ""

    @property
    def url(self) -> str:
        if self.kind == "unix":
            return "http://localhost/status"
        shown = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{shown}:{self.port}/status"

    def endpoint(self, reactor: Any, timeout: float) -> Any:
        """A client endpoint of the address's family (a server listens on an IP address)."""
        import ipaddress

        from twisted.internet.endpoints import (TCP4ClientEndpoint, TCP6ClientEndpoint,
                                                UNIXClientEndpoint)

        if self.kind == "unix":
            return UNIXClientEndpoint(reactor, self.path, timeout=timeout)
        try:
            ipv6 = ipaddress.ip_address(self.host).version == 6
        except ValueError:  # a name: Twisted's TCP4 client resolves it
            ipv6 = False
        family = TCP6ClientEndpoint if ipv6 else TCP4ClientEndpoint
        return family(reactor, self.host, self.port, timeout=timeout)


def _fields(description: str) -> list[str]:
    """The ``:``-separated fields of a Twisted endpoint string (``\\:`` escapes a colon)."""
    return [f.replace("\\:", ":") for f in re.split(r"(?<!\\):", description)]


def client_endpoint(description: str) -> StatusAddress:
    """Where to ask the server endpoint ``description`` for its status.

    ``tcp:8642:interface=127.0.0.1`` -> 127.0.0.1 port 8642 (``tcp6`` alike,
    ``interface=\\:\\:1`` is ::1); a server on every interface (no
    ``interface``, ``0.0.0.0`` or ``::``) is asked on the loopback address;
    ``unix:PATH`` -> that socket. Anything else raises :class:`EndpointError`.
    """
    fields = _fields(description.strip())
    kind, args = fields[0].lower(), fields[1:]
    positional = [a for a in args if "=" not in a]
    named = dict(a.split("=", 1) for a in args if "=" in a)
    if kind in ("tcp", "tcp6"):
        port = named.get("port") or (positional[0] if positional else "")
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise EndpointError(f"no port (1 to 65535) in the status endpoint {description!r}")
        host = named.get("interface", "")
        if host in ("", "0.0.0.0"):
            host = "127.0.0.1" if kind == "tcp" else "::1"
        elif host == "::":
            host = "::1"
        return StatusAddress("tcp", host=host, port=int(port))
    if kind == "unix":
        path = named.get("address") or (positional[0] if positional else "")
        if not path:
            raise EndpointError(f"no path in the status endpoint {description!r}")
        return StatusAddress("unix", path=path)
    raise EndpointError(f"ocd status cannot ask a {kind!r} endpoint ({description!r}): "
                        "use tcp:PORT:interface=HOST or unix:PATH")


class NotOcdStatus(ValueError):
    """The server answered, but not with a JSON status document."""


def _document(body: bytes) -> Any:
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise NotOcdStatus(f"not JSON: {exc}") from None


def fetch_status(reactor: Any, description: str, timeout: float) -> Any:
    """A Deferred firing with the parsed ``/status`` document (errors on no answer)."""
    from twisted.web.client import Agent, readBody

    address = client_endpoint(description)
    url = address.url

    class _Factory:
        def endpointForURI(self, uri: Any) -> Any:
            return address.endpoint(reactor, max(timeout, 0.1))

    agent = Agent.usingEndpointFactory(reactor, _Factory())
    d = agent.request(b"GET", url.encode("ascii"), None)
    d.addCallback(readBody)
    d.addCallback(_document)
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
    try:
        s = max(int(round(float(seconds))), 0)
    except (TypeError, ValueError, OverflowError):  # None, text, inf, nan
        return "unknown"
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
        print("ocd status: the status service is turned off ([status] endpoint is empty): "
              "give -e ENDPOINT or set it", file=err)
        return defer.succeed(EXIT_USAGE)
    try:
        url = client_endpoint(description).url
    except EndpointError as exc:
        print(f"ocd status: {exc}", file=err)
        return defer.succeed(EXIT_USAGE)

    def not_status(why: str) -> int:
        print(f"ocd status: {url} answered, but not with OCD's status ({why})", file=err)
        return EXIT_NO_ANSWER

    def answered(status: Any) -> int:
        if not isinstance(status, dict) or "healthy" not in status:
            return not_status("no 'healthy' field")
        if as_json:
            text = json.dumps(status, indent=1)
        else:
            try:
                text = render(status, url)
            except (TypeError, ValueError, KeyError, AttributeError, OverflowError) as exc:
                return not_status(f"{type(exc).__name__}: {exc}")
        print(text, file=out)
        return EXIT_HEALTHY if status.get("healthy") else EXIT_UNHEALTHY

    def no_answer(failure: Any) -> int:
        if failure.check(NotOcdStatus):
            return not_status(failure.getErrorMessage())
        print(f"ocd status: no OCD answers at {url} ([status] endpoint {description}) within "
              f"{timeout:g} s: {_why(failure)}", file=err)
        return EXIT_NO_ANSWER

    return fetch_status(reactor, description, timeout).addCallbacks(answered, no_answer)


def _why(failure: Any) -> str:
    """A failure to get an answer in plain words (never a repr of Twisted's objects)."""
    from twisted.internet import defer, error
    from twisted.web.client import ResponseFailed

    if failure.check(defer.TimeoutError, defer.CancelledError, error.ConnectingCancelledError,
                     error.TimeoutError):
        return "no answer"
    if failure.check(ResponseFailed):  # also ResponseNeverReceived: a list of reasons
        reasons = getattr(failure.value, "reasons", [])
        if all(r.check(defer.CancelledError, error.ConnectionDone, error.ConnectionLost)
               for r in reasons):
            return "no answer (the connection closed before one came)"
        return "; ".join(_why(r) for r in reasons)
    return failure.getErrorMessage() or failure.type.__name__


def main(args: argparse.Namespace, config: Config) -> int:
    from ocd.commands import react

    return react(lambda reactor: ask(config, args.timeout, args.json, reactor))
