"""How a subcommand reaches the main loop (events.md 3.1 to 3.3).

A subcommand binds its own PUB (the URL its ``-N`` picks), subscribes to
every ``ocd_main_loop`` URL, and first sends ``ocd.heartbeat.enquiry``
until the reply with its ``id`` comes back: only then are both directions
known to be connected (ZeroMQ drops what a PUB sends before a SUB has
joined). Then it sends its request, with a fresh ``id``, once per attempt,
and waits for the answer that echoes that ``id``.
"""

from __future__ import annotations

import uuid
from typing import Any, Callable, Sequence

from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.logger import Logger

from ocd.config import Config
from ocd.core.events import Event, UrlKind, make_event
from ocd.core.topics import Topic
from ocd.protocols.curve import client_settings
from ocd.protocols.zmq import BindError, Bus, EventPublisher, EventSubscriber, SocketSecurity


log = Logger(namespace="ocd.control")


def new_id() -> str:
    return uuid.uuid4().hex


class ControlClient:
    """A PUB bound on ``bind_urls`` and a SUB on the main loop's URLs."""

    def __init__(
        self,
        bus: Bus,
        bind_urls: Sequence[str],
        main_loop_urls: Sequence[str],
        reactor: Any = None,
        curve: SocketSecurity | None = None,
    ) -> None:
        """``curve``: this client's CurveZMQ keys (:func:`ocd.protocols.curve.client_settings`)."""
        self._reactor = reactor if reactor is not None else bus.reactor
        self._waiting: dict[tuple[str, str], Callable[[Event], None]] = {}
        self.publisher: EventPublisher = bus.publisher(bind_urls, channel="control",
                                                       security=curve)
        try:
            self.subscriber: EventSubscriber = bus.subscriber(
                main_loop_urls, UrlKind.MAIN_LOOP, ["ocd."], self._on_event
            )
        except Exception:
            self.publisher.close()
            raise

    # -- receiving ---------------------------------------------------------
    def _on_event(self, event: Event) -> None:
        ident = event.get("id")
        if not isinstance(ident, str):
            return
        callback = self._waiting.pop((event.topic, ident), None)
        if callback is not None:
            callback(event)

    def _wait(
        self, topic: str, ident: str, send: Callable[[], None], attempts: int | None,
        interval: float, timeout: float | None,
    ) -> Deferred:
        """Send now and every ``interval`` s until the answer or the end.

        Ends after ``attempts`` sends plus one interval, or after ``timeout``
        seconds; fires with the answer, or None.
        """
        result: Deferred = Deferred()
        state: dict[str, Any] = {"sent": 0, "call": None, "timer": None}

        def finish(value: Any) -> None:
            self._waiting.pop((topic, ident), None)
            for name in ("call", "timer"):
                call = state[name]
                if call is not None and call.active():
                    call.cancel()
            if not result.called:
                result.callback(value)

        def tick() -> None:
            state["call"] = None
            if result.called:
                return
            if attempts is not None and state["sent"] >= attempts:
                finish(None)
                return
            try:
                send()
            except Exception:
                log.failure("sending {topic} failed", topic=topic)
            state["sent"] += 1
            state["call"] = self._reactor.callLater(interval, tick)

        self._waiting[(topic, ident)] = finish
        if timeout is not None:
            state["timer"] = self._reactor.callLater(timeout, finish, None)
        tick()
        return result

    # -- the three things a subcommand does -----------------------------------
    def handshake(self, timeout: float, interval: float = 0.25) -> Deferred:
        """Fires True once the main loop answers an enquiry, False after ``timeout``."""
        d = self.handshake_reply(timeout, interval)
        d.addCallback(lambda answer: answer is not None)
        return d

    def handshake_reply(self, timeout: float, interval: float = 0.25) -> Deferred:
        """Like :meth:`handshake`, but fires with the reply (which says the
        ``shots_running``), or None after ``timeout``."""
        ident = self.handshake_id = new_id()  # a replay names its start with it
        return self._wait(
            Topic.HEARTBEAT_REPLY, ident, lambda: self.emit(Topic.HEARTBEAT_ENQUIRY, {"id": ident}),
            None, interval, timeout,
        )

    def request(
        self, topic: str, fields: dict, answer_topic: str, attempts: int, interval: float
    ) -> Deferred:
        """Send ``topic`` with a fresh ``id`` per attempt; fires with the answer or None."""
        ident = new_id()
        payload = dict(fields, id=ident)
        return self._wait(
            answer_topic, ident, lambda: self.emit(topic, payload), max(1, attempts),
            interval, None,
        )

    def emit(self, topic: str, fields: dict, data_time: float | None = None) -> Event:
        """Publish an event stamped with the reactor's (the machine's) clock."""
        now = self._reactor.seconds()
        event = make_event(topic, fields, now if data_time is None else data_time, now)
        self.publisher.publish(event)
        return event

    def close(self) -> None:
        for finish in list(self._waiting.values()):
            finish(None)
        self.subscriber.close()
        self.publisher.close()


@inlineCallbacks
def reach_main_loop(config: Config, bind_url: str, attempts: int, interval: float,
                    reactor: Any, out: Any, command: str) -> Deferred:
    """Open a bus, bind, shake hands: fires ``(bus, client)``, client None on failure.

    The handshake waits ``attempts * interval`` seconds (at least 1 s).
    """
    main_urls = config.get_urls("urls", "ocd_main_loop")
    curve = client_settings(config)
    bus = Bus(reactor)
    bus.open()
    try:
        client = ControlClient(bus, [bind_url], main_urls, reactor, curve=curve)
    except BindError as exc:
        bus.close()
        print(f"{command}: {exc}", file=out)
        return bus, None
    timeout = max(1.0, attempts * interval)
    ok = yield client.handshake(timeout, interval=min(0.25, max(interval, 0.05)))
    if not ok:
        client.close()
        bus.close()
        print(f"{command}: no answer from the OCD main loop on {' '.join(main_urls)} within "
              f"{timeout:g} s (is `ocd run` running, and listening on {bind_url}?)", file=out)
        return bus, None
    return bus, client


@inlineCallbacks
def request_main_loop(config: Config, bind_url: str, topic: str, fields: dict,
                      answer_topic: str, attempts: int, interval: float, reactor: Any,
                      out: Any, command: str, what: str) -> Deferred:
    """Reach the main loop, send one request, fire with its answer.

    Fires None when the main loop could not be reached or did not answer
    (``out`` has been told why): the caller exits with EXIT_UNREACHABLE.
    """
    bus, client = yield reach_main_loop(config, bind_url, attempts, interval, reactor, out,
                                        command)
    if client is None:
        return None
    try:
        answer = yield client.request(topic, fields, answer_topic, attempts, interval)
    finally:
        client.close()
        bus.close()
    if answer is None:
        print(f"{command}: the main loop answered the heartbeat but not the {what} "
              f"after {attempts} attempt(s)", file=out)
    return answer
