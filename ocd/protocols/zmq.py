"""ZeroMQ PUB/SUB on the Twisted reactor: two-frame events in and out.

Wire contract (events.md, section 1): a message is exactly two frames,
``topic`` and a JSON object. Publishers bind, subscribers connect and filter
by topic prefix. This module only moves frames: it turns received frames
into :class:`ocd.core.events.Event` values (or :class:`MalformedEvent`, handed to
``on_malformed`` and dropped) and hands them on; it decides nothing.

Why not txZMQ (see ``docs/zmq.md``): its reader drains a socket in an
unbounded loop (a 100k burst froze the reactor for ~2 s), its modules import
the global reactor at import time (which breaks ``twistd -r``), ``send``
schedules reads on the global reactor, a failed ``bind`` in its constructor
leaks a socket that makes ``Context.term()`` hang, and its PUB/SUB classes
join/split ``tag\\0message`` frames. What we need is small: a PUB socket, and
a SUB socket whose ZeroMQ FD is registered with ``reactor.addReader``.

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
from typing import Any, Callable, Iterable, Sequence

import zmq
from twisted.logger import Logger
from zope.interface import implementer
from twisted.internet.interfaces import IReadDescriptor

from ocd.core.events import Event, MalformedEvent, UrlKind, parse_frames, to_frames

#: Milliseconds a closing socket keeps trying to send what is queued (so a
#: last FINISH or answer still leaves while OCD stops).
LINGER_MS = 1000
#: Messages read per reactor turn, and the time budget of one turn.
MAX_BATCH = 256
MAX_BATCH_SECONDS = 0.01
#: Queue limits: a burst of telescope events is kept, not silently dropped.
RCVHWM = 200_000
SNDHWM = 100_000

log = Logger(namespace="ocd.zmq")

_NOBLOCK = int(zmq.NOBLOCK)


class BindError(Exception):
    """A URL could not be bound (or connected): the message names it and why."""


def _attach(socket: zmq.Socket, urls: Sequence[str], attach: Callable[[str], None],
            what: str) -> None:
    """Bind or connect ``socket`` to every URL; on failure close it and say which URL.

    ``what`` formats the message, e.g. ``"cannot bind {url}"``.
    """
    for url in urls:
        try:
            attach(url)
        except zmq.ZMQError as exc:
            socket.close(linger=0)
            raise BindError(f"{what.format(url=url)}: {_reason(exc)}") from None


def _reason(exc: zmq.ZMQError) -> str:
    if exc.errno == _errno.EADDRINUSE:
        return "address already in use"
    if exc.errno in (_errno.EADDRNOTAVAIL,):
        return "address not available on this machine"
    if exc.errno in (_errno.EINVAL, getattr(zmq, "EPROTONOSUPPORT", -1), _errno.ENODEV):
        return f"bad address ({exc.strerror})"
    return exc.strerror or str(exc)


class Bus:
    """One per program; owns the ZeroMQ context and every socket made from it.

    Open it after twistd's fork (in ``startService``): a context does not
    survive ``fork``.
    """

    def __init__(self, reactor: Any = None) -> None:
        self._reactor = reactor
        self._context: zmq.Context | None = None
        self._closables: list[Any] = []

    @property
    def reactor(self) -> Any:
        if self._reactor is None:
            from twisted.internet import reactor

            self._reactor = reactor
        return self._reactor

    @property
    def is_open(self) -> bool:
        return self._context is not None

    def open(self) -> None:
        if self._context is None:
            self._context = zmq.Context()

    def close(self) -> None:
        """Close every socket made here (LINGER bounded), then the context."""
        for item in reversed(self._closables):
            try:
                item.close()
            except Exception:
                log.failure("closing {item!r}", item=item)
        self._closables = []
        if self._context is not None:
            self._context.term()
            self._context = None

    def _socket(self, kind: int) -> zmq.Socket:
        if self._context is None:
            raise RuntimeError("Bus.open() must be called before making sockets")
        return self._context.socket(kind)

    def _forget(self, item: Any) -> None:
        if item in self._closables:
            self._closables.remove(item)

    def publisher(self, urls: Sequence[str]) -> "EventPublisher":
        """A PUB socket bound to every URL now; raises :class:`BindError`."""
        publisher = EventPublisher(self, self._socket(zmq.PUB), urls)
        self._closables.append(publisher)
        return publisher

    def subscriber(
        self,
        urls: Sequence[str],
        kind: UrlKind,
        topics: Iterable[str],
        on_event: Callable[[Event], None],
        on_malformed: Callable[[MalformedEvent, str], None] | None = None,
    ) -> "EventSubscriber":
        """One SUB socket for one kind of URL, connected to each of ``urls``."""
        subscriber = EventSubscriber(
            self, self._socket(zmq.SUB), urls, kind, topics, on_event, on_malformed
        )
        self._closables.append(subscriber)
        return subscriber


class EventPublisher:
    """A bound PUB socket that sends events as two frames."""

    def __init__(self, bus: Bus, socket: zmq.Socket, urls: Sequence[str]) -> None:
        self._bus = bus
        self._socket: zmq.Socket | None = socket
        self.urls = list(urls)
        socket.setsockopt(zmq.LINGER, LINGER_MS)
        socket.setsockopt(zmq.SNDHWM, SNDHWM)
        _attach(socket, self.urls, socket.bind, "cannot bind {url}")
        self.sent = 0
        self.dropped = 0

    def publish(self, event: Event) -> None:
        self.publish_raw(to_frames(event))

    def publish_raw(self, frames: list[bytes]) -> None:
        """Send any list of frames as one message (tests and replay)."""
        if self._socket is None:
            raise RuntimeError(f"publisher on {self.urls} is closed")
        try:
            self._socket.send_multipart(frames, flags=zmq.NOBLOCK)
            self.sent += 1
        except zmq.Again:
            self.dropped += 1
            log.warn("publisher on {urls} is full: message dropped", urls=self.urls)

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close(linger=LINGER_MS)
            self._socket = None
        self._bus._forget(self)

    def __repr__(self) -> str:
        return f"<EventPublisher {' '.join(self.urls)}>"


@implementer(IReadDescriptor)
class EventSubscriber:
    """A SUB socket on the reactor for one kind of URL.

    Reads at most :data:`MAX_BATCH` messages (or :data:`MAX_BATCH_SECONDS`)
    per reactor turn and reschedules the rest. A message that is not exactly
    two frames is malformed (never split like txZMQ does).
    """

    def __init__(
        self,
        bus: Bus,
        socket: zmq.Socket,
        urls: Sequence[str],
        kind: UrlKind,
        topics: Iterable[str],
        on_event: Callable[[Event], None],
        on_malformed: Callable[[MalformedEvent, str], None] | None = None,
        max_batch: int = MAX_BATCH,
    ) -> None:
        self._bus = bus
        self._reactor = bus.reactor
        self._socket: zmq.Socket | None = socket
        self.urls = list(urls)
        self.kind = kind
        self.url_label = " ".join(self.urls)
        self._on_event = on_event
        self._on_malformed = on_malformed or self._log_malformed
        self._max_batch = max_batch
        self._scheduled: Any = None
        self.received = 0
        socket.setsockopt(zmq.LINGER, 0)
        socket.setsockopt(zmq.RCVHWM, RCVHWM)
        self.topics: list[str] = []
        for topic in topics:
            self.subscribe(topic)
        _attach(socket, self.urls, socket.connect, f"cannot connect to {{url}} ({kind.value})")
        self._fd = socket.getsockopt(zmq.FD)
        self._reactor.addReader(self)
        self._schedule()

    def subscribe(self, topic: str) -> None:
        """Add a topic prefix (``""`` is everything)."""
        if self._socket is not None and topic not in self.topics:
            self._socket.setsockopt(zmq.SUBSCRIBE, topic.encode("utf-8"))
            self.topics.append(topic)

    # -- IReadDescriptor ---------------------------------------------------
    def fileno(self) -> int:
        return self._fd if self._socket is not None else -1

    def logPrefix(self) -> str:
        return f"zmq-sub-{self.kind.value}"

    def doRead(self) -> None:
        self._read_batch()

    def connectionLost(self, reason: Any) -> None:
        if self._socket is not None:
            log.warn("subscriber {kind} lost its descriptor: {reason}", kind=self.kind.value,
                     reason=reason)
            self._reactor.removeReader(self)

    # -- reading -----------------------------------------------------------
    def _schedule(self) -> None:
        if self._scheduled is None or not self._scheduled.active():
            self._scheduled = self._reactor.callLater(0, self._read_batch)

    def _read_batch(self) -> None:
        if self._scheduled is not None and self._scheduled.active():
            self._scheduled.cancel()
        self._scheduled = None
        socket = self._socket
        if socket is None:
            return
        deadline = time.perf_counter() + MAX_BATCH_SECONDS
        # Frames are read as by recv_multipart, but each received Frame carries
        # its RCVMORE flag: recv_multipart asks for it with getsockopt, which
        # pyzmq maps through an enum per frame (measured: 2.4 -> 1.5 us per event).
        recv = socket.recv
        kind, label = self.kind, self.url_label
        on_event, on_malformed = self._on_event, self._on_malformed
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
                log.error("subscriber {kind}: receive failed: {error}", kind=kind.value,
                          error=str(exc))
                return
            self.received += 1
            try:
                event = parse_frames(frames, kind, label)
            except MalformedEvent as exc:
                self._call(on_malformed, exc, label)
            except Exception as exc:  # a parser bug must not stop the reader
                log.failure("subscriber {kind}: parsing a message failed", kind=kind.value)
                self._call(on_malformed, MalformedEvent("parse_error", repr(exc)), label)
            else:
                try:
                    on_event(event)
                except Exception:
                    log.failure("subscriber {kind}: handler {handler!r} failed",
                                kind=kind.value, handler=on_event)
            if self._socket is None:
                return  # closed by a handler
            if clock() > deadline:
                break
        self._schedule()  # stopped early: more may wait, and the FD will not say so

    def _call(self, handler: Callable[..., None], *args: Any) -> None:
        try:
            handler(*args)
        except Exception:
            log.failure("subscriber {kind}: handler {handler!r} failed", kind=self.kind.value,
                        handler=handler)

    def _log_malformed(self, exc: MalformedEvent, url: str) -> None:
        log.warn("malformed event ({kind}) on {url}: {message}", kind=exc.kind, url=url,
                 message=str(exc))

    def close(self) -> None:
        if self._scheduled is not None and self._scheduled.active():
            self._scheduled.cancel()
        self._scheduled = None
        if self._socket is not None:
            self._reactor.removeReader(self)
            self._socket.close(linger=0)
            self._socket = None
        self._bus._forget(self)

    def __repr__(self) -> str:
        return f"<EventSubscriber {self.kind.value} {self.url_label}>"
