"""Shared fixtures. No reactor (or txZMQ) import at module level here."""

from __future__ import annotations

import os
import uuid
from contextlib import contextmanager
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import pytest

from ocd.sim.ports import RANGE_VARIABLE, free_port, share

REPO = Path(__file__).resolve().parent.parent


#: The run's cache folder (``OCD_CACHE_DIR``), made by the process that starts the run.
_RUN_CACHE: list[Path] = []


#: Where a run leaves the astronomy it computed for the next run in this
#: checkout: the IERS table and the sky spans (``iers-*.npz``, ``sky-*.npz``).
#: In the project's virtual environment, never in the user's ``~/.cache/ocd``;
#: ``make clean`` removes it with the environment.
KEPT_BETWEEN_RUNS = Path(sys.prefix) / "ocd-test-cache"
KEPT_PATTERNS = ("iers-*.npz", "sky-*.npz")


def _kept_between_runs() -> Path | None:
    """:data:`KEPT_BETWEEN_RUNS`, only inside a virtual environment."""
    return KEPT_BETWEEN_RUNS if sys.prefix != sys.base_prefix else None


def _copy_kept(source: Path, target: Path) -> None:
    """Copy the files of :data:`KEPT_PATTERNS` from ``source`` into ``target``."""
    import shutil

    for pattern in KEPT_PATTERNS:
        for path in source.glob(pattern):
            shutil.copy2(path, target)


def interruptible() -> None:
    """Make SIGINT raise KeyboardInterrupt again in this process and its children.

    A shell starts a background job (``make test &``, a CI runner's script)
    with SIGINT ignored, and an ignored signal stays ignored through ``exec``:
    every child ``ocd`` then ignored the Ctrl+C a test sends it (Python
    installs no KeyboardInterrupt handler, Twisted none of its own), and the
    tests of Ctrl+C failed or waited out their timeouts. A handled signal is
    reset to its default in a child, so the children get Python's own.
    """
    import signal

    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_configure(config):
    """One cache folder for the whole run, with astropy's IERS table already in it.

    Made before pytest-xdist starts its workers, and set as ``OCD_CACHE_DIR``,
    which every worker and every child ``ocd`` inherits: the generated nights
    (:func:`ocd.sim.night.cached_night`; a night is written to a partial file
    and renamed, so two workers that make the same one both read a whole file),
    OCD's Earth-orientation table (:mod:`ocd.services.earth_orientation`) and
    the sky spans of the child ``ocd run`` processes (:mod:`ocd.services.sky_cache`)
    are made once per run and shared.
    The table is built here, once: without it each worker and each first
    child of a cold folder builds it from astropy's files (about 1.5 s of
    CPU each, several at once when the long tests start together). Nothing
    goes to the user's ``~/.cache/ocd``; the folder is removed at the end.
    The table and the spans of the last run in this checkout
    (:data:`KEPT_BETWEEN_RUNS`) are copied in first: the run then starts its
    workers without building the table (about 4 s here, before any test),
    and its ``ocd run`` children read their spans. They are the files OCD
    keeps for itself between starts, with the same checks (made by this
    astropy, for this hour and these shots), so a test sees the numbers it
    would compute; the tests of the caches themselves use folders of their own.
    A table copied in is not loaded here: pytest-xdist's controller runs no
    test, and loading it costs astropy's import (about 0.8 s of CPU). The
    workers check its key as they load it; a table of another astropy (after
    an upgrade) is then built by each of them, once.
    """
    interruptible()
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker:
        # Each worker draws its ports from its own share (ocd.sim.ports): two
        # workers never hand out one port, and their children inherit the share.
        count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
        os.environ[RANGE_VARIABLE] = share(int(worker.removeprefix("gw")), count)
        return
    import tempfile

    from ocd.services.earth_orientation import install

    folder = Path(tempfile.mkdtemp(prefix="ocd-test-cache-"))
    _RUN_CACHE.append(folder)
    kept = _kept_between_runs()
    if kept is not None and kept.is_dir():
        _copy_kept(kept, folder)
    os.environ["OCD_CACHE_DIR"] = str(folder)
    if not any(folder.glob("iers-*.npz")):
        install(folder)  # built once here, before the workers start


def pytest_unconfigure(config):
    """Keep the run's table and spans for the next run (:func:`pytest_configure`),
    then remove the run's folder."""
    import shutil

    kept = _kept_between_runs()
    while _RUN_CACHE:
        folder = _RUN_CACHE.pop()
        if kept is not None:
            try:
                shutil.rmtree(kept, ignore_errors=True)
                kept.mkdir(parents=True)
                _copy_kept(folder, kept)
            except OSError:
                pass  # the next run builds what it needs
        shutil.rmtree(folder, ignore_errors=True)


def pytest_sessionstart(session):
    """Hand astropy the run's cached IERS table in each xdist worker (in this
    process when the run has no workers: ``TEST_JOBS=0``), and keep
    the sky spans in the run's cache folder, as ``ocd run`` does at start:
    test modules compute skies at import (sample shot lists), and the workers
    share the spans they compute (one per hour of night the tests look at,
    about 0.3 s of CPU each) with each other, the ``ocd`` children and the
    next run. Tests of the sky itself compare with astropy directly, and the
    tests of the caches use folders of their own.
    """
    controller = session.config.pluginmanager.hasplugin("dsession")  # pytest-xdist's
    if os.environ.get("PYTEST_XDIST_WORKER") or not controller:
        from ocd.services.earth_orientation import install
        from ocd.services.sky_cache import keep_sky_spans

        install()
        keep_sky_spans()


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
    pytest-xdist hands out tests in this order, a group where its first test
    is, with ``--no-loadscope-reorder`` (``make test``): by default it puts
    the groups of many tests first, and its first two units to each worker
    then gave one worker both the golden night (48 s) and the simulated
    night (18 s), 13 s after the others had finished.
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


#: The MariaDB the tests use (README: 127.0.0.1:3306, root, no password).
MARIADB = dict(host="127.0.0.1", port=3306, user="root", password="")
#: For the tests' own connections (setting up and reading back, not OCD's):
#: PyMySQL otherwise builds a TLS context for every connection, in case the
#: server offers TLS (0.05 s of CPU each, about 20 per run), and ours does not.
NO_TLS = dict(ssl_disabled=True)


@contextmanager
def mariadb_database(prefix: str = "ocd_test") -> Iterator[tuple[Any, str]]:
    """A new, uniquely named database on the tests' MariaDB, dropped on the way out.

    Yields ``(connection, name)``; the connection is in autocommit. Skips the
    test when no MariaDB answers (CI always has one).
    """
    pymysql = pytest.importorskip("pymysql")
    try:
        conn = pymysql.connect(**MARIADB, **NO_TLS, autocommit=True, connect_timeout=3)
    except pymysql.err.OperationalError as exc:  # pragma: no cover - CI has it
        pytest.skip(f"no MariaDB on 127.0.0.1:3306: {exc}")
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{name}`")
        yield conn, name
    finally:
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        conn.close()


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

def closed_port() -> int:
    """A port nothing listens on, for a server that is down: from this worker's
    share (``ocd.sim.ports``). One from ``bind(0)`` lies in the ephemeral range,
    where another worker's listener on ``tcp:0`` may sit by the time it is used."""
    return free_port()


@pytest.fixture
def free_url():
    """A factory of fresh ``tcp://127.0.0.1:PORT`` URLs."""
    return lambda: f"tcp://127.0.0.1:{free_port()}"


@dataclass(frozen=True)
class SimulatedNight:
    """One in-process simulated night (:func:`ocd.sim.simulate.run_night`) and what it said."""

    plan: Any  # ocd.sim.simulate.NightPlan
    expected: Any  # ocd.core.plan.NightPlan: what ``ocd plan`` says of the same night
    report: Any  # ocd.services.night_report.NightReport
    out: str  # what run_night wrote, narration included
    hours: float  # the replayed slice, from sunset


#: The replayed slice (hours from sunset) and the fastest speed-up of the simulated night.
SIMULATED_HOURS = 4
SIMULATED_SPEEDUP = 1500
#: pace's margin on the measured stand-in start (night_harness.PACE_MARGIN's: a stand-in
#: starts slower once the replay adds its own load).
SIMULATED_PACE_MARGIN = 3.0


@pytest.fixture(scope="session")
def simulated_night(tmp_path_factory):
    """The in-process simulated night of test_plan and test_simulate, run once (about 10 s).

    The first 4 hours of the clear sample night (seed 0, heartbeat and
    pointing once a minute and metrology every 30 to 60 s, ``night_harness.RATES``,
    not at the TCS's rates:
    the night the e2e tests replay, from the run's cache; at 1 Hz it was 29.5
    thousand events and 8.5 s of this process's CPU), narrated, with a list of two shots whose passes cross the HET's
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
    from night_harness import RATES
    from ocd.sim.simulate import expected_plan, prepare, run_night
    from pace import replay_speedup

    with pytest.MonkeyPatch.context() as env:
        # prepare() sets these for the stand-ins of this process; undone after the night.
        env.setenv("OCD_STANDIN_SPEEDUP", "1")
        env.setenv("OCD_STANDIN_LOG", "")
        plan = prepare(tmp_path_factory.mktemp("simulated") / "night", seed=0, shots=2,
                       speedup=SIMULATED_SPEEDUP, hours=SIMULATED_HOURS,
                       bad_weather_minutes=0, extra=[("general", "log_level", "warn")],
                       **RATES)
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
