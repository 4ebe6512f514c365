"""The status service: ``/status``, ``/healthz``, ``/metrics`` and the page.

:class:`StatusProvider` reads the main loop (never changes it): it gathers a
frozen :class:`ocd.core.status.StatusView` for the pure snapshot, folds the
published decisions into the seconds blocked per blocker, and owns the
Prometheus registry of this OCD (its own :class:`CollectorRegistry`, not
the process-wide one, so two OCDs in one test process do not collide).
Counters are read from the main loop's :class:`ocd.counters.Counters` at
scrape time by a custom collector: the main loop keeps plain numbers and
knows nothing of Prometheus; only the reservation latency is a live
``Histogram``, fed by the orchestrator's ``reservation_observers``.

:func:`status_service` builds the listening service from ``[status]
endpoint`` (a Twisted server endpoint string; empty: no service). A port
that cannot be opened is logged and OCD goes on without its status page:
the survey matters more than the page.
"""

from __future__ import annotations

from typing import Any, Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import Service
from twisted.internet.defer import CancelledError
from twisted.logger import Logger
from twisted.web.server import Site

from ocd import __version__
from ocd.config import Config
from ocd.config_checks import check_endpoint
from ocd.core.topics import ArmingState, MachineName, Topic
from ocd.core.status import (
    BlockedTime,
    Health,
    NextShot,
    RunningShot,
    StatusView,
    health,
    next_shot,
    snapshot,
)

#: Buckets of the reservation latency, s: a local MySQL answers in ms, a
#: remote one in tens of ms; [database] timeout caps it (5 s by default).
RESERVATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
#: The next-shot search walks the shot list: reuse its answer this long (reactor s).
NEXT_CACHE = 30.0

log = Logger(namespace="ocd.status")


class StatusProvider:
    """Everything the status resources show, read from one main loop."""

    def __init__(self, main_loop: Any):
        self.loop = main_loop
        #: Reactor time at which the service started (set by :meth:`start`).
        self.started: float | None = None
        self.blocked = BlockedTime()
        self._next: tuple[Any, float, NextShot | None] | None = None
        self.registry = CollectorRegistry(auto_describe=True)
        self.reservation = Histogram(
            "ocd_obsnum_reservation_seconds",
            "Time to reserve an observation number, by outcome",
            ["outcome"], buckets=RESERVATION_BUCKETS, registry=self.registry)
        self.registry.register(_LoopCollector(self))
        main_loop.listeners.append(self._on_published)
        observers = getattr(main_loop, "reservation_observers", None)
        if observers is not None:
            observers.append(self._on_reserved)

    def start(self) -> None:
        """The service starts: uptime counts from now (not from makeService)."""
        self.started = self.monotonic()

    # -- feeding ------------------------------------------------------------
    def _on_published(self, event: Any) -> None:
        if event.topic == Topic.DECISION_MADE:
            self.blocked = self.blocked.after(event.payload.get("blockers") or (),
                                              event.wire_time)

    def _on_reserved(self, seconds: float, ok: bool) -> None:
        self.reservation.labels(outcome="ok" if ok else "failed").observe(max(seconds, 0.0))

    # -- reading --------------------------------------------------------------
    def monotonic(self) -> float:
        return float(self.loop.reactor.seconds())

    def view(self) -> StatusView:
        """A frozen copy of what the main loop knows now."""
        loop = self.loop
        monotonic = self.monotonic()
        telescope = getattr(loop, "telescope", None)
        decision = getattr(loop, "last_decision", None)
        settings = getattr(loop, "settings", None)
        tcs_timeout = (settings.tcs_timeout if settings is not None
                       else loop.config.get_float("decision", "tcs_timeout"))
        kind, urls = self._tcs_urls()
        return StatusView(
            version=__version__,
            started=monotonic if self.started is None else self.started,
            loop_running=bool(loop.running),
            machines={name: m.state for name, m in loop.machines.items()},
            tcs_timeout=tcs_timeout,
            tcs_time=getattr(telescope, "tcs_time", None),
            last_heartbeat=getattr(telescope, "last_heartbeat", None),
            tcs_urls=tuple(urls),
            tcs_kind=kind,
            verdict=None if decision is None else decision.verdict,
            blockers=() if decision is None else tuple(decision.blockers),
            details={} if decision is None else dict(decision.details),
            failed_shot=bool(loop.failed_shot),
            shots=self._running_shots(),
            next=self._next_shot(decision, monotonic),
            counters=loop.counters.snapshot(),
            shadow=bool(getattr(loop, "shadow", False)),
        )

    def _tcs_urls(self) -> tuple[str, list[str]]:
        from ocd.services.main_loop import telescope_source

        try:
            kind, urls = telescope_source(self.loop.config)
            return kind.value, urls
        except Exception:
            return "tcs", []

    def _running_shots(self) -> tuple[RunningShot, ...]:
        tracker = getattr(self.loop, "shots", None)
        if tracker is None:
            return ()
        runner = getattr(self.loop, "runner", None)
        step = getattr(runner, "step", None)
        return tuple(
            RunningShot(shotid=str(s.key[0]), obs_number=s.key[1], started=s.started,
                        expected=round(s.deadline - s.started, 3), own=s.own,
                        step=step if s.own else None)
            for s in tracker.running.values())

    def _next_shot(self, decision: Any, monotonic: float) -> NextShot | None:
        scheduler = getattr(self.loop, "scheduler", None)
        settings = getattr(self.loop, "settings", None)
        if scheduler is None or settings is None:
            return None
        pick = None if decision is None else decision.shot
        if pick is not None and decision.track is not None and decision.track_end is not None:
            return NextShot(pick.shotid, int(decision.track), self.loop.now(),
                            float(decision.track_end))
        cached = self._next
        if cached is not None and cached[0] is scheduler and monotonic - cached[1] < NEXT_CACHE:
            return cached[2]
        try:
            found = next_shot(scheduler, None, None, None, self.loop.now(), settings.duration)
        except Exception:
            log.failure("finding the next shot failed")
            found = None
        self._next = (scheduler, monotonic, found)
        return found

    def snapshot(self) -> dict[str, Any]:
        return snapshot(self.view(), self.loop.now(), self.monotonic())

    def health(self) -> Health:
        return health(self.view(), self.monotonic())

    def metrics(self) -> tuple[bytes, str]:
        """The Prometheus text and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class _LoopCollector:
    """Turns the main loop's counters into Prometheus families at each scrape."""

    def __init__(self, provider: StatusProvider):
        self.provider = provider

    def describe(self) -> list[Any]:
        return []  # families depend on what was counted: no fixed description

    def collect(self) -> Iterator[Any]:
        provider = self.provider
        loop = provider.loop
        counters = loop.counters.snapshot()
        monotonic = provider.monotonic()

        def by_prefix(name: str, doc: str, prefix: str, label: str) -> CounterMetricFamily:
            family = CounterMetricFamily(name, doc, labels=[label])
            for key, value in counters.items():
                if key.startswith(prefix):
                    family.add_metric([key[len(prefix):]], value)
            return family

        yield by_prefix("ocd_events_received", "Events received, by kind of URL",
                        "received.", "kind")
        yield by_prefix("ocd_events_malformed", "Malformed messages dropped, by reason",
                        "malformed.", "reason")
        yield by_prefix("ocd_events_refused", "Well-formed events refused (wrong URL or "
                        "fields), by kind of URL", "dropped.", "kind")
        updates = CounterMetricFamily("ocd_config_updates", "Live configuration updates, "
                                      "by result", labels=["result"])
        for result in ("applied", "refused"):
            updates.add_metric([result], counters.get(f"config.{result}", 0))
        yield updates
        yield CounterMetricFamily("ocd_decisions", "Decisions taken",
                                  value=counters.get("decisions", 0))
        for what, doc in (("started", "Shots OCD started"),
                          ("succeeded", "Shots that succeeded"),
                          ("failed", "Shots that failed or were lost")):
            yield CounterMetricFamily(f"ocd_shots_{what}", doc,
                                      value=counters.get(f"shots.{what}", 0))
        blocked = CounterMetricFamily("ocd_blocked_seconds", "Seconds during which each "
                                      "blocker held (reactor clock)", labels=["blocker"])
        for name, seconds in sorted(provider.blocked.totals_at(monotonic).items()):
            blocked.add_metric([name], seconds)
        yield blocked
        processes = getattr(loop, "processes", None)
        running = len(processes.running) if processes is not None else 0
        yield GaugeMetricFamily("ocd_child_processes", "Child processes running now",
                                value=running)
        allowed = 1 if loop.machines[MachineName.HETDEX_ALLOWED].state == ArmingState.ALLOWED else 0
        yield GaugeMetricFamily("ocd_hetdex_allowed", "1 when HETDEX shots are allowed",
                                value=allowed)
        heartbeat = getattr(getattr(loop, "telescope", None), "last_heartbeat", None)
        if heartbeat is not None:
            yield GaugeMetricFamily("ocd_tcs_heartbeat_age_seconds",
                                    "Seconds since the last TCS heartbeat",
                                    value=monotonic - heartbeat)
        started = monotonic if provider.started is None else provider.started
        yield GaugeMetricFamily("ocd_uptime_seconds", "Seconds since the status service "
                                "started", value=monotonic - started)


class _LoggedEndpointService(StreamServerEndpointService):
    """Opens ``[status] endpoint`` at start; says where it listens, or why it cannot.

    The endpoint is made from its description when the service starts
    (after twistd forks), on the reactor it was given.
    """

    def __init__(self, description: str, factory: Any, provider: StatusProvider,
                 reactor: Any):
        super().__init__(None, factory)
        self.port: Any = None
        self.description = description
        self.provider = provider
        self.reactor = reactor

    def _make_endpoint(self) -> None:
        from twisted.internet.endpoints import serverFromString

        self.endpoint = serverFromString(self.reactor, self.description)

    def privilegedStartService(self) -> None:
        """twistd: listen before dropping privileges (after it daemonised)."""
        self._make_endpoint()
        Service.privilegedStartService(self)
        self._listen()

    def startService(self) -> None:
        if self.endpoint is None:
            self._make_endpoint()
        self.provider.start()
        Service.startService(self)
        if self._waitingForPort is None:
            self._listen()

    def stopService(self) -> Any:
        """Close the port; a later start listens again."""
        if self._waitingForPort is None:
            return Service.stopService(self)

        def forget(result: Any) -> Any:
            self._waitingForPort = None
            self.port = None
            return result

        return super().stopService().addBoth(forget)

    def _listen(self) -> None:
        # Not StreamServerEndpointService's: it logs a failed listen as a
        # bare traceback; this says what failed and goes on.
        self._waitingForPort = self.endpoint.listen(self.factory)

        def listening(port: Any) -> Any:
            self.port = port
            log.info("status page on {where} ([status] endpoint {endpoint})",
                     where=_where(port), endpoint=self.description)
            return port

        def failed(failure: Any) -> None:
            if failure.check(CancelledError):
                return None
            log.error("the status service cannot listen on [status] endpoint "
                      "{endpoint}: {error}; OCD goes on without it",
                      endpoint=self.description, error=failure.getErrorMessage())
            return None

        self._waitingForPort.addCallbacks(listening, failed)


class _QuietSite(Site):
    """A Site whose access log goes to debug: the page polls every 2 s."""

    def logPrefix(self) -> str:
        return "ocd status"

    def log(self, request: Any) -> None:
        log.debug("{method} {uri} {code}", method=request.method.decode("ascii", "replace"),
                  uri=request.uri.decode("ascii", "replace"), code=request.code)


def _where(port: Any) -> str:
    try:
        address = port.getHost()
        return f"http://{address.host}:{address.port}/"
    except AttributeError:
        return str(port)


def status_service(config: Config, main_loop: Any, reactor: Any = None,
                   provider: StatusProvider | None = None) -> StreamServerEndpointService | None:
    """The listening service of ``[status] endpoint``; None when it is empty.

    Builds objects only: the port opens in ``startService`` (after twistd
    forks). ``reactor`` is the one that listens (the main loop's when None);
    the provider reads the main loop's own clock.
    """
    from ocd.protocols.status_web import status_resource

    description = config.get_str("status", "endpoint").strip()
    if not description:
        return None
    check_endpoint(description)
    if reactor is None:
        reactor = main_loop.reactor
    provider = provider if provider is not None else StatusProvider(main_loop)
    site = _QuietSite(status_resource(provider))
    site.noisy = False
    service = _LoggedEndpointService(description, site, provider, reactor)
    service.setName("status")
    return service
