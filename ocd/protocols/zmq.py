"""ZeroMQ PUB/SUB on the Twisted reactor: two-frame events in and out, on txZMQ.

Wire contract (events.md, section 1): a message is exactly two frames,
``topic`` and a JSON object. Publishers bind, subscribers connect and filter
by topic prefix. This module only moves frames: it turns received frames
into :class:`ocd.core.events.Event` values (or :class:`MalformedEvent`, handed to
``on_malformed`` and dropped) and hands them on; it decides nothing.

The classes are txZMQ's (``ZmqFactory``, ``ZmqPubConnection``,
``ZmqSubConnection``): txZMQ gives the socket's life on the reactor (the
ZeroMQ FD registered with ``addReader``, socket options from class
attributes, endpoints, the factory's set of connections and its shutdown).
OCD overrides what txZMQ 1.0.0 gets wrong for it (``docs/zmq.md``):

- ``doRead`` drains without bound: ours reads at most a batch or a time
  budget per reactor turn, then reschedules itself.
- the factory and ``send`` use the global reactor: ours use the reactor the
  :class:`Bus` is given.
- a failed ``bind``/``connect`` leaks its socket (``Context.term()`` then
  hangs): ours closes it and raises :class:`BindError` naming the URL.
- ``publish(message, tag)`` sends one frame ``tag\\0message`` and the
  subscriber splits such frames: ours sends two frames, and any message that
  is not exactly two frames is malformed.
- the context is made in the factory's constructor: ours in :meth:`Bus.open`
  (twistd forks between ``makeService`` and ``startService``).
- a PUB socket drops silently at its high-water mark: ours sets
  ``XPUB_NODROP`` (libzmq applies it to PUB too), so a drop is ``EAGAIN``,
  counted and warned about.

Import rule: txZMQ's modules import ``twisted.internet.reactor`` when they are
imported, which installs the default reactor. So this module (and everything
that imports it) is imported only after the reactor is chosen: from services
and subcommands, never from the twistd plugin file, ``ocd.tap`` at module
level or ``conftest.py``.

The ZeroMQ FD is edge-triggered: it signals when the socket's state
changes, not while messages wait. So a read either drains the socket until
``EAGAIN`` or, when it stops early (batch limit, time budget), schedules
the next read with ``callLater(0)``: readable messages never wait without a
scheduled read, and one burst never holds the reactor for more than one
batch.
"""

from __future__ import annotations

import errno as _errno
import time
from typing import Any, Callable, Iterable, Protocol, Sequence

import zmq
from twisted.internet.error import ConnectionLost
from twisted.logger import Logger
from txzmq import ZmqEndpoint, ZmqEndpointType, ZmqFactory, ZmqPubConnection, ZmqSubConnection

from ocd.core.events import Event, MalformedEvent, UrlKind, parse_frames, to_frames

#: Milliseconds a closing publisher keeps trying to send what is queued (so a
#: last FINISH or answer still leaves while OCD stops). Subscribers use 0.
LINGER_MS = 1000
#: Messages read per reactor turn, and the time budget of one turn.
MAX_BATCH = 256
MAX_BATCH_SECONDS = 0.01
#: Queue limits: a burst of telescope events is kept, not silently dropped.
RCVHWM = 200_000
SNDHWM = 100_000
#: At most one "publisher full" warning per publisher in this many seconds.
DROP_WARN_EVERY = 60.0

log = Logger(namespace="ocd.zmq")

_NOBLOCK = int(zmq.NOBLOCK)


class SocketSecurity(Protocol):
    """Socket options applied before bind/connect (CurveZMQ keys, ZAP domain)."""

    def apply(self, socket: zmq.Socket, domain: str) -> None: ...


class BindError(Exception):
    """A URL could not be bound (or connected): the message names it and why."""


def _reason(exc: zmq.ZMQError) -> str:
    if exc.errno == _errno.EADDRINUSE:
        return "address already in use"
    if exc.errno in (_errno.EADDRNOTAVAIL,):
        return "address not available on this machine"
    if exc.errno in (_errno.EINVAL, getattr(zmq, "EPROTONOSUPPORT", -1), _errno.ENODEV):
        return f"bad address ({exc.strerror})"
    return exc.strerror or str(exc)


class Bus(ZmqFactory):
    """One per program; owns the ZeroMQ context and every socket made from it.

    txZMQ's ``ZmqFactory`` makes its context in the constructor and uses the
    global reactor. Here the reactor is the one given (txZMQ's class default,
    the installed global reactor, only when none is), and the context is made
    by :meth:`open`, after twistd's fork (a context does not survive
    ``fork``). :meth:`close` (txZMQ's ``shutdown``) closes every socket, then
    the context, and the bus can be opened again.
    """

    lingerPeriod = LINGER_MS

    def __init__(self, reactor: Any = None) -> None:
        # Not ZmqFactory.__init__: it would make the context now, before the fork.
        if reactor is not None:
            self.reactor = reactor
        self.connections: set[Any] = set()
        self.context: zmq.Context | None = None
        #: True once the reactor has begun to shut down (its "before" phase):
        #: it then takes every descriptor back, and a socket's loss is expected.
        self.reactor_stopping = False
        self._stopping_trigger: Any = None

    def __repr__(self) -> str:
        return f"<Bus {'open' if self.is_open else 'closed'}, {len(self.connections)} sockets>"

    @property
    def is_open(self) -> bool:
        return self.context is not None

    def open(self) -> None:
        if self.context is None:
            self.context = zmq.Context(self.ioThreads)
            self.reactor_stopping = False
            self._stopping_trigger = self.reactor.addSystemEventTrigger(
                "before", "shutdown", self._note_reactor_stopping)

    def _note_reactor_stopping(self) -> None:
        self.reactor_stopping = True
        self._stopping_trigger = None

    def close(self) -> None:
        """Close every socket made here (LINGER bounded), then the context."""
        for connection in list(self.connections):
            try:
                connection.shutdown()
            except Exception:
                log.failure("closing {connection!r}", connection=connection)
        self.connections.clear()
        if self.context is not None:
            self.context.term()
            self.context = None
        if self._stopping_trigger is not None:
            self.reactor.removeSystemEventTrigger(self._stopping_trigger)
            self._stopping_trigger = None
        if self.trigger:
            try:
                self.reactor.removeSystemEventTrigger(self.trigger)
            except Exception:
                pass  # already fired: the reactor is shutting down
            self.trigger = None

    shutdown = close  # txZMQ's name (registerForShutdown calls it)

    def _require_open(self) -> None:
        if self.context is None:
            raise RuntimeError("Bus.open() must be called before making sockets")

    def publisher(
        self, urls: Sequence[str], channel: str = "", high_water_mark: int = SNDHWM,
        security: SocketSecurity | None = None,
    ) -> "EventPublisher":
        """A PUB socket bound to every URL now; raises :class:`BindError`.

        ``channel`` names it in warnings (``main_loop``, ``run_shot``, ...);
        ``security`` (CurveZMQ, :mod:`ocd.protocols.curve`) is applied before binding.
        """
        return EventPublisher(self, urls, channel, high_water_mark, security)

    def subscriber(
        self,
        urls: Sequence[str],
        kind: UrlKind,
        topics: Iterable[str],
        on_event: Callable[[Event], None],
        on_malformed: Callable[[MalformedEvent, str], None] | None = None,
        security: SocketSecurity | None = None,
    ) -> "EventSubscriber":
        """One SUB socket for one kind of URL, connected to each of ``urls``.

        ``security`` (CurveZMQ) is applied before connecting, with the kind as
        its ZAP domain.
        """
        return EventSubscriber(self, urls, kind, topics, on_event, on_malformed,
                               security=security)


class _OcdConnection:
    """What OCD's two connections change in txZMQ's ``ZmqConnection``.

    A failed bind or connect closes the socket and names the URL; shutting
    down twice is harmless and uses the connection's own LINGER; the FD is
    reported as -1 once closed.
    """

    closeLinger = LINGER_MS
    urls: list[str]
    socket: Any
    factory: Any
    read_scheduled: Any

    def _attach_words(self, endpoint: ZmqEndpoint) -> str:
        return f"cannot {endpoint.type} {endpoint.address}"

    def addEndpoints(self, endpoints: Sequence[ZmqEndpoint]) -> None:
        """Bind or connect each endpoint; on failure close and raise BindError."""
        for endpoint in endpoints:
            try:
                self._connectOrBind([endpoint])  # type: ignore[attr-defined]
            except zmq.ZMQError as exc:
                self.closeLinger = 0
                self.shutdown()
                raise BindError(f"{self._attach_words(endpoint)}: {_reason(exc)}") from None
            self.endpoints.append(endpoint)  # type: ignore[attr-defined]

    def fileno(self) -> int:
        return self.fd if self.socket is not None else -1  # type: ignore[attr-defined]

    def shutdown(self) -> None:
        """Close the socket and leave the reactor and the factory (idempotent)."""
        if self.read_scheduled is not None:
            if self.read_scheduled.active():
                self.read_scheduled.cancel()
            self.read_scheduled = None
        if self.socket is None:
            return
        factory = self.factory
        factory.reactor.removeReader(self)
        factory.connections.discard(self)
        self.socket.close(linger=self.closeLinger)
        self.socket = None

    close = shutdown

    def connectionLost(self, reason: Any) -> None:
        """The reactor took the descriptor back: at its shutdown (``disconnectAll``,
        for a program stopped before it closed its bus, e.g. ``ocd db_replay`` on
        Ctrl+C) that is expected and said at debug level; otherwise it is a fault."""
        if self.socket is None:
            return
        if self.factory.reactor_stopping and reason.check(ConnectionLost):
            log.debug("{what!r} left the reactor at its shutdown", what=self)
        else:
            log.warn("{what!r} lost its descriptor: {reason}", what=self, reason=reason)
        self.factory.reactor.removeReader(self)


class EventPublisher(_OcdConnection, ZmqPubConnection):
    """A bound PUB socket that sends events as two frames.

    ``XPUB_NODROP`` turns a drop at the high-water mark into ``EAGAIN``:
    :meth:`send` returns False, counts it in :attr:`dropped` and warns at most
    once per :data:`DROP_WARN_EVERY` seconds. (The cost: a subscriber that
    stops reading without leaving holds every subscriber's message once its
    queue of ``high_water_mark`` messages is full.)
    """

    highWaterMark = SNDHWM

    def __init__(
        self, factory: Bus, urls: Sequence[str], channel: str = "",
        high_water_mark: int = SNDHWM, security: SocketSecurity | None = None,
    ) -> None:
        factory._require_open()
        self.urls = list(urls)
        self.channel = channel
        self.sent = 0
        self.dropped = 0
        self._warned_at: float | None = None
        self._dropped_since_warning = 0
        self.highWaterMark = high_water_mark
        ZmqPubConnection.__init__(self, factory)  # socket, options, on the reactor
        self.socket.set(zmq.XPUB_NODROP, 1)
        if security is not None:
            security.apply(self.socket, channel)
        self.addEndpoints([ZmqEndpoint(ZmqEndpointType.bind, url) for url in self.urls])

    def doRead(self) -> None:
        """A PUB receives nothing; reading EVENTS lets libzmq process its commands
        (subscriptions, peers) so the FD's edge is armed again."""
        if self.socket is not None:
            self.socket.get(zmq.EVENTS)

    def publish(self, message: Event | bytes, tag: bytes = b"") -> bool:  # type: ignore[override]
        """Send an event (or txZMQ's ``message, tag``) as two frames."""
        if isinstance(message, Event):
            return self.send(to_frames(message))
        return self.send([tag, message])

    def publish_raw(self, frames: list[bytes]) -> bool:
        """Send any list of frames as one message (tests and replay)."""
        return self.send(frames)

    def send(self, message: list[bytes]) -> bool:  # type: ignore[override]
        """Send one message without blocking; False (counted, warned) if it is dropped.

        txZMQ's ``send`` schedules a read on the global reactor after each
        send; a PUB never reads, so nothing is scheduled here.
        """
        socket = self.socket
        if socket is None:
            raise RuntimeError(f"publisher on {' '.join(self.urls)} is closed")
        try:
            socket.send_multipart(message, _NOBLOCK)
        except zmq.Again:
            self._drop()
            return False
        self.sent += 1
        return True

    def _drop(self) -> None:
        self.dropped += 1
        self._dropped_since_warning += 1
        now = self.factory.reactor.seconds()
        if self._warned_at is None or now - self._warned_at >= DROP_WARN_EVERY:
            log.warn(
                "publisher {channel} on {urls} is full (a subscriber does not read): "
                "{n} message(s) dropped since the last warning, {total} in all",
                channel=self.channel or "-", urls=" ".join(self.urls),
                n=self._dropped_since_warning, total=self.dropped, ocd_event="dropped.publish",
            )
            self._warned_at = now
            self._dropped_since_warning = 0

    def __repr__(self) -> str:
        return f"<EventPublisher {self.channel} {' '.join(self.urls)}>"


class EventSubscriber(_OcdConnection, ZmqSubConnection):
    """A SUB socket on the reactor for one kind of URL.

    Reads at most ``max_batch`` messages (or :data:`MAX_BATCH_SECONDS`) per
    reactor turn and reschedules the rest. A message that is not exactly two
    frames is malformed (never split like txZMQ's ``messageReceived`` does).
    """

    highWaterMark = RCVHWM
    closeLinger = 0

    def __init__(
        self,
        factory: Bus,
        urls: Sequence[str],
        kind: UrlKind,
        topics: Iterable[str],
        on_event: Callable[[Event], None],
        on_malformed: Callable[[MalformedEvent, str], None] | None = None,
        max_batch: int = MAX_BATCH,
        security: SocketSecurity | None = None,
    ) -> None:
        factory._require_open()
        self.urls = list(urls)
        self.kind = kind
        self.url_label = " ".join(self.urls)
        self._on_event = on_event
        self._on_malformed = on_malformed or self._log_malformed
        self._max_batch = max_batch
        self.received = 0
        self.topics: list[str] = []
        ZmqSubConnection.__init__(self, factory)  # socket, options, on the reactor
        self.socket.set(zmq.LINGER, 0)
        if security is not None:
            security.apply(self.socket, kind.value)
        for topic in topics:
            self.subscribe(topic)
        self.addEndpoints([ZmqEndpoint(ZmqEndpointType.connect, url) for url in self.urls])
        self._schedule()  # connecting may have consumed the FD's edge

    def _attach_words(self, endpoint: ZmqEndpoint) -> str:
        return f"cannot connect to {endpoint.address} ({self.kind.value})"

    def subscribe(self, tag: str | bytes) -> None:
        """Add a topic prefix (``""`` is everything)."""
        topic = tag.decode("utf-8") if isinstance(tag, bytes) else tag
        if self.socket is not None and topic not in self.topics:
            self.socket.set(zmq.SUBSCRIBE, topic.encode("utf-8"))
            self.topics.append(topic)
            self._schedule()

    def logPrefix(self) -> str:
        return f"zmq-sub-{self.kind.value}"

    # -- reading -----------------------------------------------------------
    def _schedule(self) -> None:
        if self.socket is None:
            return
        if self.read_scheduled is None or not self.read_scheduled.active():
            self.read_scheduled = self.factory.reactor.callLater(0, self.doRead)

    def doRead(self) -> None:
        """Read at most a batch or a time budget, then reschedule if more may wait.

        Frames are read as by ``recv_multipart``, but each received Frame
        carries its RCVMORE flag: ``recv_multipart`` asks for it with
        ``getsockopt``, which pyzmq maps through an enum per frame (measured:
        2.4 -> 1.5 us per event). txZMQ asks ``EVENTS`` before every message
        and reads until the socket is empty, however long that takes.
        """
        if self.read_scheduled is not None:
            if self.read_scheduled.active():
                self.read_scheduled.cancel()
            self.read_scheduled = None
        socket = self.socket
        if socket is None:
            return
        deadline = time.perf_counter() + MAX_BATCH_SECONDS
        recv = socket.recv
        deliver = self.messageReceived
        clock = time.perf_counter
        for _ in range(self._max_batch):
            try:
                frame = recv(_NOBLOCK, copy=False)
                frames = [frame.bytes]
                while frame.more:  # the frames of one message arrive together
                    frame = recv(_NOBLOCK, copy=False)
                    frames.append(frame.bytes)
            except zmq.Again:
                return  # drained: the FD will signal the next change
            except zmq.ZMQError as exc:
                log.error("subscriber {kind}: receive failed: {error}", kind=self.kind.value,
                          error=str(exc))
                return
            self.received += 1
            deliver(frames)
            if self.socket is None:
                return  # closed by a handler
            if clock() > deadline:
                break
        self._schedule()  # stopped early: more may wait, and the FD will not say so

    def messageReceived(self, message: list[bytes]) -> None:
        """One whole message: exactly two frames is an event, anything else is malformed."""
        try:
            event = parse_frames(message, self.kind, self.url_label)
        except MalformedEvent as exc:
            self._call(self._on_malformed, exc, self.url_label)
        except Exception as exc:  # a parser bug must not stop the reader
            log.failure("subscriber {kind}: parsing a message failed", kind=self.kind.value)
            self._call(self._on_malformed, MalformedEvent("parse_error", repr(exc)),
                       self.url_label)
        else:
            try:
                self._on_event(event)
            except Exception:
                log.failure("subscriber {kind}: handler {handler!r} failed",
                            kind=self.kind.value, handler=self._on_event)

    def gotMessage(self, message: bytes, tag: bytes) -> None:
        """Never called: :meth:`messageReceived` does not split one-frame messages."""
        raise NotImplementedError("EventSubscriber hands whole events to on_event")

    def _call(self, handler: Callable[..., None], *args: Any) -> None:
        try:
            handler(*args)
        except Exception:
            log.failure("subscriber {kind}: handler {handler!r} failed", kind=self.kind.value,
                        handler=handler)

    def _log_malformed(self, exc: MalformedEvent, url: str) -> None:
        log.warn("malformed event ({kind}) on {url}: {message}", kind=exc.kind, url=url,
                 message=str(exc))

    def __repr__(self) -> str:
        return f"<EventSubscriber {self.kind.value} {self.url_label}>"
