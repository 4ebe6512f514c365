"""``ocd run_shot``: run one HETDEX shot by hand (shots.md section 3).

The same :class:`ocd.run_shot.ShotRunner` as ``ocd run``. In order:

1. ``-m`` must be a JSON object (else exit 2);
2. with ``-e``, bind the ``ocd_run_shot`` URL picked by ``-N`` and shake
   hands with the main loop (events.md 3.4): with ``-c`` a failed handshake
   aborts (exit 3), and a reply that reports a running shot refuses this
   one (exit 1, naming it) unless ``--force``; without ``-c`` the shot goes
   on after ``--timeout``;
3. record ``obs_number`` in the observation-number table: a number already
   taken is refused (exit 2) before anything moves; a number that cannot be
   recorded (database down, access denied) is refused too (exit 1, naming
   the database's error), since OCD could later hand the same number out
   again; ``--force`` runs the shot anyway, with a warning;
4. run the shot, emitting ``ocd.run_shot.*`` on the bound URL (with ``-e``)
   or only to the log; Ctrl+C or SIGTERM ends the children and still emits
   FINISH with the error.

Exit status: 0 when the shot succeeded, 1 when it failed, 2 for bad input,
3 when ``-c`` could not reach the main loop.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Callable

from twisted.logger import Logger

from ocd.cli import EXIT_FAILED, EXIT_OK, EXIT_UNREACHABLE, EXIT_USAGE
from ocd.config import Config

log = Logger(namespace="ocd.commands.run_shot")


class UsageError(Exception):
    """Bad input on the command line (exit 2)."""


def parse_metadata(text: str | None) -> dict[str, Any]:
    """``-m``: a JSON object, or nothing."""
    if text is None or text == "":
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise UsageError(f"-m/--metadata is not valid JSON ({exc}): {text!r}") from None
    if not isinstance(value, dict):
        raise UsageError(
            f"-m/--metadata must be a JSON object such as '{{\"QIFU\": \"000\"}}', "
            f"got a {type(value).__name__}: {text!r}"
        )
    return value


def request_from_args(args: argparse.Namespace, metadata: dict[str, Any]) -> Any:
    """The shot of the positional arguments; the azimuth argument replaces ``az``."""
    from ocd.services.shot_runner import ShotRequest

    qifu = metadata.get("QIFU")
    return ShotRequest(
        shotid=args.shotid,
        obs_number=args.obs_number,
        ra=args.ra,
        dec=args.dec,
        azimuth=args.azimuth,
        track=args.track,
        exptimes=(args.exp01, args.exp02, args.exp03),
        metadata=metadata,
        forced_az=args.azimuth,
        qifu=None if qifu is None else str(qifu),
    )


def _say(out: Any, message: str) -> None:
    print(f"ocd run_shot: {message}", file=out, flush=True)


def check_programs(config: Config, out: Any) -> int | None:
    """Say which programs the shot will run; exit 2 when one cannot be found."""
    from ocd.services.programs import missing_detail, resolve_programs

    programs = resolve_programs(config)
    for program in programs:
        _say(out, ("WARNING: " if program.standin else "") + program.describe())
    missing = missing_detail(programs)
    if missing is not None:
        _say(out, f"cannot run the shot: {missing} (set the PATH, or the option in the "
                  "configuration file)")
        return EXIT_USAGE
    return None


async def record_obsnum(config: Config, obs_number: int, shotid: str, reactor: Any, out: Any,
                        force: bool = False) -> int | None:
    """Record the number; an exit status when the shot must not run, else None."""
    from ocd.services.obsnum import ObsnumPool, ObsnumTaken, ObsnumUnavailable

    pool = ObsnumPool(config, reactor)
    pool.startService()
    try:
        await pool.record(obs_number, shotid)
    except ObsnumTaken as exc:
        _say(out, f"refused: {exc}")
        return EXIT_USAGE
    except ObsnumUnavailable as exc:
        if not force:
            _say(out, f"refused: observation number {obs_number} cannot be recorded ({exc}); "
                      "the shot does not run (--force runs it anyway)")
            return EXIT_FAILED
        _say(out, f"WARNING: observation number {obs_number} not recorded ({exc}); running "
                  "anyway because of --force: OCD may hand the same number out again")
    finally:
        pool.stopService()
    return None


async def run_shot(args: argparse.Namespace, config: Config, reactor: Any, out: Any,
                   on_runner: Callable[[Any], None] = lambda runner: None) -> int:
    """The whole command on a running reactor; returns the exit status."""
    from ocd.protocols.process import ProcessRunner
    from ocd.services.shot_runner import ShotRunner

    try:
        metadata = parse_metadata(args.metadata)
        request = request_from_args(args, metadata)
    except UsageError as exc:
        _say(out, str(exc))
        return EXIT_USAGE

    bus = client = None
    emit: Callable[[str, dict], None] = _log_event
    if args.emit_events:
        bus, client, status = await _connect(args, config, reactor, out)
        if status is not None:
            return status
        emit = client.emit
    try:
        status = await record_obsnum(config, request.obs_number, request.shotid, reactor, out,
                                     force=bool(getattr(args, "force", False)))
        if status is not None:
            return status
        processes = ProcessRunner(reactor, config.get_float("run_shot", "kill_grace"))
        runner = ShotRunner(config, emit, processes, reactor)
        on_runner(runner)
        outcome = await runner.run(request)
    finally:
        if client is not None:
            client.close()
        if bus is not None:
            bus.close()
    if outcome.ok:
        _say(out, f"shot {request.shotid} (obs {request.obs_number}) done")
        return EXIT_OK
    _say(out, f"shot {request.shotid} (obs {request.obs_number}) failed: {outcome.error}")
    return EXIT_FAILED


def describe_running(shots: Any) -> str:
    """``shot DEX00001 (observation 1001, by ocd)`` for each running shot; "" for none."""
    if not isinstance(shots, list):
        return ""
    parts = []
    for shot in shots:
        if isinstance(shot, dict):
            obs = shot.get("obs_number")
            where = "observation being reserved" if obs is None else f"observation {obs}"
            parts.append(f"shot {shot.get('shotid')} running ({where}, by {shot.get('by')})")
    return ", ".join(parts)


def _log_event(topic: str, fields: dict) -> None:
    log.info("event {topic} {fields}", topic=topic, fields=json.dumps(fields, default=str)[:500])


async def _connect(args: argparse.Namespace, config: Config, reactor: Any, out: Any) -> tuple:
    """Bind, shake hands: ``(bus, client, None)`` or ``(None, None, exit status)``."""
    from ocd.protocols.control import ControlClient
    from ocd.protocols.curve import client_settings
    from ocd.protocols.zmq import BindError, Bus

    bind_url = config.get_url_at("ocd_run_shot", "run_shot", "n_ocd_run_shot")
    main_urls = config.get_urls("urls", "ocd_main_loop")
    curve = client_settings(config)
    bus = Bus(reactor)
    bus.open()
    try:
        client = ControlClient(bus, [bind_url], main_urls, reactor=reactor, curve=curve)
    except BindError as exc:
        bus.close()
        _say(out, f"cannot emit events: {exc}")
        return None, None, EXIT_USAGE
    reply = await client.handshake_reply(args.timeout)
    if reply is not None and args.wait_for_connection:
        running = describe_running(reply.get("shots_running"))
        if running and not getattr(args, "force", False):
            client.close()
            bus.close()
            _say(out, f"refused: the OCD main loop reports {running}; running another shot "
                      "would move the telescope under it (--force runs it anyway)")
            return None, None, EXIT_FAILED
        if running:
            _say(out, f"WARNING: the OCD main loop reports {running}; running anyway because "
                      "of --force")
    if reply is None:
        where = " ".join(main_urls)
        if args.wait_for_connection:
            client.close()
            bus.close()
            _say(out, f"no answer from the OCD main loop on {where} within {args.timeout:g} s "
                      f"(is `ocd run` running and listening on {bind_url}?): shot not started")
            return None, None, EXIT_UNREACHABLE
        _say(out, f"WARNING: no answer from the OCD main loop on {where} within "
                  f"{args.timeout:g} s: emitting on {bind_url} anyway")
    return bus, client, None


def main(args: argparse.Namespace, config: Config) -> int:
    from twisted.internet import defer

    from ocd.commands import react
    from ocd.logs import start_logging

    try:
        parse_metadata(args.metadata)  # bad input fails before anything starts
    except UsageError as exc:
        _say(sys.stderr, str(exc))
        return EXIT_USAGE
    status = check_programs(config, sys.stderr)
    if status is not None:
        return status
    if args.emit_events:
        from ocd.protocols.curve import client_settings

        # -N out of range or incomplete keys: exit 2 now, not after the shot started
        config.get_url_at("ocd_run_shot", "run_shot", "n_ocd_run_shot")
        client_settings(config)
    start_logging(config, program="run_shot")

    def work(reactor: Any) -> defer.Deferred[int]:
        runners: list[Any] = []
        shot = defer.ensureDeferred(run_shot(args, config, reactor, sys.stderr,
                                             on_runner=runners.append))

        status: defer.Deferred[int] = defer.Deferred()

        def settle(code: int) -> None:
            if not status.called:
                status.callback(code)

        def on_shutdown() -> Any:
            # Ctrl+C / SIGTERM: end the children, and let FINISH go out first.
            if runners and runners[-1].running is not None and not status.called:
                runners[-1].stop()
                waiting: defer.Deferred[None] = defer.Deferred()
                status.addBoth(lambda result: (waiting.callback(None), result)[1])
                return waiting
            settle(EXIT_FAILED)  # stopped before a shot ran
            return None

        def failed(failure: Any) -> int:
            log.failure("ocd run_shot: unexpected error", failure)
            return EXIT_FAILED

        reactor.addSystemEventTrigger("before", "shutdown", on_shutdown)
        shot.addCallbacks(int, failed).addCallback(settle)
        return status

    return react(work)
