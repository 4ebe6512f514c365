"""The main loop and the services around it in the tree of ``ocd run``.

The tree itself is built in one place, :func:`ocd.app.makeService`, which
only builds objects: twistd forks between ``makeService`` and
``startService``, and a ZeroMQ context does not survive a fork. So the bus
and its sockets are opened in ``startService`` and closed in ``stopService``.

- :class:`MainLoop` handles every event and is the one place outgoing events
  go through (the orchestrator extends it);
- :class:`ControlChannels`: main-loop PUB, run-shot PUB, SUBs for the
  allow_hetdex, config and run_shot URLs;
- :class:`TelescopeSubscriber`: ``event_urls`` (TCS) or ``ocd_db_replay``;
- :class:`OcdService`: the root, opens/closes the Bus around its children.
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.application.service import MultiService, Service
from twisted.internet.defer import inlineCallbacks, maybeDeferred
from twisted.logger import Logger

from ocd.config import Config, ConfigError
from ocd.protocols.control import HEARTBEAT_ENQUIRY, HEARTBEAT_REPLY
from ocd.core.clock import OcdClock
from ocd.core.counters import Counters
from ocd.core.events import TCS_TOPICS, Event, MalformedEvent, UrlKind, make_event
from ocd.core.machines import HETDEX_ALLOWED, RUN_SHOT, Change, StateMachine, arming_machine, shot_machine
from ocd.protocols.zmq import Bus, EventPublisher

HETDEX_ALLOWED_REQUEST = "ocd.states.hetdex_allowed"
HETDEX_ALLOWED_ANSWER = "ocd.states.hetdex_allowed_changed"
CONFIG_UPDATE = "ocd.config.update"
CONFIG_UPDATED = "ocd.config.updated"
STATES_CHANGE = "ocd.states.change"
STATES_STATE = "ocd.states.state"
RUN_SHOT_PREFIX = "ocd.run_shot."
RUN_SHOT_RUN = "ocd.run_shot.run"
TCS_HEARTBEAT = "tcs.receiver.heartbeat"

#: At most one warning per kind of malformed event in this many seconds.
WARN_EVERY = 60.0

#: Topics each control kind of URL carries (events.md, section 1).
CONTROL_TOPICS: dict[UrlKind, tuple[str, ...]] = {
    UrlKind.ALLOW_HETDEX: (HETDEX_ALLOWED_REQUEST, HEARTBEAT_ENQUIRY),
    UrlKind.CONFIG: (CONFIG_UPDATE, HEARTBEAT_ENQUIRY),
    UrlKind.RUN_SHOT: (RUN_SHOT_PREFIX, HEARTBEAT_ENQUIRY),
}

Listener = Callable[[Event], None]

_RECEIVED = {kind: f"received.{kind.value}" for kind in UrlKind}
_TELESCOPE = frozenset(kind for kind in UrlKind if kind.is_telescope)


def telescope_source(config: Config) -> tuple[UrlKind, list[str]]:
    """Which telescope URLs ``ocd run`` connects to; both given is an error."""
    tcs = config.get_urls("urls", "event_urls")
    replay = config.get_urls("urls", "ocd_db_replay")
    if tcs and replay:
        raise ConfigError(
            f"both [urls] event_urls ({' '.join(tcs)}) and [urls] ocd_db_replay "
            f"({' '.join(replay)}) are given: OCD listens either to the telescope or to "
            "a replay: leave one of them empty in the configuration"
        )
    if replay:
        return UrlKind.REPLAY, replay
    return UrlKind.TCS, tcs


def telescope_topics(config: Config, kind: UrlKind) -> list[str]:
    topics = list(TCS_TOPICS) if config.get_bool("topics", "auto_subscribe") else []
    topics += [t for t in config.get_list("topics", "extra_topics") if t not in topics]
    if kind is UrlKind.REPLAY:
        topics.append(HEARTBEAT_ENQUIRY)  # db_replay shakes hands on its own URL
    return topics


class MainLoop(Service):
    """Handles every event; the one place outgoing events go through."""

    log = Logger(namespace="ocd.main_loop")

    def __init__(self, config: Config, reactor: Any = None, counters: Counters | None = None):
        self.setName("main_loop")
        self.config = config
        self._reactor = reactor
        self.counters = counters if counters is not None else Counters()
        self.arming: StateMachine = arming_machine()
        self.shot: StateMachine = shot_machine()
        self.machines: dict[str, StateMachine] = {HETDEX_ALLOWED: self.arming, RUN_SHOT: self.shot}
        #: Set by the orchestrator when a shot fails or is lost;
        #: ``ocd allow_hetdex start`` clears it (shots.md section 2).
        self.failed_shot = False
        self.listeners: list[Listener] = []
        self.publishers: dict[str, EventPublisher] = {}
        self.clock = OcdClock.from_config(config)
        #: Log every published event (debug): only when a log is at debug level.
        self.log_publish = "debug" in (config.get_str("general", "log_level"),
                                       config.get_str("general", "json_log_level"))
        self._warned: dict[str, tuple[float, int]] = {}
        self._topic_counter: dict[str, str] = {}

    @property
    def reactor(self) -> Any:
        if self._reactor is None:
            from twisted.internet import reactor

            self._reactor = reactor
        return self._reactor

    # -- clocks ------------------------------------------------------------
    def now(self) -> float:
        """OCD's clock: mock_time, else the TCS time, else the machine's clock."""
        return self.clock.now(self.reactor.seconds())

    def _advance_clock(self, event: Event) -> None:
        jump = self.clock.observe(event.data_time)
        if jump is not None:
            self.log.info("{what} ({topic})", what=jump.describe(), topic=event.topic)
            self.on_time_jump_back(jump.old, jump.new)

    # -- publishing --------------------------------------------------------
    def publish(self, topic: str, fields: dict[str, Any]) -> Event:
        """Stamp, send, log and hand to listeners every event OCD writes."""
        event = make_event(topic, fields, self.now(), self.reactor.seconds())
        channel = "run_shot" if topic.startswith(RUN_SHOT_PREFIX) else "main_loop"
        publisher = self.publishers.get(channel)
        if publisher is None:
            self.counters.increment("publish.no_socket")
        elif not publisher.publish(event):
            # the PUB is full (XPUB_NODROP): the event is lost; the bus warns
            self.counters.increment(f"dropped.publish.{channel}")
        self.counters.increment(f"published.{topic}")
        # Raw events are for debugging: the Narrator tells a person what changed.
        # Not even emitted unless a log wants debug: twistd's log file takes
        # every level, and heartbeat-rate events would fill it.
        if self.log_publish:
            self.log.debug(
                "publish {topic} {fields}", topic=topic, fields=dict(fields),
                ocd_event="publish", data_time=event.data_time, wire_time=event.wire_time,
            )
        for listener in list(self.listeners):
            try:
                listener(event)
            except Exception:
                self.log.failure("listener {listener!r} failed", listener=listener)
        return event

    def publish_change(self, change: Change) -> Event:
        return self.publish(STATES_CHANGE, change.fields())

    def publish_states(self) -> None:
        for name, machine in self.machines.items():
            self.publish(STATES_STATE, {"machine_name": name, "state": machine.state})

    # -- receiving ---------------------------------------------------------
    def handle_event(self, event: Event) -> None:
        """Route one event by the kind of URL it came on (events.md section 1)."""
        kind = event.url_kind
        topic = event.topic
        counters = self.counters
        counters.increment(_RECEIVED.get(kind, "received.unknown"))
        if kind in _TELESCOPE:
            if topic == HEARTBEAT_ENQUIRY and kind is UrlKind.REPLAY:
                self._answer_heartbeat(event)
            elif topic.startswith("ocd."):
                self._drop(event, "ocd topic on a telescope URL")
            else:
                self._advance_clock(event)
                name = self._topic_counter.get(topic)
                if name is None:
                    name = self._topic_counter[topic] = f"topic.{topic}"
                counters.increment(name)
                self.on_telescope_event(event)
                if topic == TCS_HEARTBEAT:
                    self.publish_states()
        elif topic == HEARTBEAT_ENQUIRY:
            self._answer_heartbeat(event)
        elif kind is UrlKind.ALLOW_HETDEX and topic == HETDEX_ALLOWED_REQUEST:
            self._handle_allow(event)
        elif kind is UrlKind.CONFIG and topic == CONFIG_UPDATE:
            self._handle_config(event)
        elif kind is UrlKind.RUN_SHOT and topic.startswith(RUN_SHOT_PREFIX):
            self.counters.increment(f"topic.{topic}")
            self.on_run_shot_event(event)
        else:
            self._drop(event, f"not carried by {kind.value if kind else 'unknown'} URLs")

    def on_malformed(self, exc: MalformedEvent, url: str) -> None:
        """Count by kind; warn once per kind per :data:`WARN_EVERY` seconds."""
        self.counters.increment(f"malformed.{exc.kind}")
        self._warn(f"malformed.{exc.kind}", "malformed event ({kind}) on {url}: {message}",
                   kind=exc.kind, url=url, message=str(exc))

    def _drop(self, event: Event, why: str) -> None:
        kind = event.url_kind.value if event.url_kind else "unknown"
        self.counters.increment(f"dropped.{kind}")
        self._warn(f"dropped.{kind}.{event.topic}", "dropped {topic} from {url}: {why}",
                   topic=event.topic, url=event.url, why=why)

    def _warn(self, key: str, fmt: str, **fields: Any) -> None:
        now = self.reactor.seconds()
        last, suppressed = self._warned.get(key, (None, 0))
        if last is not None and now - last < WARN_EVERY:
            self._warned[key] = (last, suppressed + 1)
            return
        self._warned[key] = (now, 0)
        self.log.warn(fmt + " ({suppressed} similar ones not logged)", suppressed=suppressed,
                      **fields)

    def _answer_heartbeat(self, event: Event) -> None:
        ident = event.get("id")
        if not isinstance(ident, str):
            self._drop(event, "heartbeat enquiry without a string id")
            return
        self.publish(HEARTBEAT_REPLY, {"id": ident, "shots_running": self.running_shots()})

    def _handle_allow(self, event: Event) -> None:
        allow = event.get("allow")
        ident = event.get("id")
        if not isinstance(allow, bool) or not isinstance(ident, str):
            self._drop(event, "needs a boolean 'allow' and a string 'id'")
            return
        why = event.get("reason")
        asked = f" ({why})" if isinstance(why, str) and why else ""
        if allow:
            reasons = []
            if self.arming.can_fire("allow"):
                self.publish_change(self.arming.fire("allow", f"ocd allow_hetdex start{asked}"))
                reasons.append("HETDEX shots allowed")
            else:
                reasons.append("HETDEX shots were already allowed")
            reasons.append(self.clear_failed_shot())
            reason = "; ".join(reasons)
        elif self.arming.can_fire("disallow"):
            self.publish_change(self.arming.fire("disallow", f"ocd allow_hetdex stop{asked}"))
            reason = "HETDEX shots not allowed; a running shot finishes"
        else:
            reason = "HETDEX shots were already not allowed"
        self.publish(HETDEX_ALLOWED_ANSWER, {
            "allowed": self.arming.state == "allowed", "id": ident, "reason": reason})

    def clear_failed_shot(self) -> str:
        """Clear ``failed_shot`` (``allow_hetdex start``); returns what happened."""
        if self.failed_shot:
            self.failed_shot = False
            return "failed_shot cleared"
        return "failed_shot was not set"

    def _handle_config(self, event: Event) -> None:
        from ocd.config import apply_live_update

        section, option, value, ident = (event.get(k) for k in ("section", "option", "value", "id"))
        if not all(isinstance(v, str) for v in (section, option, value, ident)):
            self._drop(event, "needs string 'section', 'option', 'value' and 'id'")
            return
        applied, message = apply_live_update(self.config, section, option, value)
        self.counters.increment("config.applied" if applied else "config.refused")
        self.publish(CONFIG_UPDATED, {"section": section, "option": option, "value": value,
                                      "id": ident, "applied": applied, "message": message})
        if applied:
            self.on_config_updated(section, option, value)

    # -- hooks the orchestrator extends ---------------------------------------
    def running_shots(self) -> list[dict[str, Any]]:
        """The shots running now, for the heartbeat reply (``run_shot -c`` asks)."""
        return []

    def on_telescope_event(self, event: Event) -> None:
        """A valid TCS/replay event arrived (clock already advanced)."""

    def on_run_shot_event(self, event: Event) -> None:
        """``ocd.run_shot.*`` from any shot runner: keep ``run_shot`` idle/running."""
        if event.topic != RUN_SHOT_RUN:
            return
        status = event.get("exec_status")
        shotid = event.get("shotid")
        if status == 0 and self.shot.can_fire("start"):
            self.publish_change(self.shot.fire("start", f"shot {shotid} started"))
        elif status == 1 and self.shot.can_fire("finish"):
            error = " with an error" if event.get("error") else ""
            self.publish_change(self.shot.fire("finish", f"shot {shotid} finished{error}"))

    def on_config_updated(self, section: str, option: str, value: str) -> None:
        """A live update was applied to ``self.config``."""

    def on_time_jump_back(self, old: float, new: float) -> None:
        """The telescope time went back (a replay starting over)."""

    def tick(self) -> None:
        """Called every ``[decision] decide_interval`` seconds; never raises."""
        try:
            self.on_tick()
        except Exception:
            self.log.failure("main loop tick failed")

    def on_tick(self) -> None:
        """Periodic work (re-decide, report): the orchestrator extends it."""


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
        self._sockets: list[Any] = []

    def startService(self) -> None:
        try:
            main = self.bus.publisher([self.main_loop_url], channel="main_loop")
            self._sockets.append(main)
            shots = self.bus.publisher([self.run_shot_url], channel="run_shot")
            self._sockets.append(shots)
            for kind, urls in self.control_urls.items():
                if urls:
                    self._sockets.append(self.bus.subscriber(
                        urls, kind, CONTROL_TOPICS[kind], self.main_loop.handle_event,
                        self.main_loop.on_malformed))
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
        self.subscriber: Any = None

    def startService(self) -> None:
        if not self.urls:
            self.log.warn("no telescope URL given ([urls] event_urls and ocd_db_replay are "
                          "empty): OCD hears no telescope")
        else:
            self.subscriber = self.bus.subscriber(
                self.urls, self.kind, self.topics, self.main_loop.handle_event,
                self.main_loop.on_malformed)
        Service.startService(self)

    def stopService(self) -> None:
        Service.stopService(self)
        if self.subscriber is not None:
            self.subscriber.close()
            self.subscriber = None


class OcdService(MultiService):
    """The root: opens the bus before its children start, closes it after."""

    log = Logger(namespace="ocd.service")

    def __init__(self, bus: Bus, main_loop: MainLoop):
        super().__init__()
        self.setName("ocd")
        self.bus = bus
        self.main_loop = main_loop

    def startService(self) -> None:
        self.bus.open()
        Service.startService(self)
        started = []
        try:
            for child in self:
                child.startService()
                started.append(child)
        except Exception:
            for child in reversed(started):
                child.stopService()
            self.running = 0
            self.bus.close()
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
