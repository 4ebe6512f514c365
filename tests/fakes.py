"""Fakes at the two seams the orchestrator uses: child processes and the bus.

Both run on a ``twisted.internet.task.Clock``: nothing sleeps, a scenario of
a whole shot (minutes of exposures, a lost-shot deadline, an alert command
that times out) runs in milliseconds. Each is checked against the real
interface in ``tests/test_fakes.py`` (same public methods, same
signatures), so a change to the real one breaks the fake's test, not a
scenario in a confusing way.

- :class:`FakeProcessRunner` stands in for
  :class:`ocd.protocols.process.ProcessRunner`: each child gets a scripted
  :class:`Outcome` (exit status after some seconds, or hang until stopped),
  matched by the child's ``name``; timeouts and ``terminate`` behave like the
  real runner (a timed-out or stopped child fails with ``ProcessFailed``).
- :class:`MemoryBus` stands in for :class:`ocd.protocols.zmq.Bus`:
  publishers and subscribers meet by URL, frames go through the real
  ``to_frames``/``parse_frames`` and are delivered with ``callLater(0)``,
  as a reactor turn would, only to subscribers whose topic prefixes match.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

from twisted.internet import defer

from ocd.core.events import Event, MalformedEvent, UrlKind, parse_frames, to_frames
from ocd.protocols.process import ProcessFailed, ProcessResult, _failure_message
from ocd.protocols.zmq import SNDHWM


# -- processes ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """What a scripted child does: end with ``exit_code`` after ``after`` seconds,
    or (``hang``) run until it is stopped or times out."""

    exit_code: int = 0
    after: float = 0.0
    hang: bool = False
    stderr: tuple[str, ...] = ()


OK = Outcome()
HANG = Outcome(hang=True)


def fails(exit_code: int = 1, after: float = 0.0, stderr: str = "") -> Outcome:
    return Outcome(exit_code=exit_code, after=after, stderr=(stderr,) if stderr else ())


class FakeProcess:
    """The handle :meth:`FakeProcessRunner.start` returns (like ``RunningProcess``)."""

    def __init__(self, runner: "FakeProcessRunner", name: str, argv: list[str],
                 timeout: float | None, kill_grace: float, outcome: Outcome, pid: int):
        self.runner = runner
        self.name = name
        self.argv = tuple(argv)
        self.timeout = timeout
        self.kill_grace = kill_grace
        self.outcome = outcome
        self.pid = pid
        self.result: defer.Deferred[ProcessResult] = defer.Deferred()
        self.ended: defer.Deferred[None] = defer.Deferred()
        self.stopped = False
        self.timed_out = False
        self._started = runner.reactor.seconds()
        self._calls: list[Any] = []
        clock = runner.reactor
        if not outcome.hang:
            self._calls.append(clock.callLater(outcome.after, self._end, outcome.exit_code, None))
        if timeout is not None:
            self._calls.append(clock.callLater(timeout, self._time_out))

    @property
    def done(self) -> bool:
        return self.ended.called

    def terminate(self) -> defer.Deferred[None]:
        """TERM: a scripted child ends at once, killed by the signal."""
        if not self.done:
            if not self.timed_out:
                self.stopped = True
            self._end(None, 15)
        return self.ended

    def _time_out(self) -> None:
        if not self.done:
            self.timed_out = True
            self._end(None, 15)

    def _end(self, exit_code: int | None, signal: int | None) -> None:
        if self.done:
            return
        for call in self._calls:
            if call.active():
                call.cancel()
        result = ProcessResult(
            name=self.name, argv=self.argv, exit_code=exit_code, signal=signal,
            timed_out=self.timed_out, duration=self.runner.reactor.seconds() - self._started,
            stopped=self.stopped, pid=self.pid, stderr_tail=self.outcome.stderr)
        self.runner.running.discard(self)
        self.runner.ended.append(result)
        if result.ok:
            self.result.callback(result)
        else:
            self.result.errback(ProcessFailed(_failure_message(result), result))
        self.ended.callback(None)

    def __repr__(self) -> str:
        return f"<FakeProcess {self.name} pid {self.pid}>"


class FakeProcessRunner:
    """Scripted children on a Clock; records every start (name, argv)."""

    def __init__(self, reactor: Any, kill_grace: float = 5.0,
                 script: Mapping[str, Outcome | Sequence[Outcome]] | None = None,
                 default: Outcome = OK):
        self.reactor = reactor
        self.kill_grace = kill_grace
        self.running: set[FakeProcess] = set()
        #: Every child started, in order.
        self.started: list[FakeProcess] = []
        #: The result of every child that ended, in order.
        self.ended: list[ProcessResult] = []
        self.default = default
        self._script: dict[str, list[Outcome]] = {}
        for prefix, outcomes in (script or {}).items():
            self.script(prefix, outcomes)

    def script(self, name_prefix: str, outcomes: Outcome | Sequence[Outcome]) -> None:
        """Children whose name starts with ``name_prefix`` get these outcomes in turn
        (the last one repeats)."""
        self._script[name_prefix] = [outcomes] if isinstance(outcomes, Outcome) else list(outcomes)

    def _outcome(self, name: str) -> Outcome:
        for prefix in sorted(self._script, key=len, reverse=True):
            if name.startswith(prefix):
                queue = self._script[prefix]
                return queue.pop(0) if len(queue) > 1 else queue[0]
        return self.default

    def start(
        self,
        argv: list[str],
        *,
        name: str,
        timeout: float | None,
        kill_grace: float | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
    ) -> FakeProcess:
        child = FakeProcess(self, name, [str(a) for a in argv], timeout,
                            self.kill_grace if kill_grace is None else kill_grace,
                            self._outcome(name), pid=40000 + len(self.started))
        self.started.append(child)
        self.running.add(child)
        return child

    def run(self, argv: list[str], **kwargs: Any) -> defer.Deferred[ProcessResult]:
        return self.start(argv, **kwargs).result

    def stop_all(self) -> defer.Deferred[Any]:
        return defer.DeferredList([child.terminate() for child in list(self.running)],
                                  consumeErrors=True)

    def names(self) -> list[str]:
        return [child.name for child in self.started]


# -- the bus -------------------------------------------------------------------------------


class MemoryNetwork:
    """Where the memory buses of several programs meet: bound URLs, subscribers."""

    def __init__(self, reactor: Any) -> None:
        self.reactor = reactor
        self.publishers: dict[str, "MemoryPublisher"] = {}
        self.subscribers: list["MemorySubscriber"] = []

    def deliver(self, url: str, frames: list[bytes]) -> None:
        for subscriber in list(self.subscribers):
            if url in subscriber.urls and subscriber.wants(frames[0] if frames else b""):
                self.reactor.callLater(0, subscriber.receive, list(frames))


class MemoryBus:
    """One program's bus on a :class:`MemoryNetwork`; closing it closes only its sockets."""

    def __init__(self, reactor: Any, network: MemoryNetwork | None = None) -> None:
        self.reactor = reactor
        self.network = network if network is not None else MemoryNetwork(reactor)
        self._open = False
        self._closables: list[Any] = []

    @property
    def is_open(self) -> bool:
        return self._open

    def open(self) -> None:
        self._open = True

    def close(self) -> None:
        for item in reversed(self._closables):
            item.close()
        self._closables = []
        self._open = False

    def publisher(
        self, urls: Sequence[str], channel: str = "", high_water_mark: int = SNDHWM,
        security: Any = None,
    ) -> "MemoryPublisher":
        """``security`` (CurveZMQ keys) has no meaning in memory: it is ignored."""
        from ocd.protocols.zmq import BindError

        if not self._open:
            raise RuntimeError("Bus.open() must be called before making sockets")
        for url in urls:
            if url in self.network.publishers:
                raise BindError(f"cannot bind {url}: address already in use")
        publisher = MemoryPublisher(self.network, urls, channel)
        for url in urls:
            self.network.publishers[url] = publisher
        self._closables.append(publisher)
        return publisher

    def subscriber(
        self,
        urls: Sequence[str],
        kind: UrlKind,
        topics: Iterable[str],
        on_event: Callable[[Event], None],
        on_malformed: Callable[[MalformedEvent, str], None] | None = None,
        security: Any = None,
    ) -> "MemorySubscriber":
        if not self._open:
            raise RuntimeError("Bus.open() must be called before making sockets")
        subscriber = MemorySubscriber(self.network, urls, kind, topics, on_event, on_malformed)
        self.network.subscribers.append(subscriber)
        self._closables.append(subscriber)
        return subscriber


class MemoryPublisher:
    def __init__(self, network: MemoryNetwork, urls: Sequence[str], channel: str = "") -> None:
        self._network: MemoryNetwork | None = network
        self.urls = list(urls)
        self.channel = channel
        self.sent = 0
        self.dropped = 0

    def publish(self, message: Event | bytes, tag: bytes = b"") -> bool:
        if isinstance(message, Event):
            return self.publish_raw(to_frames(message))
        return self.publish_raw([tag, message])

    def publish_raw(self, frames: list[bytes]) -> bool:
        """Deliver to every subscriber of our URLs; never full (True)."""
        if self._network is None:
            raise RuntimeError(f"publisher on {self.urls} is closed")
        self.sent += 1
        for url in self.urls:
            self._network.deliver(url, frames)
        return True

    def close(self) -> None:
        if self._network is not None:
            for url in self.urls:
                self._network.publishers.pop(url, None)
            self._network = None


class MemorySubscriber:
    def __init__(self, network: MemoryNetwork, urls: Sequence[str], kind: UrlKind,
                 topics: Iterable[str], on_event: Callable[[Event], None],
                 on_malformed: Callable[[MalformedEvent, str], None] | None) -> None:
        self._network: MemoryNetwork | None = network
        self.urls = list(urls)
        self.kind = kind
        self.url_label = " ".join(self.urls)
        self.topics: list[str] = []
        self._on_event = on_event
        self._on_malformed = on_malformed
        self.received = 0
        for topic in topics:
            self.subscribe(topic)

    def subscribe(self, tag: str | bytes) -> None:
        topic = tag.decode("utf-8") if isinstance(tag, bytes) else tag
        if topic not in self.topics:
            self.topics.append(topic)

    def wants(self, topic: bytes) -> bool:
        return any(topic.startswith(t.encode("utf-8")) for t in self.topics)

    def receive(self, frames: list[bytes]) -> None:
        if self._network is None:
            return  # closed while the message was on its way
        self.received += 1
        try:
            event = parse_frames(frames, self.kind, self.url_label)
        except MalformedEvent as exc:
            if self._on_malformed is not None:
                self._on_malformed(exc, self.url_label)
            return
        self._on_event(event)

    def close(self) -> None:
        if self._network is not None:
            if self in self._network.subscribers:
                self._network.subscribers.remove(self)
            self._network = None
