"""A whole simulated night, end to end, in one process.

What ``make demo`` runs, and what the end-to-end tests reuse. Nothing is
faked inside OCD: the same service tree as ``ocd run`` listens on real
ZeroMQ sockets on 127.0.0.1; the night is a generated TCS event database
played back by the same code as ``ocd db_replay``; OCD is armed over the
wire by the same code as ``ocd allow_hetdex start``; shots run the stand-in
``syscmd`` and ``hetdex-dither.py`` as real child processes, which sleep
their exposure time divided by the speed-up; observation numbers come from
a SQLite ``vl_obsnum``. Only the night, the shot list and the shuffle files
are made up, and they are made so that the targets really cross the HET's
elevation while it is dark.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from twisted.internet import defer
from twisted.logger import Logger

from ocd.config import Config
from ocd.services.night_report import NightReport, build_report, load_night
from ocd.sim.ports import free_url

log = Logger(namespace="ocd.simulate")


@dataclass(frozen=True)
class NightPlan:
    """Everything a simulated night needs on disk, and its configuration."""

    workdir: Path
    night_db: Path
    config: Config
    shot_count: int
    speedup: float
    #: The replayed slice of the night (epoch s): sunset to its end.
    span: tuple[float, float] | None = None

    def dark(self) -> tuple[float, float]:
        """The dark part of the replayed slice (the Sun below ``[scheduler] max_sun_alt``)."""
        from ocd.core.plan import dark_span
        from ocd.core.scheduler import Scheduler
        from ocd.sim.night import DEFAULT_DATE
        from ocd.services.nightlog import night_of

        settings = self._settings()
        date = night_of(self.span[0]) if self.span else DEFAULT_DATE
        dusk, dawn = dark_span(Scheduler([], settings), date, settings.max_sun_alt)
        return dusk, min(dawn, self.span[1]) if self.span else dawn

    def _settings(self) -> Any:
        from ocd.core.decide import DecisionSettings

        return DecisionSettings.from_config(self.config)


def expected_plan(plan: NightPlan) -> Any:
    """What ``ocd plan`` says of this simulated night (its slice, its list and settings)."""
    from ocd.core.plan import plan_night
    from ocd.core.scheduler import Scheduler
    from ocd.core.shots import parse_shot_file

    settings = plan._settings()
    shots = parse_shot_file(plan.config.get_path("shots", "shot_file"))
    dusk, end = plan.dark()
    return plan_night(Scheduler(shots, settings), settings, dusk, end,
                      plan.config.get_float("decision", "decide_interval"))


def check_night(expected: Any, report: NightReport) -> Any:
    """How the simulated night went against ``expected`` (a :class:`ocd.core.plan.NightPlan`)."""
    from ocd.core.plan import check_against_plan

    return check_against_plan(expected, [(s.shotid, s.start) for s in report.shots])


def standin_command(module: str, *words: str) -> str:
    """A command template that runs a stand-in of this Python, installed or not."""
    return " ".join([sys.executable, "-m", module, *words])


def prepare(workdir: Path, *, seed: int = 0, date: str | None = None, shots: int = 24,
            speedup: float = 360.0, hours: float | None = None,
            extra: Sequence[tuple[str, str, str]] = (),
            bad_weather_minutes: float | None = None,
            heartbeat_hz: float | None = None, pointing_hz: float | None = None,
            metrology_interval: tuple[float, float] | None = None) -> NightPlan:
    """Generate (or reuse) the night; write shot list, shuffle files, config.

    The observation-number table and the shot state database start empty
    on every run so that the night is reproducible. ``bad_weather_minutes``
    is the generator's (None: drawn from the seed, 0: a clear night), and
    so are ``heartbeat_hz`` and ``pointing_hz`` (None: the TCS's 1 Hz) and
    ``metrology_interval`` (None: a guider reading every 5 to 10 s).
    Most of a night's events are those two streams, and OCD decides on
    neither rate (heartbeat silence is measured in seconds of the machine's
    clock, pointing is not a condition), so a test night can make them
    sparse and replay a fraction of the events; ``[topics] heartbeat_interval``
    then follows the night's heartbeat, so that OCD sees no heartbeat gaps.
    """
    from ocd.sim.night import DEFAULT_DATE, cached_night, night_span
    from ocd.sim.shotlist import make_sample_shots, shot_list_text
    from ocd.sim.shuffle_files import write_shuffle_files

    date = date or DEFAULT_DATE
    workdir.mkdir(parents=True, exist_ok=True)
    params: dict[str, Any] = {"seed": seed, "date": date}
    if hours is not None:
        params["hours"] = hours
    if bad_weather_minutes is not None:
        params["bad_weather_minutes"] = bad_weather_minutes
    rates: list[tuple[str, str, str]] = []
    if heartbeat_hz is not None:
        params["heartbeat_hz"] = heartbeat_hz
        rates.append(("topics", "heartbeat_interval", f"{1.0 / heartbeat_hz:g}"))
    if pointing_hz is not None:
        params["pointing_hz"] = pointing_hz
    if metrology_interval is not None:
        params["metrology_interval"] = metrology_interval
    night_db = cached_night(**params)
    dusk, dawn = night_span(date, horizon_deg=-12.0)
    sunset, sunrise = night_span(date)
    span = (sunset, sunrise if hours is None else sunset + hours * 3600)
    if hours is not None:
        # The generated slice starts at sunset, not at dusk: shots past its
        # end could never run.
        dawn = min(dawn, sunset + hours * 3600)
    sample = make_sample_shots(dusk + 1800, dawn - 1800, shots, seed=seed)
    shot_file = workdir / "shots.txt"
    shot_file.write_text(shot_list_text(sample), encoding="utf-8")
    write_shuffle_files(sample, workdir)
    for name in ("obsnum.sqlite", "state.sqlite", "standins.jsonl", "nightlog.sqlite",
                 "nightlog.sqlite-wal", "nightlog.sqlite-shm"):
        (workdir / name).unlink(missing_ok=True)
    overrides = [
        ("urls", "event_urls", ""),
        ("urls", "ocd_db_replay", free_url()),
        ("urls", "ocd_main_loop", free_url()),
        ("urls", "ocd_allow_hetdex", free_url()),
        ("urls", "ocd_config", free_url()),
        ("urls", "ocd_run_shot", f"{free_url()} {free_url()}"),
        # Its status page on a port of the system's choosing: never the
        # production one (8642), which a real OCD on this machine serves.
        ("status", "endpoint", "tcp:0:interface=127.0.0.1"),
        ("database", "backend", "sqlite"),
        ("database", "sqlite_file", str(workdir / "obsnum.sqlite")),
        ("database", "first_obsnum", "1"),
        ("shots", "shot_file", str(shot_file)),
        ("shots", "state_db", str(workdir / "state.sqlite")),
        ("paths", "shuffle_shot", str(workdir)),
        ("paths", "data_dir", str(workdir / "data" / "virus{obs_number:07d}" / "exp03")),
        ("run_shot", "syscmd_command", standin_command("ocd.sim.syscmd", "{switch}", "{command}")),
        ("run_shot", "dither_command", standin_command(
            "ocd.sim.dither", "--exposure", "{exposure}", "--exptime", "{seconds}", "--obsnum",
            "{obs_number}", "--object", "{shotid}", "--dither-with-probes", "{dither_with_probes}")),
        ("decision", "decide_interval", "1"),
        ("general", "night_log", str(workdir / "nightlog.sqlite")),
        *rates,
        *extra,
    ]
    config = Config.load(None, overrides)
    os.environ["OCD_STANDIN_SPEEDUP"] = f"{speedup:g}"
    os.environ["OCD_STANDIN_LOG"] = str(workdir / "standins.jsonl")
    return NightPlan(workdir, night_db, config, len(sample), speedup, span)


@defer.inlineCallbacks
def run_night(plan: NightPlan, reactor: Any, out: Any = None, progress: bool = False,
              narrate: bool = False) -> Any:
    """Run the plan; fires with the :class:`NightReport`."""
    from ocd.commands.allow_hetdex import allow
    from ocd.commands.db_replay import replay
    from ocd.services.replay import ReplayDatabase
    from ocd.app import makeService

    out = out if out is not None else sys.stderr
    config = plan.config
    service = makeService(config, reactor, program="simulate_night")
    main_loop = service.getServiceNamed("main_loop")
    if narrate:
        main_loop.listeners.append(Narrator(out))
    service.startService()
    try:
        code = yield allow(config, "start", 5, 0.5, reactor, out)
        if code != 0:
            raise RuntimeError(f"could not arm OCD (exit status {code})")
        db = ReplayDatabase(plan.night_db)
        args = argparse.Namespace(timeout=10.0, speedup=plan.speedup, serve_forever=False)
        code = yield replay(config, db, config.get_urls("urls", "ocd_db_replay"), args,
                            reactor, out, terminal=progress)
        if code != 0:
            raise RuntimeError(f"the replay failed (exit status {code})")
        runner = getattr(main_loop, "runner", None)
        if runner is not None and runner.running is not None:
            log.info("the night is over; waiting for shot {shotid} to finish",
                     shotid=runner.running.shotid)
            while runner.running is not None:
                yield deferLater(reactor, 0.2)
    finally:
        yield service.stopService()
    return night_report(plan)


def night_report(plan: NightPlan) -> NightReport:
    """The report of the simulated night, from the night log it wrote (its last night)."""
    night, rows = load_night(plan.config.get_path("general", "night_log"))
    return build_report(rows, night)


class Narrator:
    """Tells a person watching the demo what OCD decides and does, one line each."""

    def __init__(self, out: Any):
        self.out = out
        self._last: Any = None

    def __call__(self, event: Any) -> None:
        from datetime import datetime, timezone

        from ocd.core.topics import ExecStatus, MachineName, Topic, Verdict

        when = datetime.fromtimestamp(event.data_time, tz=timezone.utc).strftime("%H:%M:%S")
        p = event.payload
        line = None
        if event.topic == Topic.DECISION_MADE:
            key = (p["verdict"], tuple(p["blockers"]))
            if key != self._last:
                self._last = key
                if p["verdict"] == Verdict.RUN:
                    line = f"run {p['shotid']}"
                else:
                    line = "waiting: " + ", ".join(
                        f"{b} ({p['details'][b]})" if b in p["details"] else b for b in p["blockers"])
        elif event.topic == Topic.RUN_SHOT_RUN:
            if p["exec_status"] == ExecStatus.START:
                line = f"shot {p['shotid']} started, observation {p['obs_number']}"
            else:
                outcome = "FAILED: " + str(p.get("exc_value")) if p.get("error") else "done"
                line = f"shot {p['shotid']} {outcome}"
        elif (event.topic == Topic.STATES_CHANGE
              and p["machine_name"] == MachineName.HETDEX_ALLOWED):
            line = f"{p['old_state']} -> {p['new_state']} ({p['msg']})"
        if line is not None:
            print(f"[night {when}] {line}", file=self.out)


def deferLater(reactor: Any, seconds: float) -> defer.Deferred:
    from twisted.internet.task import deferLater as later

    return later(reactor, seconds, lambda: None)


def describe(plan: NightPlan, report: NightReport) -> str:
    head = (f"Simulated night: {plan.night_db.name}, {plan.shot_count} shots in the list, "
            f"speed-up {plan.speedup:g}; files in {plan.workdir}")
    return head + "\n\n" + report.format()
