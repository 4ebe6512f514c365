"""The status service: /status, /healthz and /metrics follow the main loop.

The main loop (the real orchestrator) runs on a Clock and is fed as its
subscribers would feed it; the web site listens on a real port of
127.0.0.1 (``tcp:0``) and is asked over HTTP with Twisted's Agent.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import pytest_twisted
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet.task import Clock

from bus_helpers import NIGHT, clock_loop_config
from bus_helpers import control_event as control
from bus_helpers import good_sky_now as good_sky
from bus_helpers import tcs_event as tcs
from ocd.config import Config, ConfigError
from ocd.core.events import MalformedEvent, UrlKind
from ocd.services.orchestrator import Orchestrator
from ocd.services.status import StatusProvider, status_service
from conftest import stopped

def arm(loop: Orchestrator, allow: bool = True) -> None:
    """Through the main loop's own handler, as ``ocd allow_hetdex`` would."""
    loop.handle_event(control(UrlKind.ALLOW_HETDEX, "ocd.states.hetdex_allowed",
                              allow=allow, id="test", reason="status test"))


@pytest.fixture
def make_loop(tmp_path: Path):
    made = []

    def make(options: dict | None = None) -> tuple[Orchestrator, Clock, StatusProvider]:
        config = clock_loop_config(
            tmp_path, extra=[("status", "endpoint", "tcp:0:interface=127.0.0.1")],
            options=options)
        clock = Clock()
        clock.advance(1000)
        loop = Orchestrator(config, clock)  # no obsnum pool: a run verdict starts nothing
        provider = StatusProvider(loop)
        loop.startService()
        provider.start()
        made.append(loop)
        return loop, clock, provider

    yield make
    for loop in made:
        stopped(loop)


def test_status_follows_arming_and_the_verdict(make_loop):
    loop, clock, provider = make_loop()
    good_sky(loop, clock, NIGHT)
    before = provider.snapshot()
    assert before["hetdex_allowed"] == "not_allowed"
    assert before["verdict"] == "wait" and before["blockers"][0] == "not_allowed"
    assert before["details"]["not_allowed"].startswith("shots are not allowed")
    assert before["now"] == "2025-02-20T06:00:00.000+00:00"
    assert before["next"]["open_now"] is True  # the decision's pick
    arm(loop)
    clock.advance(0)
    after = provider.snapshot()
    assert after["hetdex_allowed"] == "allowed"
    assert after["verdict"] == "run" and after["blockers"] == []
    assert after["next"]["shotid"] == loop.last_decision.shot.shotid
    assert "STAND-IN" in after["stand_ins"] and after["details"]["stand_ins"]
    assert after["counters"]["received.allow_hetdex"] == 1


def test_healthz_turns_unhealthy_after_tcs_timeout(make_loop):
    loop, clock, provider = make_loop(options={("decision", "tcs_timeout"): "30"})
    assert provider.health().reason == "no TCS heartbeat yet"
    good_sky(loop, clock, NIGHT)
    assert provider.health().ok
    clock.advance(30)
    assert provider.health().ok
    clock.advance(1)
    state = provider.health()
    assert not state.ok and "no TCS heartbeat for 31 s" in state.reason
    assert provider.snapshot()["tcs"]["heartbeat_age"] == 31.0
    loop.handle_event(tcs("tcs.receiver.heartbeat", NIGHT + 31))
    assert provider.health().ok


def test_running_shot_from_another_runner_shows_with_its_elapsed_time(make_loop):
    loop, clock, provider = make_loop()
    good_sky(loop, clock, NIGHT)
    loop.handle_event(control(UrlKind.RUN_SHOT, "ocd.run_shot.run", shotid="BYHAND",
                              obs_number=12, exptimes=[360, 360, 360], exec_status=0))
    clock.advance(45)
    shot = provider.snapshot()["shot"]
    assert (shot["shotid"], shot["obs_number"], shot["elapsed"], shot["own"]) == (
        "BYHAND", 12, 45.0, False)
    assert provider.snapshot()["run_shot"] == "running"


class SlowUnreachableObsnum:
    """ObsnumPool's interface; ``reserve`` fails after ``delay`` s of the loop's Clock."""

    REASON = "MySQL server 127.0.0.1:1: Can't connect (MySQL error 2003)"

    def __init__(self, clock: Clock, delay: float):
        self.clock = clock
        self.delay = delay
        self.available = True
        self.last_error: str | None = None

    def reserve(self, shotid: str):
        from twisted.internet import defer

        from ocd.services.obsnum import ObsnumUnavailable

        d = defer.Deferred()

        def fail() -> None:
            self.available, self.last_error = False, self.REASON
            d.errback(ObsnumUnavailable(self.REASON))

        self.clock.callLater(self.delay, fail)
        return d

    def check(self):
        from twisted.internet import defer

        return defer.succeed(False)


def test_fake_obsnum_matches_the_real_interface():
    import inspect

    from ocd.services.obsnum import ObsnumPool

    for name in ("reserve", "check"):
        assert list(inspect.signature(getattr(ObsnumPool, name)).parameters) == list(
            inspect.signature(getattr(SlowUnreachableObsnum, name)).parameters)
    real = ObsnumPool.__init__.__code__.co_names
    assert "available" in real and "last_error" in real


def test_reservation_latency_reaches_the_histogram(make_loop):
    loop, clock, provider = make_loop()
    loop.obsnum = SlowUnreachableObsnum(clock, 0.25)
    good_sky(loop, clock, NIGHT)
    arm(loop)
    clock.advance(0)  # run verdict: reserve
    clock.advance(0.25)  # the database gives up
    body, content_type = provider.metrics()
    assert content_type.startswith("text/plain")
    samples = {(s.name, s.labels.get("outcome"), s.labels.get("le")): s.value
               for f in text_string_to_metric_families(body.decode()) for s in f.samples}
    assert samples[("ocd_obsnum_reservation_seconds_count", "failed", None)] == 1
    assert samples[("ocd_obsnum_reservation_seconds_sum", "failed", None)] == 0.25
    assert samples[("ocd_obsnum_reservation_seconds_bucket", "failed", "0.1")] == 0
    assert samples[("ocd_obsnum_reservation_seconds_bucket", "failed", "0.25")] == 1
    assert samples[("ocd_shots_started_total", None, None)] == 1
    assert provider.snapshot()["blockers"] == ["obsnum_unavailable"]


def test_bad_endpoint_is_a_configuration_error(make_loop):
    loop, _, _ = make_loop()
    with pytest.raises(ConfigError, match=r"\[status\] endpoint 'tcp:notaport'"):
        Config.load(None, [("status", "endpoint", "tcp:notaport")])
    config = Config.load(None, [("status", "endpoint", "")])
    assert status_service(config, loop) is None


# -- over HTTP ---------------------------------------------------------------

@pytest_twisted.inlineCallbacks
def get(port: int, path: str):
    from twisted.internet import reactor
    from twisted.web.client import Agent, readBody

    response = yield Agent(reactor).request(b"GET", f"http://127.0.0.1:{port}{path}".encode())
    body = yield readBody(response)
    return response.code, response.headers.getRawHeaders(b"content-type")[0].decode(), body


@pytest.fixture
def serve(make_loop):
    """Start the real status service of a loop on a free port of 127.0.0.1."""
    services = []

    def start(options: dict | None = None):
        from twisted.internet import reactor

        loop, clock, provider = make_loop(options)
        service = status_service(loop.config, loop, reactor, provider)
        service.startService()
        services.append(service)
        return loop, clock, provider, service

    yield start
    for service in services:
        pytest_twisted.blockon(service.stopService())


def port_of(service) -> int:
    return pytest_twisted.blockon(service._waitingForPort).getHost().port


@pytest.mark.integration
@pytest_twisted.inlineCallbacks
def test_http_status_and_healthz_follow_the_state(serve):
    loop, clock, provider, service = serve({("decision", "tcs_timeout"): "30"})
    port = (yield service._waitingForPort).getHost().port
    code, kind, body = yield get(port, "/healthz")
    assert (code, body) == (503, b"unhealthy: no TCS heartbeat yet\n")
    assert kind.startswith("text/plain")
    good_sky(loop, clock, NIGHT)
    code, _, body = yield get(port, "/healthz")
    assert code == 200 and body.startswith(b"ok: ")
    code, kind, body = yield get(port, "/status")
    doc = json.loads(body)
    assert (code, kind) == (200, "application/json")
    assert (doc["hetdex_allowed"], doc["verdict"]) == ("not_allowed", "wait")
    arm(loop)
    clock.advance(0)
    doc = json.loads((yield get(port, "/status"))[2])
    assert (doc["hetdex_allowed"], doc["verdict"], doc["blockers"]) == ("allowed", "run", [])
    clock.advance(31)
    code, _, body = yield get(port, "/healthz")
    assert code == 503 and b"no TCS heartbeat for 31 s" in body
    code, kind, body = yield get(port, "/")
    assert code == 200 and kind.startswith("text/html")
    assert b"http://" not in body and b"https://" not in body  # nothing from the internet


@pytest.mark.integration
@pytest_twisted.inlineCallbacks
def test_metrics_count_what_was_sent(serve):
    loop, clock, provider, service = serve()
    port = (yield service._waitingForPort).getHost().port
    for i in range(5):
        loop.handle_event(tcs("tcs.receiver.heartbeat", NIGHT + i))
    good_sky(loop, clock, NIGHT + 5)  # 4 more TCS events
    for _ in range(3):
        loop.on_malformed(MalformedEvent("bad_json", "not JSON"), "tcp://tcs")
    loop.on_malformed(MalformedEvent("one_frame", "one frame"), "tcp://tcs")
    # an ocd.* topic on a TCS URL is refused
    loop.handle_event(tcs("ocd.states.hetdex_allowed", NIGHT + 5, allow=True, id="x"))
    arm(loop)
    clock.advance(0)  # the decision after the burst: no blocker any more
    clock.advance(10)
    provider._on_reserved(0.02, True)
    provider._on_reserved(3.0, False)
    code, kind, body = yield get(port, "/metrics")
    assert code == 200 and kind.startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(body.decode())}
    samples = [s for f in families.values() for s in f.samples]

    def value(name: str, **labels) -> float:
        return next(s.value for s in samples
                    if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))

    assert value("ocd_events_received_total", kind="tcs") == 10
    assert value("ocd_events_received_total", kind="allow_hetdex") == 1
    assert value("ocd_events_malformed_total", reason="bad_json") == 3
    assert value("ocd_events_malformed_total", reason="one_frame") == 1
    assert value("ocd_events_refused_total", kind="tcs") == 1
    assert value("ocd_decisions_total") == loop.counters.get("decisions") > 0
    assert value("ocd_shots_started_total") == 0
    assert value("ocd_hetdex_allowed") == 1
    assert value("ocd_child_processes") == 0
    assert value("ocd_obsnum_reservation_seconds_count", outcome="ok") == 1
    assert value("ocd_obsnum_reservation_seconds_bucket", outcome="ok", le="0.025") == 1
    assert value("ocd_obsnum_reservation_seconds_bucket", outcome="failed", le="2.5") == 0
    assert value("ocd_obsnum_reservation_seconds_sum", outcome="failed") == 3.0
    # not_allowed held from the first decision until arming, at the same reactor
    # time; then no blocker for 10 s
    assert value("ocd_blocked_seconds_total", blocker="not_allowed") == 0
    assert families["ocd_blocked_seconds"].type == "counter"
    assert families["ocd_obsnum_reservation_seconds"].type == "histogram"


@pytest.mark.integration
@pytest_twisted.inlineCallbacks
def test_blocked_seconds_follow_the_reactor_clock(serve):
    loop, clock, provider, service = serve()
    port = (yield service._waitingForPort).getHost().port
    good_sky(loop, clock, NIGHT)
    clock.advance(20)
    arm(loop)
    clock.advance(0)
    clock.advance(7)
    body = (yield get(port, "/metrics"))[2].decode()
    samples = {(s.name, s.labels.get("blocker")): s.value
               for f in text_string_to_metric_families(body) for s in f.samples}
    assert samples[("ocd_blocked_seconds_total", "not_allowed")] == 20.0


# -- ocd status ---------------------------------------------------------------

@pytest_twisted.inlineCallbacks
def ocd_status(endpoint: str, child_env, *extra: str):
    from twisted.internet import utils

    out, err, code = yield utils.getProcessOutputAndValue(
        sys.executable, ["-m", "ocd", "status", "-e", endpoint, "-t", "5", *extra],
        env=child_env)
    return code, out.decode(), err.decode()


@pytest.mark.integration
@pytest_twisted.inlineCallbacks
def test_ocd_status_exit_codes(serve, child_env):
    from conftest import free_port

    loop, clock, provider, service = serve()
    port = (yield service._waitingForPort).getHost().port
    endpoint = f"tcp:{port}:interface=127.0.0.1"
    code, out, err = yield ocd_status(endpoint, child_env)
    assert code == 1, out + err
    assert "NOT HEALTHY (no TCS heartbeat yet)" in out
    good_sky(loop, clock, NIGHT)
    code, out, err = yield ocd_status(endpoint, child_env)
    assert code == 0, out + err
    assert "verdict     WAIT" in out
    assert "HETDEX shots are not allowed: shots are not allowed" in out
    arm(loop)
    clock.advance(0)
    code, out, err = yield ocd_status(endpoint, child_env, "--json")
    assert code == 0 and json.loads(out)["verdict"] == "run"
    code, out, err = yield ocd_status(f"tcp:{free_port()}:interface=127.0.0.1", child_env)
    assert code == 3 and "no OCD answers" in err


# -- inside twistd -------------------------------------------------------------

@pytest.mark.integration
def test_twistd_ocd_serves_its_status(tmp_path, free_url, child_env):
    """``twistd ocd`` listens in privilegedStartService (after it daemonised)."""
    import subprocess
    import time
    import urllib.error
    import urllib.request

    from bus_helpers import make_config, write_config
    from conftest import REPO, free_port

    port = free_port()
    config = make_config(free_url, status__endpoint=f"tcp:{port}:interface=127.0.0.1")
    cfg = write_config(config, tmp_path / "site.cfg")
    child = subprocess.Popen(
        [sys.executable, "-c", "from twisted.scripts.twistd import run; run()", "-n",
         "--pidfile=", "ocd", "--config", cfg],
        env=child_env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        answer = None
        while answer is None and time.monotonic() < deadline and child.poll() is None:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)
            except urllib.error.HTTPError as exc:  # 503: no TCS here
                answer = (exc.code, exc.read().decode())
            except OSError:
                time.sleep(0.2)  # a real process starting up: no Clock to advance
        assert answer == (503, "unhealthy: no TCS heartbeat yet\n")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/status", timeout=5) as response:
            assert json.loads(response.read())["hetdex_allowed"] == "not_allowed"
    finally:
        child.terminate()
        out = child.communicate(timeout=30)[0]
    # twistd ends by re-raising the SIGTERM it handled
    assert child.returncode in (0, -15), out
    assert "Traceback" not in out
    assert f"status page on http://127.0.0.1:{port}/" in out


@pytest.mark.parametrize("path", [b"status", b"healthz", b"metrics"])
def test_a_source_that_raises_answers_500_naming_the_page(path):
    """Each page logs its own failure and says which page could not be built."""
    from twisted.web.test.requesthelper import DummyRequest

    from ocd.protocols.status_web import status_resource

    class Broken:
        def snapshot(self):
            raise RuntimeError("broken")

        health = metrics = snapshot

    request = DummyRequest([path])
    page = status_resource(Broken()).getChildWithDefault(path, request)
    body = page.render_GET(request)
    assert request.responseCode == 500
    assert body == f"OCD could not build /{path.decode()}; see its log\n".encode()
    assert request.responseHeaders.getRawHeaders(b"cache-control") == [b"no-store"]


@pytest.mark.integration
def test_an_ocd_without_a_status_page_never_imports_the_web_server(tmp_path, free_url,
                                                                   child_env):
    """``[status] endpoint`` empty: the tree has no status service, and neither
    twisted.web nor prometheus_client is imported (0.1 s of every start)."""
    import subprocess

    from bus_helpers import make_config, write_whole_config
    from conftest import REPO

    cfg = write_whole_config(make_config(free_url, status__endpoint=""), tmp_path / "site.cfg")
    code = (
        "import sys\n"
        "from twisted.internet import reactor\n"
        "from ocd.app import makeService\n"
        "from ocd.config import Config\n"
        f"tree = makeService(Config.load({cfg!r}), reactor)\n"
        "print([s.name for s in tree], sorted({'twisted.web', 'prometheus_client'} & set(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], env=child_env, cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    names, imported = done.stdout.strip().rsplit("] [", 1)
    assert "'status'" not in names and "'main_loop'" in names, done.stdout
    assert imported == "]", done.stdout


def test_a_simulated_night_never_serves_on_the_production_status_port(tmp_path, monkeypatch):
    """A simulated night (``ocd simulate_night``, the tests' replayed nights) served
    its page on the default tcp:8642: next to a real OCD it failed to listen, or
    took the port first. It listens on a port of the system's choosing."""
    from ocd.sim.simulate import prepare

    monkeypatch.setenv("OCD_STANDIN_SPEEDUP", "1")
    monkeypatch.setenv("OCD_STANDIN_LOG", "")
    plan = prepare(tmp_path / "night", shots=2, hours=0.1, bad_weather_minutes=0)
    assert plan.config.get_str("status", "endpoint") == "tcp:0:interface=127.0.0.1"
