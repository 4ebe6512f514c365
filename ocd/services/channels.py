"""The services that own the bus's sockets, around the main loop.

:class:`OcdService` is the root of the tree ``ocd.app.makeService`` builds:
it opens the bus before its children start and closes it after they stopped
(one by one, so that a running shot's FINISH still goes out).
:class:`ControlChannels` binds the main loop's and the run-shot PUBs and
subscribes to the control URLs (arming, live configuration, shots run by
hand), CurveZMQ-protected when ``[security]`` says so;
:class:`TelescopeSubscriber` is the SUB on the TCS (``event_urls``) or on a
replay (``ocd_db_replay``). Every frame they receive becomes an event that
goes to :meth:`ocd.services.main_loop.MainLoop.handle_event`; they hold no
logic of their own.
"""

from __future__ import annotations

import functools
from typing import Any

from twisted.application.service import MultiService, Service
from twisted.internet.defer import inlineCallbacks, maybeDeferred
from twisted.logger import Logger

from ocd.config import Config, ConfigError
from ocd.core.events import UrlKind
from ocd.core.topics import RUN_SHOT_PREFIX, Topic
from ocd.protocols.curve import ZapHandler, server_settings
from ocd.protocols.zmq import BindError, Bus
from ocd.services.main_loop import MainLoop, telescope_source, telescope_topics
from ocd.services.shot_store import StateDbError

#: ZAP domains of the CurveZMQ sockets: the kinds of URL OCD takes orders on.
CURVE_DOMAINS = tuple(kind.value for kind in (UrlKind.ALLOW_HETDEX, UrlKind.CONFIG,
                                              UrlKind.RUN_SHOT, UrlKind.REPLAY))

#: Topics each control kind of URL carries (events.md, section 1).
CONTROL_TOPICS: dict[UrlKind, tuple[str, ...]] = {
    UrlKind.ALLOW_HETDEX: (Topic.HETDEX_ALLOWED, Topic.HEARTBEAT_ENQUIRY),
    UrlKind.CONFIG: (Topic.CONFIG_UPDATE, Topic.HEARTBEAT_ENQUIRY),
    UrlKind.RUN_SHOT: (RUN_SHOT_PREFIX, Topic.HEARTBEAT_ENQUIRY),
}

class ControlChannels(Service):
    """Binds the main-loop and run-shot PUBs; subscribes to the control URLs."""

    def __init__(self, config: Config, bus: Bus, main_loop: MainLoop):
        self.setName("control")
        self.bus = bus
        self.main_loop = main_loop
        self.main_loop_url = config.get_url_at("ocd_main_loop", "run", "n_ocd_main_loop")
        self.run_shot_url = config.get_url_at("ocd_run_shot", "run", "n_ocd_run_shot")
        self.control_urls = {
            UrlKind.ALLOW_HETDEX: config.get_urls("urls", "ocd_allow_hetdex"),
            UrlKind.CONFIG: config.get_urls("urls", "ocd_config"),
            UrlKind.RUN_SHOT: config.get_urls("urls", "ocd_run_shot"),
        }
        #: CurveZMQ on the control URLs (events.md 3.7); None when off.
        self.curve = server_settings(config)
        self._sockets: list[Any] = []

    def startService(self) -> None:
        try:
            if self.curve is not None:
                # the ZAP handler must be bound before a CurveZMQ socket connects
                self._sockets.append(ZapHandler(
                    self.bus, self.curve.allowed, CURVE_DOMAINS, self.main_loop.on_curve_refused))
            main = self.bus.publisher([self.main_loop_url], channel="main_loop")
            self._sockets.append(main)
            shots = self.bus.publisher([self.run_shot_url], channel="run_shot")
            self._sockets.append(shots)
            for kind, urls in self.control_urls.items():
                if urls:
                    self._sockets.append(self.bus.subscriber(
                        urls, kind, CONTROL_TOPICS[kind], self.main_loop.handle_event,
                        self.main_loop.on_malformed, security=self.curve))
        except Exception:
            self._close()
            raise
        self.main_loop.publishers.update(main_loop=main, run_shot=shots)
        Service.startService(self)

    def stopService(self) -> None:
        Service.stopService(self)
        self.main_loop.publishers.clear()
        self._close()

    def _close(self) -> None:
        for item in reversed(self._sockets):
            item.close()
        self._sockets = []


class TelescopeSubscriber(Service):
    """The SUB socket on ``event_urls`` (TCS) or ``ocd_db_replay``."""

    log = Logger(namespace="ocd.subscriber")

    def __init__(self, config: Config, bus: Bus, main_loop: MainLoop):
        self.setName("subscriber")
        self.bus = bus
        self.main_loop = main_loop
        self.kind, self.urls = telescope_source(config)
        self.topics = telescope_topics(config, self.kind)
        # a replay is ours on both ends: CurveZMQ like the control URLs (events.md 3.7)
        self.curve = server_settings(config) if self.kind is UrlKind.REPLAY else None
        self.subscriber: Any = None

    def startService(self) -> None:
        if not self.urls:
            self.log.warn("no telescope URL given ([urls] event_urls and ocd_db_replay are "
                          "empty): OCD hears no telescope")
        else:
            self.subscriber = self.bus.subscriber(
                self.urls, self.kind, self.topics, self.main_loop.handle_event,
                functools.partial(self.main_loop.on_malformed, url_kind=self.kind),
                security=self.curve)
        Service.startService(self)

    def stopService(self) -> None:
        Service.stopService(self)
        if self.subscriber is not None:
            self.subscriber.close()
            self.subscriber = None


class StartFailed(SystemExit):
    """OCD cannot start (a URL cannot be bound, a bad option): exit status 2.

    A ``SystemExit`` so that ``twistd`` ends with the status and no
    traceback; the reason has been logged as one line.
    """

    def __init__(self, message: str):
        super().__init__(2)
        self.message = message


class OcdService(MultiService):
    """The root: opens the bus before its children start, closes it after."""

    log = Logger(namespace="ocd.service")

    def __init__(self, bus: Bus, main_loop: MainLoop, daemon: bool = False):
        super().__init__()
        self.setName("ocd")
        self.bus = bus
        self.main_loop = main_loop
        #: ``ocd run`` and ``twistd ocd``: say the banner, handle the signals.
        self.daemon = daemon
        #: twistd only: the log observer that honours [general] log_level and
        #: json_log, given to the application (see :meth:`setServiceParent`).
        self.log_observer: Any = None

    def setServiceParent(self, parent: Any) -> Any:
        """Under twistd the parent is the application: hand it our log observer.

        ``twistd`` asks the application for an ``ILogObserver`` before it
        starts logging (Twisted's documented hook), so ``[general] log_level``
        and ``json_log`` apply to ``twistd ocd`` as to ``ocd run``.
        """
        if self.log_observer is not None and hasattr(parent, "setComponent"):
            from twisted.logger import ILogObserver

            parent.setComponent(ILogObserver, self.log_observer)
        return super().setServiceParent(parent)

    def startService(self) -> None:
        if self.daemon:
            from ocd.services.banner import log_banner
            from ocd.services.signals import StopOnSignals

            log_banner(self.main_loop.config)
            reactor = self.main_loop.reactor
            stopper = StopOnSignals(reactor, self.main_loop)
            stopper.install()  # a signal during start-up is not a silent death either
            reactor.callWhenRunning(stopper.install)  # again, after Twisted's own
        self.bus.open()
        Service.startService(self)
        started = []
        try:
            for child in self:
                child.startService()
                started.append(child)
        except Exception as exc:
            for child in reversed(started):
                child.stopService()
            self.running = 0
            self.bus.close()
            if self.daemon and isinstance(exc, (BindError, ConfigError, StateDbError)):
                # One line, no traceback, exit 2 (events.md 3.6), also under twistd.
                self.log.critical("OCD cannot start: {error}", error=str(exc))
                raise StartFailed(str(exc)) from None
            raise

    @inlineCallbacks
    def stopService(self) -> Any:
        """Stop the children one by one, last started first, then the bus.

        Sequential on purpose (MultiService stops all children at once): the
        main loop must finish a running shot and publish its FINISH before
        the control channels close the sockets it goes out on.
        """
        Service.stopService(self)
        try:
            for child in reversed(list(self)):
                try:
                    yield maybeDeferred(child.stopService)
                except Exception:
                    self.log.failure("stopping {name} failed", name=child.name)
        finally:
            self.bus.close()
