"""Shared fixtures. No reactor (or txZMQ) import at module level here."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ocd.sim.ports import free_port

REPO = Path(__file__).resolve().parent.parent


#: The run's cache folder (``OCD_CACHE_DIR``), made by the process that starts the run.
_RUN_CACHE: list[Path] = []


def pytest_configure(config):
    """One cache folder for the whole run, with astropy's IERS table already in it.

    Made before pytest-xdist starts its workers, and set as ``OCD_CACHE_DIR``,
    which every worker and every child ``ocd`` inherits: the generated nights
    (:func:`night_cache_dir`) and OCD's Earth-orientation table
    (:mod:`ocd.services.earth_orientation`) are made once per run and shared.
    The table is built here, once: without it each worker and each first
    child of a cold folder builds it from astropy's files (about 1.5 s of
    CPU each, several at once when the long tests start together). Nothing
    goes to the user's ``~/.cache/ocd``; the folder is removed at the end.
    """
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return
    import tempfile

    from ocd.services.earth_orientation import install

    folder = Path(tempfile.mkdtemp(prefix="ocd-test-cache-"))
    _RUN_CACHE.append(folder)
    os.environ["OCD_CACHE_DIR"] = str(folder)
    install(folder)


def pytest_unconfigure(config):
    import shutil

    while _RUN_CACHE:
        shutil.rmtree(_RUN_CACHE.pop(), ignore_errors=True)


def pytest_sessionstart(session):
    """Hand astropy the run's cached IERS table in each xdist worker, as ``ocd run``
    does at start: test modules compute skies at import (sample shot lists)."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        from ocd.services.earth_orientation import install

        install()


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """Make ``@pytest.mark.xdist_group`` work under ``--dist loadgroup`` with pytest 9.2.

    pytest-xdist (3.8) names a test's group by appending ``@group`` to the
    test's id in each worker, through ``item._nodeid``; pytest 9.2 keeps the
    id in ``item._id`` and no longer reads ``_nodeid``, so the scheduler saw
    no group and spread a group's tests over the workers (each running the
    module fixture they were grouped to share). This puts the suffix where
    pytest reads it; it does nothing where xdist's own suffix took.
    """
    _longest_first(items)
    if not getattr(config.option, "loadgroup", False):
        return
    for item in items:
        names = {str(mark.args[0] if mark.args else mark.kwargs.get("name", "default"))
                 for mark in item.iter_markers("xdist_group")}
        suffix = "@" + "_".join(sorted(names))
        if names and not item.nodeid.endswith(suffix) and hasattr(item, "_id"):
            from _pytest.nodeid import NodeId

            item._id = NodeId.parse(item.nodeid + suffix)


def _longest_first(items: list) -> None:
    """Tests marked ``slow(seconds)`` first, the longest first; the rest keep their order.

    Most of a slow test's wall time is waiting (a replayed night, stand-ins
    starting): started first, its waits overlap the short tests on the
    other workers, instead of one worker finishing alone with a long night.
    pytest-xdist hands out tests in this order (groups of several tests
    before single ones), so the order is the same in every worker.
    """
    def seconds(item) -> float:
        mark = item.get_closest_marker("slow")
        return float(mark.args[0]) if mark and mark.args else 0.0

    items.sort(key=lambda item: -seconds(item))


def stopped(service) -> None:
    """Stop ``service`` and check that it has stopped: the Deferred ``stopService``
    may return has fired, without a failure (re-raised here).

    For a service on a ``Clock`` or one whose stop is synchronous; a service
    on the real reactor is stopped with ``pytest_twisted.blockon`` instead.
    An unchecked ``stopService()`` lost both a stop that never finished (a
    shot still running) and one that failed.
    """
    from twisted.internet.defer import maybeDeferred
    from twisted.python.failure import Failure

    outcome: list = []
    maybeDeferred(service.stopService).addBoth(outcome.append)
    assert outcome, f"{service!r}: stopService() has not finished"
    if isinstance(outcome[0], Failure):
        outcome[0].raiseException()


def stopped_on_reactor(service) -> None:
    """Stop ``service`` (on the real reactor) and wait until it has stopped."""
    import pytest_twisted
    from twisted.internet.defer import maybeDeferred

    pytest_twisted.blockon(maybeDeferred(service.stopService))


def reap(child) -> None:
    """End a test's child process for good: kill it if it still runs, close its pipes.

    The ``finally`` of every test that starts ``ocd`` with ``subprocess.Popen``:
    a failed assertion must not leave a main loop bound to its ports.
    """
    if child.poll() is None:
        child.kill()
        child.wait()
    for stream in (child.stdin, child.stdout, child.stderr):
        if stream is not None:
            stream.close()

@pytest.fixture
def free_url():
    """A factory of fresh ``tcp://127.0.0.1:PORT`` URLs."""
    return lambda: f"tcp://127.0.0.1:{free_port()}"


@pytest.fixture(scope="session")
def night_cache_dir():
    """The run's ``OCD_CACHE_DIR`` (:func:`pytest_configure`): a generated night
    (seconds, tens under load) is made once and shared by the modules, and the
    xdist workers, that replay the same one. A night is written to a partial
    file and renamed (:func:`ocd.sim.night.generate_night`), so two workers
    that generate the same night at once both read a whole file.
    """
    return Path(os.environ["OCD_CACHE_DIR"])


@dataclass(frozen=True)
class SimulatedNight:
    """One in-process simulated night (:func:`ocd.sim.simulate.run_night`) and what it said."""

    plan: Any  # ocd.sim.simulate.NightPlan
    expected: Any  # ocd.core.plan.NightPlan: what ``ocd plan`` says of the same night
    report: Any  # ocd.services.nightlog.NightReport
    out: str  # what run_night wrote, narration included
    hours: float  # the replayed slice, from sunset


#: The replayed slice (hours from sunset) and the fastest speed-up of the simulated night.
SIMULATED_HOURS = 4
SIMULATED_SPEEDUP = 1500
#: Heartbeat and pointing once a minute, not at the TCS's 1 Hz: the e2e nights'
#: rates (test_e2e_night.RATES), so the cached night is the same file. OCD
#: decides on neither (see :func:`ocd.sim.simulate.prepare`); at 1 Hz the
#: night was 29.5 thousand events and 8.5 s of this process's CPU.
SIMULATED_RATES = {"heartbeat_hz": 1 / 60, "pointing_hz": 1 / 60}
#: pace's margin on the measured stand-in start (test_e2e_night's: a stand-in
#: starts slower once the replay adds its own load).
SIMULATED_PACE_MARGIN = 3.0


@pytest.fixture(scope="session")
def simulated_night(night_cache_dir, tmp_path_factory):
    """The in-process simulated night of test_plan and test_simulate, run once (about 10 s).

    The first 4 hours of the clear sample night (seed 0, heartbeat and
    pointing once a minute: the night the e2e tests replay, from the shared
    cache), narrated, with a list of two shots whose passes cross the HET's
    elevation 90 minutes apart, so that the night and its plan must agree
    exactly (test_plan); the report, night log, stand-in calls and narration
    are what a person reads the morning after (test_simulate). A shot's wall
    time does not scale with the replay (14 stand-in starts: about 2.5 s
    idle, 6 s or more under load), so the speed-up is the one :mod:`pace`
    computes right before the night, for the first shot to end while the
    second may still start: 1500 on an idle machine, lower under load. Tests
    that use it share the xdist group "simulated_night": the night runs
    once, on one worker.
    """
    import dataclasses
    import io

    import pytest_twisted
    from twisted.internet import reactor

    from ocd.sim.shotlist import make_sample_shots, shot_list_text
    from ocd.sim.shuffle_files import write_shuffle_files
    from ocd.sim.simulate import expected_plan, prepare, run_night
    from pace import replay_speedup

    with pytest.MonkeyPatch.context() as env:
        env.setenv("OCD_CACHE_DIR", str(night_cache_dir))
        # prepare() sets these for the stand-ins of this process; undone after the night.
        env.setenv("OCD_STANDIN_SPEEDUP", "1")
        env.setenv("OCD_STANDIN_LOG", "")
        plan = prepare(tmp_path_factory.mktemp("simulated") / "night", seed=0, shots=2,
                       speedup=SIMULATED_SPEEDUP, hours=SIMULATED_HOURS,
                       bad_weather_minutes=0, extra=[("general", "log_level", "warn")],
                       **SIMULATED_RATES)
        dusk, _end = plan.dark()
        shots = []
        for k, minutes in enumerate((35, 125)):
            at = dusk + minutes * 60
            shot = make_sample_shots(at - 60, at + 60, 1, seed=k + 3)[0]
            shots.append(dataclasses.replace(shot, shotid=f"DEX{k + 1:05d}", n_obs=1))
        (plan.workdir / "shots.txt").write_text(shot_list_text(shots), encoding="utf-8")
        write_shuffle_files(shots, plan.workdir)
        expected = expected_plan(plan)
        if len(expected.shots) == 2:  # else test_plan says what the plan is
            first, second = expected.shots
            exposures = sum(plan.config.get_float_list("run_shot", "exptimes"))
            speedup = replay_speedup(child_environment(), fastest=SIMULATED_SPEEDUP,
                                     room=second.window[1] - first.start,
                                     exposure_night_seconds=exposures,
                                     margin=SIMULATED_PACE_MARGIN)
            # prepare() scales the stand-ins' exposures by the replay's speed-up.
            plan = dataclasses.replace(plan, speedup=speedup)
            os.environ["OCD_STANDIN_SPEEDUP"] = f"{speedup:g}"
        out = io.StringIO()
        report = pytest_twisted.blockon(run_night(plan, reactor, out, progress=False,
                                                  narrate=True))
    return SimulatedNight(plan, expected, report, out.getvalue(), SIMULATED_HOURS)


@pytest.fixture
def ocd_command():
    """The argv prefix that runs this tree's ``ocd`` in a child process."""
    return [sys.executable, "-m", "ocd"]


def child_environment() -> dict[str, str]:
    """Environment for child processes: this tree first on the path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


@pytest.fixture
def child_env():
    """:func:`child_environment`, for one test."""
    return child_environment()


# Property tests (hypothesis) stay fast: a modest number of examples, no
# deadline (the machine is shared), no example database in the work tree.
# HYPOTHESIS_PROFILE=thorough runs many more.
try:
    from hypothesis import HealthCheck, settings
except ImportError:  # pragma: no cover - hypothesis is in the test extra
    pass
else:
    settings.register_profile("ocd", max_examples=40, deadline=None, database=None,
                              suppress_health_check=[HealthCheck.too_slow])
    settings.register_profile("thorough", max_examples=2000, deadline=None, database=None)
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ocd"))


@pytest.fixture
def logged():
    """Every twisted.logger event emitted during the test, in order."""
    from twisted.logger import globalLogPublisher

    events: list[dict] = []
    globalLogPublisher.addObserver(events.append)
    yield events
    globalLogPublisher.removeObserver(events.append)
