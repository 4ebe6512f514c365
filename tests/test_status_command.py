"""``ocd status`` against servers that are not a healthy OCD.

A hostile tester found tracebacks where a person needs one line: an IPv6
endpoint (``tcp6:PORT``, ``interface=\\:\\:1``), a port out of range taken
for "no answer", a server that answers something that is not OCD's status
(a ``reasons`` that is a number, a shot without its number, a page that is
not JSON; an ``uptime`` of Infinity is shown as unknown), and a server that accepts and never answers, reported as a repr
of Twisted's failure. Each case asks real servers on the loopback
interface with :func:`ocd.commands.status.ask`, in this process.
"""

from __future__ import annotations

import io
import json
import socket

import pytest
import pytest_twisted

from ocd.config import Config

pytestmark = pytest.mark.integration


def ask(endpoint: str, timeout: float = 5.0, as_json: bool = False):
    """``ocd status -e ENDPOINT``: a Deferred of (exit status, stdout, stderr)."""
    from twisted.internet import reactor

    from ocd.commands.status import ask as ask_status

    config = Config.load(None, [("status", "endpoint", endpoint)])
    out, err = io.StringIO(), io.StringIO()
    d = ask_status(config, timeout, as_json, reactor, out, err)
    return d.addCallback(lambda code: (code, out.getvalue(), err.getvalue()))


def serve(body: bytes, interface: str = "127.0.0.1"):
    """A web server whose /status answers ``body``; returns its listening port."""
    from twisted.internet import reactor
    from twisted.web import resource, server

    class Page(resource.Resource):
        isLeaf = True

        def render_GET(self, request):  # noqa: N802 (Twisted's name)
            request.setHeader(b"content-type", b"application/json")
            return body

    return reactor.listenTCP(0, server.Site(Page()), interface=interface)


def good_status(**changes) -> bytes:
    status = {"healthy": True, "health": "ok", "version": "test", "verdict": "wait",
              "reasons": ["Sun up"], "hetdex_allowed": "not_allowed", "run_shot": "idle",
              "shot": None, "next": None, "tcs": {}, "now": None, "uptime": 5}
    status.update(changes)
    return json.dumps(status).encode()


@pytest.mark.parametrize("endpoint, fragment", [
    ("tcp:99999:interface=127.0.0.1", "no port (1 to 65535) in the status endpoint"),
    ("unix:", "no path in the status endpoint"),
    ("", "the status service is turned off"),
])
@pytest_twisted.inlineCallbacks
def test_an_endpoint_that_cannot_be_asked_is_a_usage_error(endpoint, fragment):
    code, out, err = yield ask(endpoint)
    assert (code, out) == (2, "")
    assert fragment in err and "Traceback" not in err


@pytest_twisted.inlineCallbacks
def test_ipv6_endpoints_are_asked_on_ipv6():
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        pytest.skip("this machine has no IPv6 loopback address")
    port = serve(good_status(), interface="::1")
    try:
        number = port.getHost().port
        for endpoint in (f"tcp6:{number}", f"tcp6:{number}:interface=\\:\\:1",
                         f"tcp:{number}:interface=\\:\\:1"):
            code, out, err = yield ask(endpoint)
            assert code == 0, (endpoint, err)
            assert f"OCD test at http://[::1]:{number}/status: healthy" in out
    finally:
        yield port.stopListening()


@pytest.mark.parametrize("body, why", [
    (good_status(reasons=5), "TypeError"),
    (good_status(tcs=5), "AttributeError"),
    (good_status(shot={"shotid": "DEX1"}), "KeyError"),
    (b"<html>not json</html>", "not JSON"),
    (b"[1, 2]", "no 'healthy' field"),
], ids=["reasons-a-number", "tcs-a-number", "shot-without-number", "html", "a-list"])
@pytest_twisted.inlineCallbacks
def test_an_answer_that_is_not_ocds_status_is_one_line(body, why):
    port = serve(body)
    try:
        code, out, err = yield ask(f"tcp:{port.getHost().port}:interface=127.0.0.1")
    finally:
        yield port.stopListening()
    assert (code, out) == (3, "")
    assert "answered, but not with OCD's status" in err and why in err
    assert len(err.strip().splitlines()) == 1


@pytest_twisted.inlineCallbacks
def test_an_uptime_that_is_not_a_number_is_unknown():
    port = serve(good_status(uptime=float("inf")))
    try:
        code, out, err = yield ask(f"tcp:{port.getHost().port}:interface=127.0.0.1")
    finally:
        yield port.stopListening()
    assert code == 0, err
    assert "up unknown" in out


@pytest_twisted.inlineCallbacks
def test_a_server_that_never_answers_says_no_answer_in_words():
    from twisted.internet import protocol, reactor

    silent = reactor.listenTCP(0, protocol.Factory.forProtocol(protocol.Protocol),
                               interface="127.0.0.1")
    try:
        code, out, err = yield ask(f"tcp:{silent.getHost().port}:interface=127.0.0.1",
                                   timeout=0.3)
    finally:
        yield silent.stopListening()
    assert code == 3
    assert "within 0.3 s: no answer" in err
    assert "Failure" not in err and "IPv4Address" not in err
