"""The main loop: every event in, every event out.

:class:`MainLoop` routes each event by the kind of URL it came on (events.md
section 1), keeps the arming and shot machines, answers heartbeats, replay
handshakes and live configuration, counts and warns about malformed events,
and is the one place outgoing events go through (:meth:`MainLoop.publish`).
The orchestrator extends it with decisions and shots. The sockets it hears
and speaks on belong to the services of :mod:`ocd.services.channels`, which
the tree of ``ocd run`` (:func:`ocd.app.makeService`) puts around it; they
open the bus in ``startService``, after twistd's fork (a ZeroMQ context does
not survive a fork).
"""

from __future__ import annotations

from typing import Any, Callable

from twisted.application.service import Service
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger, LogLevel

from ocd.config import Config, ConfigError
from ocd.core.clock import OcdClock
from ocd.core.counters import BoundedNames, Counters, RateLimitedWarnings
from ocd.core.events import TCS_TOPICS, Event, MalformedEvent, UrlKind, make_event
from ocd.core.heartbeat_gaps import GapNews, HeartbeatGaps
from ocd.core.machines import Change, StateMachine, arming_machine, shot_machine
from ocd.core.topics import (RUN_SHOT_PREFIX, TCS_HEARTBEAT, ArmingState, ArmingTransition,
                             MachineName, Topic)
from ocd.protocols.zmq import EventPublisher
from ocd.services.alerter import Alerter

#: Replays (handshake ids) whose start OCD remembers.
MAX_REPLAY_MARKS = 64

#: At most one warning per kind of malformed event in this many seconds.
WARN_EVERY = 60.0

Listener = Callable[[Event], None]

_RECEIVED = {kind: f"received.{kind.value}" for kind in UrlKind}
_TELESCOPE = frozenset(kind for kind in UrlKind if kind.is_telescope)


def check_own_urls(config: Config) -> None:
    """Refuse a URL that another program must bind when it is one OCD binds itself.

    ``ocd run`` binds ``ocd_main_loop`` and its ``ocd_run_shot``; the TCS, ``ocd
    db_replay``, ``ocd allow_hetdex`` and ``ocd config send`` bind theirs. Given
    one of OCD's own, OCD started and then could never be armed or reconfigured
    (the command's bind failed: "address already in use").
    """
    own = {config.get_url_at("ocd_main_loop", "run", "n_ocd_main_loop"): "ocd_main_loop",
           config.get_url_at("ocd_run_shot", "run", "n_ocd_run_shot"): "ocd_run_shot"}
    for option in ("event_urls", "ocd_db_replay", "ocd_allow_hetdex", "ocd_config"):
        for url in config.get_urls("urls", option):
            if url in own:
                raise ConfigError(
                    f"[urls] {option} {url} is the URL OCD binds itself for [urls] "
                    f"{own[url]}: {option} names where another program binds; give "
                    "another port")


def telescope_source(config: Config) -> tuple[UrlKind, list[str]]:
    """Which telescope URLs ``ocd run`` connects to; both given is an error, and
    so is a URL of OCD's own (:func:`check_own_urls`)."""
    check_own_urls(config)
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
        topics.append(Topic.HEARTBEAT_ENQUIRY)  # db_replay shakes hands on its own URL
        topics.append(Topic.REPLAY_END)  # and compares counts at its end
    return topics


class MainLoop(Service):
    """Handles every event; the one place outgoing events go through."""

    log = Logger(namespace="ocd.main_loop")

    def __init__(self, config: Config, reactor: IReactorTime, counters: Counters | None = None,
                 wall: Callable[[], float] | None = None):
        self.setName("main_loop")
        self.config = config
        #: Where timers come from (``task.Clock`` in tests); the orchestrator
        #: also starts children through it (IReactorProcess). Its clock
        #: measures every silence, timeout and deadline: monotonic in the
        #: daemons (:func:`ocd.app.use_monotonic_clock`).
        self.reactor = reactor
        #: The machine's wall clock (epoch s): OCD's time with ``[dates] clock
        #: = system`` and the stamps of what it publishes; never a deadline (a
        #: clock step moves it). ``time.time`` in the daemons; by default the
        #: reactor's clock (a test's Clock drives both).
        self.wall_time: Callable[[], float] = wall if wall is not None else reactor.seconds
        self.counters = counters if counters is not None else Counters()
        #: Every alert goes out through it (rate-limited; the orchestrator
        #: gives it the process runner for ``[general] alert_command``).
        self.alerter = Alerter(config, reactor, self.counters)
        self.arming: StateMachine = arming_machine()
        self.shot: StateMachine = shot_machine()
        self.machines: dict[MachineName, StateMachine] = {
            MachineName.HETDEX_ALLOWED: self.arming, MachineName.RUN_SHOT: self.shot}
        #: Set by the orchestrator when a shot fails or is lost;
        #: ``ocd allow_hetdex start`` clears it (shots.md section 2).
        self.failed_shot = False
        self.listeners: list[Listener] = []
        self.publishers: dict[str, EventPublisher] = {}
        self.clock = OcdClock.from_config(config)
        #: Log every published event (debug): only when a log is at debug level.
        self.log_publish = "debug" in (config.get_str("general", "log_level"),
                                       config.get_str("general", "json_log_level"))
        self._warnings = RateLimitedWarnings(WARN_EVERY, self.log.warn)
        self._topic_names = BoundedNames("topic")
        #: A TCS __data_time further than this from the machine's clock is
        #: malformed (0: no limit); see :meth:`_time_is_plausible`.
        self.max_time_offset = config.get_float("dates", "max_time_offset")
        self.heartbeats = HeartbeatGaps(config.get_float("topics", "heartbeat_interval"))
        #: ``replay.messages`` at each replay's handshake, by handshake id.
        self._replay_marks: dict[str, int] = {}
        #: The answer to each ``ocd.replay.end`` id (a repeated request gets it again).
        self._replay_answers: dict[str, dict[str, Any]] = {}

    # -- lifecycle -----------------------------------------------------------
    def startService(self) -> None:
        from ocd.json_log import add_trouble_listener

        add_trouble_listener(self._log_trouble)
        Service.startService(self)

    def stopService(self) -> Any:
        from ocd.json_log import remove_trouble_listener

        remove_trouble_listener(self._log_trouble)
        return Service.stopService(self)

    def _log_trouble(self, message: str) -> None:
        """The JSON log stopped: alert from the reactor, not from inside the log observer."""
        self.counters.increment("json_log.failed")
        self.reactor.callLater(0, self.alert, message)

    def alert(self, message: str, kind: str = "other") -> None:
        """Wake a person (:class:`ocd.services.alerter.Alerter`): at most one of
        ``kind`` per ``[general] alert_every``, the rest summed up later."""
        self.alerter.alert(message, kind)

    # -- clocks ------------------------------------------------------------
    # Two clocks: ``self.reactor.seconds()`` (monotonic in the daemons) for
    # silences, timeouts and deadlines; ``self.wall_time()`` for OCD's time
    # and the stamps of what it publishes.
    def now(self) -> float:
        """OCD's clock: mock_time, else the TCS time, else the machine's clock."""
        return self.clock.now(self.wall_time())

    def _advance_clock(self, event: Event) -> None:
        jump = self.clock.observe(event.data_time)
        if jump is not None:
            self.log.info("{what} ({topic})", what=jump.describe(), topic=event.topic)
            self.on_time_jump_back(jump.old, jump.new)

    # -- publishing --------------------------------------------------------
    def publish(self, topic: str, fields: dict[str, Any]) -> Event:
        """Stamp, send, log and hand to listeners every event OCD writes."""
        event = make_event(topic, fields, self.now(), self.wall_time())
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
        return self.publish(Topic.STATES_CHANGE, change.fields())

    def publish_states(self) -> None:
        for name, machine in self.machines.items():
            self.publish(Topic.STATES_STATE, {"machine_name": name, "state": machine.state})

    # -- receiving ---------------------------------------------------------
    def handle_event(self, event: Event) -> None:
        """Route one event by the kind of URL it came on (events.md section 1).

        An event that makes a handler raise (a value of a type nobody
        checked) is a malformed event: counted, warned about at a bounded
        rate, never a traceback per message.
        """
        kind = event.url_kind
        topic = event.topic
        counters = self.counters
        counters.increment(_RECEIVED.get(kind, "received.unknown"))
        try:
            if kind in _TELESCOPE:
                if kind is UrlKind.REPLAY and topic.startswith("ocd.replay"):
                    self._handle_replay_control(event)
                    return
                if kind is UrlKind.REPLAY and topic != Topic.HEARTBEAT_ENQUIRY:
                    counters.increment("replay.messages")  # what db_replay counts as sent
                if topic == Topic.HEARTBEAT_ENQUIRY and kind is UrlKind.REPLAY:
                    self._answer_heartbeat(event)
                elif topic.startswith("ocd."):
                    self._drop(event, "ocd topic on a telescope URL")
                elif self.max_time_offset and not self._time_is_plausible(event):
                    return
                else:
                    self._advance_clock(event)
                    counters.increment(self._topic_names.name(topic))
                    if topic == TCS_HEARTBEAT:
                        self._check_heartbeat_gap(event)
                    self.on_telescope_event(event)
                    if topic == TCS_HEARTBEAT:
                        self.publish_states()
            elif topic == Topic.HEARTBEAT_ENQUIRY:
                self._answer_heartbeat(event)
            elif kind is UrlKind.ALLOW_HETDEX and topic == Topic.HETDEX_ALLOWED:
                self._handle_allow(event)
            elif kind is UrlKind.CONFIG and topic == Topic.CONFIG_UPDATE:
                self._handle_config(event)
            elif kind is UrlKind.RUN_SHOT and topic.startswith(RUN_SHOT_PREFIX):
                counters.increment(self._topic_names.name(topic))
                self.on_run_shot_event(event)
            else:
                self._drop(event, f"not carried by {kind.value if kind else 'unknown'} URLs")
        except Exception as exc:
            self._handler_failed(event, exc)

    def _handler_failed(self, event: Event, exc: Exception) -> None:
        """A handler raised on this event: count it as malformed, warn at a bounded rate."""
        kind = type(exc).__name__
        self.counters.increment("malformed.handler_error")
        written = self._warn(f"malformed.handler_error.{kind}",
                             "malformed event {topic} from {url}: handling it raised "
                             "{error_type}: {error}", topic=event.topic, url=event.url,
                             error_type=kind, error=_short(str(exc)))
        if written:  # the first of each kind in a while keeps its traceback for a bug report
            self.log.failure("traceback of the handler error above", _failure(exc),
                             level=LogLevel.debug)

    def _time_is_plausible(self, event: Event) -> bool:
        """A telescope ``__data_time`` near the machine's clock (else malformed).

        On a TCS URL the time must lie within ``[dates] max_time_offset`` of
        the machine's clock (of ``mock_time`` when pinned); a replay carries
        an old night, so there only the future and times <= 0 are refused.
        A time of 1e308 or year 9999 must never become OCD's clock.
        """
        t = event.data_time
        reference = self.clock.mock_time
        if reference is None:
            reference = self.wall_time()
        limit = self.max_time_offset
        if t > 0 and t - reference <= limit and (
                event.url_kind is UrlKind.REPLAY or reference - t <= limit):
            return True
        self.on_malformed(MalformedEvent(
            "far_time", f"{event.topic}: __data_time {t!r} is more than {limit:g} s from the "
                        f"machine's clock ({reference:.0f})"), event.url or "?")
        return False

    def _check_heartbeat_gap(self, event: Event) -> None:
        news: GapNews = self.heartbeats.observe(event.data_time)
        if news.missed:
            self.counters.increment("heartbeat.missed", news.missed)
            self.counters.increment("heartbeat.gaps")
        if news.started is not None:
            s = news.started
            self.log.warn("TCS heartbeats missing: {missed} in a gap of {gap:.1f} s ending at "
                          "{end} (TCS clock) on {url}; further gaps are counted "
                          "(heartbeat.missed), not logged, until heartbeats arrive regularly "
                          "again", missed=s.missed, gap=s.end - s.start, end=_utc(s.end),
                          url=event.url, ocd_event="heartbeat_gap")
        if news.ended is not None:
            s = news.ended
            self.log.info("TCS heartbeat loss over: {missed} heartbeats missing in {gaps} gaps "
                          "between {start} and {end} (TCS clock)", missed=s.missed, gaps=s.gaps,
                          start=_utc(s.start), end=_utc(s.end), ocd_event="heartbeat_gap_end")

    def on_malformed(self, exc: MalformedEvent, url: str, url_kind: UrlKind | None = None) -> None:
        """Count by kind; warn once per kind per :data:`WARN_EVERY` seconds."""
        self.counters.increment(f"malformed.{exc.kind}")
        if url_kind is UrlKind.REPLAY:
            self.counters.increment("replay.messages")
        self._warn(f"malformed.{exc.kind}", "malformed event ({kind}) on {url}: {message}",
                   kind=exc.kind, url=url, message=_short(str(exc)))

    def on_curve_refused(self, domain: str, key: bytes) -> None:
        """A CurveZMQ client key not on the list (events.md 3.7): count, warn rate-limited."""
        self.counters.increment(f"refused.curve.{domain or 'unknown'}")
        self._warn(f"refused.curve.{domain}", "CurveZMQ: refused a client on {domain} URLs whose "
                   "public key {key} is not in [security] allowed_client_keys",
                   domain=domain, key=key.decode("ascii", "replace"))

    def _drop(self, event: Event, why: str) -> None:
        kind = event.url_kind.value if event.url_kind else "unknown"
        self.counters.increment(f"dropped.{kind}")
        self._warn(f"dropped.{kind}.{event.topic}", "dropped {topic} from {url}: {why}",
                   topic=_short(event.topic), url=event.url, why=why)

    def _warn(self, key: str, fmt: str, **fields: Any) -> bool:
        """Warn once per ``key`` per :data:`WARN_EVERY` s; a bounded number of keys."""
        return self._warnings.warn(key, self.reactor.seconds(), fmt, **fields)

    def _answer_heartbeat(self, event: Event) -> None:
        ident = event.get("id")
        if not isinstance(ident, str):
            self._drop(event, "heartbeat enquiry without a string id")
            return
        if event.url_kind is UrlKind.REPLAY and ident not in self._replay_marks:
            # A replay starts counting at its handshake (the first enquiry of
            # that id: it repeats until answered).
            if len(self._replay_marks) >= MAX_REPLAY_MARKS:
                self._replay_marks.pop(next(iter(self._replay_marks)))
            self._replay_marks[ident] = self.counters.get("replay.messages")
        self.publish(Topic.HEARTBEAT_REPLY, {"id": ident, "shots_running": self.running_shots()})

    def _handle_replay_control(self, event: Event) -> None:
        """``ocd.replay.end``: compare what db_replay sent with what arrived here.

        Only loss that can be known: the events of the topics OCD subscribes
        to (``sent_by_topic`` filtered by those prefixes), against every
        message that arrived on the replay URL since that replay's handshake
        (valid, malformed or dropped alike). Both sides report the result.
        """
        if event.topic != Topic.REPLAY_END:
            self._drop(event, "not a replay control topic")
            return
        ident, start, sent = event.get("id"), event.get("handshake_id"), event.get("sent")
        by_topic = event.get("sent_by_topic")
        if not (isinstance(ident, str) and isinstance(start, str) and type(sent) is int
                and (by_topic is None or (isinstance(by_topic, dict) and all(
                    type(n) is int for n in by_topic.values())))):
            self._drop(event, "needs string 'id' and 'handshake_id', integer 'sent' and "
                              "'sent_by_topic' {topic: integer}")
            return
        if ident in self._replay_answers:  # db_replay asked again: same answer, no new report
            self.publish(Topic.REPLAY_COUNTED, self._replay_answers[ident])
            return
        mark = self._replay_marks.pop(start, None)
        prefixes = telescope_topics(self.config, UrlKind.REPLAY)
        if by_topic is None:
            expected = sent
        else:
            expected = sum(n for topic, n in by_topic.items()
                           if any(topic.startswith(p) for p in prefixes if p))
        counted = None if mark is None else self.counters.get("replay.messages") - mark
        lost = None if counted is None else max(expected - counted, 0)
        if counted is None:
            self.log.warn("replay ended: db_replay sent {sent} events; OCD did not see its "
                          "handshake, so it cannot say how many arrived", sent=sent,
                          ocd_event="replay_counted")
        else:
            if lost:
                self.counters.increment("replay.lost", lost)
            (self.log.warn if lost else self.log.info)(
                "replay ended: db_replay sent {sent} events, {expected} of them on the topics "
                "OCD subscribes to; OCD counted {counted}: {lost} lost", sent=sent,
                expected=expected, counted=counted, lost=lost, ocd_event="replay_counted")
        answer = {"id": ident, "sent": sent, "expected": expected, "counted": counted,
                  "lost": lost}
        if len(self._replay_answers) >= MAX_REPLAY_MARKS:
            self._replay_answers.pop(next(iter(self._replay_answers)))
        self._replay_answers[ident] = answer
        self.publish(Topic.REPLAY_COUNTED, answer)

    def _handle_allow(self, event: Event) -> None:
        allow = event.get("allow")
        ident = event.get("id")
        if not isinstance(allow, bool) or not isinstance(ident, str):
            self._drop(event, "needs a boolean 'allow' and a string 'id'")
            return
        why = event.get("reason")
        asked = f" ({why})" if isinstance(why, str) and why else ""
        refusal = self.allow_refusal() if allow else None
        if refusal is not None:
            self.counters.increment("allow.refused")
            self.log.warn("ocd allow_hetdex start refused: {refusal}", refusal=refusal)
            self.publish(Topic.HETDEX_ALLOWED_CHANGED, {
                "allowed": self.arming.state == ArmingState.ALLOWED, "id": ident,
                "reason": f"refused: {refusal}"})
            return
        if allow:
            reasons = []
            if self.arming.can_fire(ArmingTransition.ALLOW):
                self.publish_change(self.arming.fire(ArmingTransition.ALLOW, f"ocd allow_hetdex start{asked}"))
                reasons.append("HETDEX shots allowed")
            else:
                reasons.append("HETDEX shots were already allowed")
            reasons.append(self.clear_failed_shot())
            reason = "; ".join(reasons)
        elif self.arming.can_fire(ArmingTransition.DISALLOW):
            self.publish_change(self.arming.fire(ArmingTransition.DISALLOW, f"ocd allow_hetdex stop{asked}"))
            reason = "HETDEX shots not allowed; a running shot finishes"
        else:
            reason = "HETDEX shots were already not allowed"
        self.publish(Topic.HETDEX_ALLOWED_CHANGED, {
            "allowed": self.arming.state == ArmingState.ALLOWED, "id": ident, "reason": reason})

    def allow_refusal(self) -> str | None:
        """Why shots may not be allowed now (None: they may); the orchestrator extends it."""
        return None

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
        self.publish(Topic.CONFIG_UPDATED, {"section": section, "option": option, "value": value,
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
        """An ``ocd.run_shot.*`` event from any shot runner (OCD's own echo included)."""

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


def _short(text: str, limit: int = 200) -> str:
    """A wire-given text cut for a log line."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _utc(t: float) -> str:
    from datetime import datetime, timezone

    try:
        return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (OverflowError, OSError, ValueError):
        return repr(t)


def _failure(exc: Exception) -> Any:
    from twisted.python.failure import Failure

    return Failure(exc, type(exc), exc.__traceback__)
