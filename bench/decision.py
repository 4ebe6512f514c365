"""Benchmark: from the event that makes a shot possible to the first ``syscmd``.

Run: ``.venv/bin/python bench/decision.py [--n 100]`` (MariaDB on
127.0.0.1:3306 as root without password; a throwaway database is created
and dropped). About 20 s.

In one process, on the real reactor: the service tree of ``ocd run``
(``ocd.app.makeService``) with observation numbers on MariaDB, a
shot list of one shot that crosses the HET elevation at a dark time T, and
the stand-in ``syscmd`` as ``[run_shot] syscmd_command``. A raw pyzmq PUB
bound on the TCS URL plays the telescope: heartbeat, good weather, good
guider metrology and a closed shutter at T, so the only blocker is
``shutter_closed``. Then, 100 times:

1. arm over the wire (a raw PUB on the ``ocd_allow_hetdex`` URL), wait until
   the decision is ``wait`` with the one blocker ``shutter_closed``;
2. send ``legacy.shutter.status`` open and take the time;
3. the main loop folds it, decides ``run``, reserves the observation number
   on MariaDB, emits START, reads the shuffle file and starts ``syscmd``:
   timed when ``ProcessRunner.start`` returns (the child is forked) and when
   the stand-in writes its log line (the child's Python is running);
4. the stand-in is told to fail every call, so the shot fails at once and
   OCD disarms itself; the shutter is closed again for the next round.

Baseline, in the same run: spawning the same stand-in ``syscmd`` directly
with ``ProcessRunner`` (fork, and fork to its log line). The ratios say how
much OCD adds on top of starting the program at all. Target: p99 of
"to syscmd forked" under 50 ms.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ocd.config import Config  # noqa: E402
from ocd.sim.ports import free_url  # noqa: E402
from ocd.sim.simulate import standin_command  # noqa: E402

TARGET_P99 = 0.050
#: First rounds, not counted: the first MariaDB connection, the first decision.
WARMUP = 2


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def line(name: str, samples: list[float]) -> str:
    return (f"{name:<46} n={len(samples):4d}  p50 {statistics.median(samples) * 1e3:7.2f} ms"
            f"  p99 {pct(samples, 0.99) * 1e3:7.2f} ms  max {max(samples) * 1e3:7.2f} ms")


def frames(topic: str, data_time: float, **fields: Any) -> list[bytes]:
    system, source, key = topic.split(".", 2)
    payload = dict(fields, __system=system, __source=source, __key=key,
                   __data_time=data_time, __wire_time=time.time(), __data=False)
    return [topic.encode(), json.dumps(payload).encode()]


def setup_files(workdir: Path) -> tuple[Path, float]:
    """One observable shot (n_obs large) and its shuffle file; the time T it crosses."""
    from ocd.sim.night import DEFAULT_DATE, night_span
    from ocd.sim.shotlist import make_sample_shots, shot_list_text
    from ocd.sim.shuffle_files import write_shuffle_files

    dusk, _dawn = night_span(DEFAULT_DATE, horizon_deg=-12.0)
    shot = make_sample_shots(dusk + 3600, dusk + 3 * 3600, 1, seed=3)[0]
    shot = dataclasses.replace(shot, n_obs=100000, priority=1)
    shot_file = workdir / "shots.txt"
    shot_file.write_text(shot_list_text([shot]), encoding="utf-8")
    write_shuffle_files([shot], workdir)
    return shot_file, shot.crossing


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100, help="rounds (default 100)")
    args = parser.parse_args()
    try:
        import pymysql

        admin = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="",
                                autocommit=True, connect_timeout=3)
    except Exception as exc:
        print(f"bench/decision: needs MariaDB on 127.0.0.1:3306 as root: {exc}", file=sys.stderr)
        return 1
    database = f"ocd_bench_{uuid.uuid4().hex[:10]}"
    admin.cursor().execute(f"CREATE DATABASE `{database}`")
    try:
        with tempfile.TemporaryDirectory(prefix="ocd-bench-decision-") as tmp:
            return run(args.n, Path(tmp), database)
    finally:
        admin.cursor().execute(f"DROP DATABASE IF EXISTS `{database}`")
        admin.close()


def run(n: int, workdir: Path, database: str) -> int:
    import zmq
    from twisted.internet import defer, task

    from ocd.sim.standin import read_calls

    shot_file, crossing = setup_files(workdir)
    standin_log = workdir / "standins.jsonl"
    os.environ.update(OCD_STANDIN_LOG=str(standin_log), OCD_STANDIN_SPEEDUP="1000",
                      OCD_SYSCMD_FAIL_ON=",".join(str(i) for i in range(1, 10 * n + 200 + WARMUP)))
    tcs_url, allow_url = free_url(), free_url()
    config = Config.load(None, [
        ("general", "log_level", "warn"),
        ("urls", "event_urls", tcs_url), ("urls", "ocd_db_replay", ""),
        ("urls", "ocd_main_loop", free_url()), ("urls", "ocd_allow_hetdex", allow_url),
        ("urls", "ocd_config", free_url()),
        ("urls", "ocd_run_shot", f"{free_url()} {free_url()}"),
        ("dates", "clock", "tcs"),
        # the sample night's events carry its own date, far from the machine's
        # clock: without this, every one is refused as malformed
        ("dates", "max_time_offset", "0"),
        ("database", "backend", "mysql"), ("database", "host", "127.0.0.1"),
        ("database", "port", "3306"), ("database", "user", "root"), ("database", "password", ""),
        ("database", "database", database), ("database", "first_obsnum", "1000"),
        ("shots", "shot_file", str(shot_file)), ("shots", "state_db", str(workdir / "state.sqlite")),
        ("paths", "shuffle_shot", str(workdir)),
        ("run_shot", "syscmd_command", standin_command("ocd.sim.syscmd", "{switch}", "{command}")),
        ("run_shot", "dither_command", "true"),
        ("general", "alert_command", ""),
    ])
    ctx = zmq.Context.instance()
    tcs = ctx.socket(zmq.PUB)
    tcs.setsockopt(zmq.LINGER, 0)
    tcs.bind(tcs_url)
    arm = ctx.socket(zmq.PUB)
    arm.setsockopt(zmq.LINGER, 0)
    arm.bind(allow_url)
    result: dict[str, Any] = {}

    async def bench(reactor: Any) -> None:
        from ocd.protocols.process import ProcessRunner
        from ocd.app import makeService

        from twisted.logger import (FilteringLogObserver, LogLevel, LogLevelFilterPredicate,
                                    globalLogBeginner, textFileLogObserver)

        # Every shot fails on purpose: only show what is worse than that.
        globalLogBeginner.beginLoggingTo([FilteringLogObserver(
            textFileLogObserver(sys.stderr), [LogLevelFilterPredicate(LogLevel.critical)])],
            redirectStandardIO=False)

        def sleep(seconds: float) -> defer.Deferred:
            return task.deferLater(reactor, seconds, lambda: None)

        async def until(condition: Any, timeout: float, what: str) -> None:
            deadline = time.monotonic() + timeout
            while not condition():
                if time.monotonic() > deadline:
                    raise RuntimeError(f"timed out waiting for {what}")
                await sleep(0.002)

        service = makeService(config, reactor)
        loop = service.getServiceNamed("main_loop")
        service.startService()
        try:
            now = [crossing]

            def send(topic: str, **fields: Any) -> None:
                tcs.send_multipart(frames(topic, now[0], **fields))

            def good_sky(shutter: str) -> None:
                send("tcs.receiver.heartbeat")
                send("legacy.weather.status", humidity=30.0, wind_speed=3.0, ambtemp=5.0,
                     dewpoint=-10.0)
                for probe in (1, 2):
                    send(f"pas.Guider{probe}.metrology_data", fwhm=1.2, transparency=0.95,
                         valid=True)
                send("legacy.shutter.status", state=shutter)

            def armed() -> bool:
                return loop.arming.state == "allowed" and not loop.failed_shot

            def only_shutter() -> bool:
                d = loop.last_decision
                return d is not None and tuple(d.blockers) == ("shutter_closed",)

            spawned: list[float] = []
            original_start = loop.processes.start

            def timed_start(argv: list[str], **kwargs: Any) -> Any:
                child = original_start(argv, **kwargs)
                spawned.append(time.perf_counter())
                return child

            loop.processes.start = timed_start
            started: list[float] = []

            def on_publish(event: Any) -> None:
                if event.topic == "ocd.run_shot.run" and event.payload.get("exec_status") == 0:
                    started.append(time.perf_counter())

            loop.listeners.append(on_publish)
            # Slow joiners: send until the main loop has seen the TCS and the arming.
            ident = uuid.uuid4().hex
            deadline = time.monotonic() + 10
            while not (armed() and loop.telescope is not None and only_shutter()):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"set-up failed: decision {loop.last_decision}")
                good_sky("closed")
                arm.send_multipart(frames("ocd.states.hetdex_allowed", now[0], allow=True,
                                          id=ident))
                await sleep(0.05)

            to_fork, to_child, to_start = [], [], []
            for i in range(n + WARMUP):
                now[0] += 1.0
                good_sky("closed")
                if not armed():
                    arm.send_multipart(frames("ocd.states.hetdex_allowed", now[0], allow=True,
                                              id=f"{ident}-{i}"))
                await until(lambda: armed() and only_shutter() and loop.runner.running is None
                            and loop.shot.state != "running", 5, "armed, waiting on the shutter")
                await sleep(0.01)  # let the reactor go quiet
                spawned.clear()
                started.clear()
                calls_before = len(read_calls(standin_log, "syscmd"))
                wall0, t0 = time.time(), time.perf_counter()
                send("legacy.shutter.status", state="open")
                await until(lambda: bool(spawned), 5, "the first syscmd")
                to_fork.append(spawned[0] - t0)
                to_start.append(started[0] - t0)
                await until(lambda: len(read_calls(standin_log, "syscmd")) > calls_before, 5,
                            "the stand-in's log line")
                to_child.append(read_calls(standin_log, "syscmd")[-1]["time"] - wall0)
                await until(lambda: loop.runner.running is None, 5, "the shot to end")

            # Baseline: the same stand-in, spawned directly.
            runner = ProcessRunner(reactor)
            argv = config.get_command("run_shot", "syscmd_command")
            argv = [a.replace("{switch}", "-T").replace("{command}", "go_next(a=1)") for a in argv]
            base_fork, base_child = [], []
            for _ in range(n):
                calls_before = len(read_calls(standin_log, "syscmd"))
                wall0, t0 = time.time(), time.perf_counter()
                child = runner.start(argv, name="syscmd", timeout=10)
                base_fork.append(time.perf_counter() - t0)
                try:
                    await child.result
                except Exception:
                    pass  # told to fail, like the ones above
                calls = read_calls(standin_log, "syscmd")
                assert len(calls) > calls_before
                base_child.append(calls[-1]["time"] - wall0)
            result.update(cold=to_fork[:WARMUP], to_fork=to_fork[WARMUP:],
                          to_start=to_start[WARMUP:], to_child=to_child[WARMUP:],
                          base_fork=base_fork,
                          base_child=base_child, shots=loop.counters.get("shots.started"))
        finally:
            loop.processes.start = original_start
            await service.stopService()

    began = time.perf_counter()
    try:
        task.react(lambda reactor: defer.ensureDeferred(bench(reactor)))
    except SystemExit as exit:  # react() always exits
        if exit.code not in (0, None):
            return int(exit.code) if isinstance(exit.code, int) else 1
    tcs.close()
    arm.close()
    if "to_fork" not in result:
        return 1
    print(f"bench/decision: {n} rounds, observation numbers on MariaDB, "
          f"{time.perf_counter() - began:.1f} s in all")
    cold = ", ".join(f"{t * 1e3:.1f}" for t in result["cold"])
    print(f"(first {WARMUP} rounds, cold, not counted: {cold} ms to syscmd forked)")
    print(line("shutter open -> START emitted (decide+obsnum)", result["to_start"]))
    print(line("shutter open -> first syscmd forked (OCD)", result["to_fork"]))
    print(line("shutter open -> syscmd's Python running", result["to_child"]))
    print(line("baseline: fork the stand-in directly", result["base_fork"]))
    print(line("baseline: spawn -> stand-in's Python running", result["base_child"]))
    ratio = statistics.median(result["to_child"]) / statistics.median(result["base_child"])
    fork_ratio = statistics.median(result["to_fork"]) / statistics.median(result["base_fork"])
    print(f"ratio p50, event to syscmd forked / fork directly: {fork_ratio:.1f}")
    print(f"ratio p50, event to syscmd's Python running / spawn to it directly: {ratio:.2f}")
    added = statistics.median(result["to_child"]) - statistics.median(result["base_child"])
    print(f"OCD's own share (p50): {added * 1e3:.2f} ms")
    p99 = pct(result["to_fork"], 0.99)
    verdict = "met" if p99 < TARGET_P99 else "MISSED"
    print(f"target p99 < {TARGET_P99 * 1e3:.0f} ms (event to syscmd forked): {verdict} "
          f"({p99 * 1e3:.2f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
