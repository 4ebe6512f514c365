"""``ocd db_replay DB``: play a TCS event database back to a running ``ocd run``.

Binds the ``[urls] ocd_db_replay`` URLs (or ``--ocd-db-replay``), shakes
hands with the main loop (``-t/--timeout``), then sends every selected event
on the absolute schedule of :class:`ocd.services.replay_schedule.Replayer`. Progress: a bar on
a terminal, otherwise a log line every ``[db_replay] progress_interval``
seconds. The end, or Ctrl+C, prints the same summary.
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime, timezone
from typing import Any

from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.logger import Logger

from ocd.cli import EXIT_OK, EXIT_UNREACHABLE, EXIT_USAGE
from ocd.config import Config
from ocd.logs import console_through
from ocd.core.topics import Topic
from ocd.services.replay import ReplayDatabase, ReplayError
from ocd.services.replay_schedule import Replayer

log = Logger(namespace="ocd.db_replay")


def _clock_text(t: float | None) -> str:
    if t is None:
        return "--:--:--"
    return datetime.fromtimestamp(t, timezone.utc).strftime("%H:%M:%S")


#: Remaining times beyond this (a --speedup of 1e-300) are not worth a number.
LONGEST_SHOWN = 100 * 365.25 * 86400.0


def _duration(seconds: float) -> str:
    """``1:02:03`` or ``2:03``: a remaining time as a person reads it."""
    if not seconds <= LONGEST_SHOWN:  # also inf and nan: int() of them raised every report
        return "more than a century"
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class MainLoopWatch:
    """Warns when the main loop stops answering heartbeats during a replay.

    Every ``timeout`` seconds an enquiry goes out on the replay URL (as in
    the handshake); no answer within ``timeout`` is a warning (once), an
    answer after that an info line. A replay into a dead main loop is time
    lost without it.
    """

    def __init__(self, client: Any, urls: list[str], timeout: float, reactor: Any):
        from twisted.internet.task import LoopingCall

        self.client, self.urls, self.timeout = client, urls, max(timeout, 0.5)
        self.silent_since: float | None = None
        self._reactor = reactor
        self._asking = False
        self._loop = LoopingCall(self.check)
        self._loop.clock = reactor
        self._loop.start(self.timeout, now=False).addErrback(
            lambda failure: log.failure("watching the main loop stopped", failure))

    def check(self) -> None:
        if self._asking:
            return
        self._asking = True
        asked = self._reactor.seconds()
        d = self.client.handshake(self.timeout)
        d.addCallback(self._answered, asked)
        d.addErrback(lambda failure: log.failure("heartbeat to the main loop failed", failure))

    def _answered(self, ok: bool, asked: float) -> None:
        self._asking = False
        if not self._loop.running:
            return
        if not ok and self.silent_since is None:
            self.silent_since = asked
            log.warn("the main loop stopped answering: no heartbeat reply on {urls} for "
                     "{timeout:.0f} s; events sent meanwhile may be lost (is `ocd run` alive?)",
                     urls=" ".join(self.urls), timeout=self.timeout)
        elif ok and self.silent_since is not None:
            log.info("the main loop answers again after {seconds:.0f} s of silence",
                     seconds=self._reactor.seconds() - self.silent_since)
            self.silent_since = None

    def stop(self) -> None:
        if self._loop.running:
            self._loop.stop()


class Progress:
    """Reports a running replay: a tqdm bar on a terminal, log lines otherwise."""

    def __init__(self, replayer: Replayer, total: int, span: tuple[float | None, float | None],
                 reactor: Any, interval: float, terminal: bool, out: Any):
        from twisted.internet.task import LoopingCall

        self.replayer, self.total, self.span = replayer, total, span
        self._last = (reactor.seconds(), 0)
        self._reactor = reactor
        self._bar = None
        if terminal:
            from tqdm import tqdm

            # One remaining time: ours (night time left / speed-up), not tqdm's
            # rate-based estimate beside it.
            self._bar = tqdm(total=total, unit="ev", file=out, dynamic_ncols=True, smoothing=0.1,
                             bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]")
            # Log lines go above the bar, never over it.
            self._through = console_through(lambda line: self._bar.write(line, file=out))
            self._through.__enter__()
            interval = 0.25
        self._loop = LoopingCall(self.tick)
        self._loop.clock = reactor
        self._loop.start(interval, now=False).addErrback(
            lambda failure: log.failure("progress reporting stopped", failure))

    def _left(self) -> float | None:
        r = self.replayer
        end = self.span[1]
        if r.night_time is None or end is None or r.serve_forever:
            return None
        return max(0.0, (end - r.night_time) / r.speedup) if r.speedup != float("inf") else None

    def tick(self) -> None:
        try:
            r = self.replayer
            left = self._left()
            left_text = "?" if left is None else _duration(left)
            if self._bar is not None:
                self._bar.n = r.pass_sent
                self._bar.set_postfix_str(f"night {_clock_text(r.night_time)} UTC, left {left_text}", refresh=False)
                self._bar.refresh()
                return
            now, sent = self._reactor.seconds(), r.sent
            rate = (sent - self._last[1]) / max(now - self._last[0], 1e-9)
            self._last = (now, sent)
            log.info("progress: {sent} of {total} events sent ({rate:.0f}/s), night time "
                     "{night} UTC, about {left} left", sent=r.pass_sent, total=self.total,
                     rate=rate, night=_clock_text(r.night_time), left=left_text)
        except Exception:
            log.failure("progress report failed")

    def close(self) -> None:
        if self._loop.running:
            self._loop.stop()
        if self._bar is not None:
            self._bar.n = self.replayer.pass_sent
            self._through.__exit__(None, None, None)
            self._bar.close()
            self._bar = None


@inlineCallbacks
def replay(config: Config, db: ReplayDatabase, urls: list[str], args: argparse.Namespace,
           reactor: Any, out: Any = None, terminal: bool | None = None) -> Deferred:
    """Fires with the exit status; messages for a person go to ``out``."""
    from ocd.protocols.control import ControlClient
    from ocd.protocols.curve import client_settings
    from ocd.protocols.zmq import BindError, Bus

    out = out if out is not None else sys.stderr
    main_urls = config.get_urls("urls", "ocd_main_loop")
    curve = client_settings(config)
    bus = Bus(reactor)
    bus.open()
    try:
        client = ControlClient(bus, bind_urls=urls, main_loop_urls=main_urls, reactor=reactor,
                               curve=curve)
    except BindError as exc:
        bus.close()
        print(f"ocd db_replay: {exc}", file=out)
        return EXIT_USAGE
    try:
        ok = yield client.handshake(args.timeout)
        if not ok:
            print(f"ocd db_replay: main loop not reachable: no answer on {' '.join(main_urls)} "
                  f"within {args.timeout:g} s (is `ocd run` running with [urls] ocd_db_replay = "
                  f"{' '.join(urls)}?)", file=out)
            return EXIT_UNREACHABLE
        total = db.count()
        if db.sort_by != "none":
            untimed = db.count_untimed()
            if untimed:
                log.warn("{n} of {total} events have no readable {field}: they are sent first",
                         n=untimed, total=total, field=db.time_field)
        sent_by_topic = TopicCounts()
        publish = client.publisher.publish_raw

        def send(frames: list[bytes]) -> None:
            publish(frames)
            sent_by_topic.add(frames[0])

        replayer = Replayer(db.events, send, reactor, args.speedup,
                            args.serve_forever, skipped=lambda: db.skipped)
        if terminal is None:
            terminal = out.isatty()
        progress = Progress(replayer, total, db.time_span(), reactor,
                            config.get_float("db_replay", "progress_interval"), terminal, out)
        watch = MainLoopWatch(client, main_urls, args.timeout, reactor)
        trigger = reactor.addSystemEventTrigger("before", "shutdown", replayer.stop)
        log.info("replaying {total} events of {path} on {urls} at speedup {speedup:g}",
                 total=total, path=str(db.path), urls=" ".join(urls), speedup=args.speedup)
        began = time.perf_counter()
        try:
            summary = yield replayer.start()
        finally:
            watch.stop()
            progress.close()
        try:
            reactor.removeSystemEventTrigger(trigger)
        except (ValueError, KeyError):
            pass
        print(f"ocd db_replay: {summary.describe()} ({time.perf_counter() - began:.1f} s measured)",
              file=out)
        answer = yield client.request(
            Topic.REPLAY_END, {"handshake_id": client.handshake_id, "sent": summary.sent,
                         "sent_by_topic": sent_by_topic.as_fields()},
            Topic.REPLAY_COUNTED, attempts=3, interval=2.0)
        print(f"ocd db_replay: {describe_count(summary.sent, answer)}"
              + (f" ({client.publisher.dropped} dropped by db_replay's own full send queue)"
                 if client.publisher.dropped else ""), file=out)
        return EXIT_OK
    finally:
        client.close()
        bus.close()
        db.close()


class TopicCounts:
    """Events sent per topic (at most :data:`MAX_TOPICS` topics, then only a total).

    OCD compares these with what it counted: only the topics it subscribes
    to ever reach it, so it needs the split to know what should have arrived.
    """

    MAX_TOPICS = 1000

    def __init__(self) -> None:
        self.counts: dict[bytes, int] = {}
        self.overflow = False

    def add(self, topic: bytes) -> None:
        counts = self.counts
        if topic in counts:
            counts[topic] += 1
        elif len(counts) < self.MAX_TOPICS:
            counts[topic] = 1
        else:
            self.overflow = True

    def as_fields(self) -> dict[str, int] | None:
        """``{topic: n}`` for the end message, or None when there were too many topics."""
        if self.overflow:
            return None
        return {t.decode("utf-8", "replace"): n for t, n in self.counts.items()}


def describe_count(sent: int, answer: Any) -> str:
    """db_replay's line about what OCD counted of the replay."""
    if answer is None:
        return (f"{sent} events sent; OCD did not answer the count at the end (it cannot say "
                "how many arrived)")
    counted, expected, lost = answer.get("counted"), answer.get("expected"), answer.get("lost")
    if counted is None:
        return f"{sent} events sent; OCD missed the start of this replay and cannot count it"
    return (f"{sent} events sent, {expected} on the topics OCD subscribes to; OCD counted "
            f"{counted}: {lost} lost")


def replay_urls(config: Config) -> list[str]:
    """The URLs to bind; raises ReplayError when none are given."""
    urls = config.get_urls("urls", "ocd_db_replay")
    if not urls:
        raise ReplayError(
            "no URL to publish on: [urls] ocd_db_replay is empty (the master configuration "
            "leaves it empty); give --ocd-db-replay URL or a replay configuration with --config")
    return urls


def main(args: argparse.Namespace, config: Config) -> int:
    from ocd.commands import react, warn_both_sources
    from ocd.logs import start_logging

    if not args.speedup > 0:
        print(f"ocd db_replay: --speedup must be positive, not {args.speedup:g}", file=sys.stderr)
        return EXIT_USAGE
    try:
        urls = replay_urls(config)
        db = ReplayDatabase(args.db_name, topics=args.topics, sort_by=args.sort_by,
                            convert_number=not args.no_convert_number,
                            convert_bool=not args.no_convert_bool)
    except ReplayError as exc:
        print(f"ocd db_replay: {exc}", file=sys.stderr)
        return EXIT_USAGE
    warn_both_sources(config, "db_replay")
    from ocd.protocols.curve import client_settings

    client_settings(config)  # incomplete CurveZMQ keys: exit 2 before anything starts
    start_logging(config, program="db_replay")
    return react(lambda reactor: replay(config, db, urls, args, reactor))
