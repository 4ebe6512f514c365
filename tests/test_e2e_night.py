"""End to end: ``ocd run`` + ``ocd allow_hetdex`` + ``ocd db_replay`` as child processes.

Everything is real: the three commands run as child processes talking over
ZeroMQ on 127.0.0.1, shots run the stand-in ``syscmd`` and
``hetdex-dither.py`` (which log each call to ``OCD_STANDIN_LOG``), and the
observation numbers come from SQLite or the real MariaDB. The harness
(:mod:`night_harness`) watches the main loop like any client would.

One generated night (the first 4 hours of a clear sample night, cached in
the run's cache folder) is replayed at speed-up 2000 on an idle machine,
so a whole replay takes about 7 s. Its heartbeat and pointing come once a
minute and each guider's metrology every 30 to 60 s (:data:`night_harness.RATES`),
not every second and every 5 to 10 s as from the TCS: about 1.4 thousand
events instead of 29 thousand, and the same shots (OCD decides on neither
rate, and averages the metrology over 5 minutes). The Sun is down (-12 deg) about 1.6 s into the replay; from then on
OCD runs shot after shot of the sample list (seed 0), each taking about
2.5 s of wall time (mostly starting 14 stand-in processes), so three or so
in the slice. A shot's wall time does not scale with the replay: under
load it takes 6 s or more, 3.3 replayed hours at 2000, and only one shot
would fit. Tests that count two shots therefore replay at the speed-up
:mod:`pace` computes from a stand-in start measured right before the replay
(2000 when the machine is idle). Tests stop the replay once they have seen
enough, and disarm OCD (``ocd allow_hetdex stop``) once the last shot they
need has started: a disarm lets the running shot finish and starts no other
(shots.md), so no shot runs that no test reads. Every wait ends on the event
it waits for; its deadline only guards against a hang. Tests a, c (a shot
run by hand), e (MariaDB's numbers) and f read one armed night
(:func:`armed_night`), which runs once, its observation numbers on the real
MariaDB; the unreachable database sets up its own.

The orchestrator's logic scenarios (a disarm during a shot, a failing
``syscmd``, a lost shot, alerts, crash recovery...) run on fakes in
``test_orchestrator_scenarios.py``, in milliseconds; the nights here prove
the real pieces fit together.
"""

from __future__ import annotations

import re
import signal
from dataclasses import dataclass
from typing import Any, Callable

import pytest

from conftest import child_environment, closed_port, mariadb_database
from night_harness import SPEEDUP, NightRun, Seen, plan_night

# A hang guard above the suite's 120 s: the first test generates the night
# (tens of seconds under load).
pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

SYSCMD_SEQUENCE = [
    ("-T", "set_metadata"), ("-T", "load_trajectory"),
    ("-T", "Guider1_set_position"), ("-T", "Guider2_set_position"),
    ("-T", "WFS1_set_position"), ("-T", "WFS2_set_position"),
    ("-p", "Guider1_SetObjectAndMagnitudes"), ("-p", "Guider2_SetObjectAndMagnitudes"),
    ("-p", "WFS1_SetObjectAndMagnitudes"), ("-p", "WFS2_SetObjectAndMagnitudes"),
    ("-T", "go_next"),
]


# -- fixtures -------------------------------------------------------------------------


@pytest.fixture
def make_plan(tmp_path, monkeypatch):
    """:func:`plan_night` into this test's folder."""
    monkeypatch.setenv("OCD_STANDIN_SPEEDUP", str(SPEEDUP))
    monkeypatch.setenv("OCD_STANDIN_LOG", "")
    return lambda *extra: plan_night(tmp_path / "night", *extra)


@pytest.fixture
def night(make_plan, child_env):
    """A :class:`NightRun` factory; every child it started is ended at teardown."""
    runs: list[NightRun] = []

    def start(*extra: tuple[str, str, str], env: dict[str, str] | None = None) -> NightRun:
        run = NightRun(make_plan(*extra), dict(child_env), env or {})
        runs.append(run)
        run.start()
        return run

    yield start
    for run in runs:
        run.close()


@dataclass
class ArmedNight:
    """What the armed night did, for the tests that read it (see :func:`armed_night`)."""

    run: NightRun
    replay_code: int
    replay_text: str
    ocd_code: int
    mysql_rows: list[tuple[int, str]]  # (obsnum, shotid) of vl_obsnum, in order
    hand_code: int  # ocd run_shot -e of the shot run by hand
    hand_text: str
    hand_remaining: int  # observations of HAND_SHOT left in the state database at the end


def armed_night_test(test: Callable) -> Callable:
    """Marks a test that reads the armed night: tests a, c, e and f share an xdist
    worker, so that the night runs once; it is a long test, started first."""
    for mark in (pytest.mark.xdist_group("e2e_armed_night"), pytest.mark.slow(14),
                 pytest.mark.mysql):
        test = mark(test)
    return test


#: The armed night's first observation number on MariaDB: the shot run by hand
#: takes it, OCD's own shots the numbers after it.
FIRST_MYSQL_OBSNUM = 7000
#: The shot run by hand at the start of the armed night: OCD's first pick in the slice.
HAND_SHOT = "DEX00007"


def mysql_options(name: str, port: int = 3306) -> list[tuple[str, str, str]]:
    """Overrides that number the night's shots on database ``name`` of 127.0.0.1:``port``."""
    return [("database", "backend", "mysql"), ("database", "host", "127.0.0.1"),
            ("database", "port", str(port)), ("database", "user", "root"),
            ("database", "password", ""), ("database", "database", name)]


@pytest.fixture(scope="module")
def armed_night(tmp_path_factory) -> Any:
    """One night of the sample list, armed from the start, replayed once for tests a, c, e and f.

    The tests only read what it did, so it runs once: arm; run
    :data:`HAND_SHOT` by hand (``ocd run_shot -e``, as the crew does), its
    exposures of 1000 s taking 0.5 s each, so that at speed-up 2000 it covers
    dusk, the moment (about 1.6 s into the replay) OCD would start that same
    shot; replay at the paced speed-up (two shots of OCD's own must fit after
    the hand shot: the pace leaves room for three); disarm once OCD's second
    shot has started (or the replay has ended with no shot running), wait
    until no shot runs, stop the replay with Ctrl+C (the rest of the night
    would show nothing more), stop ``ocd run``. Every
    child has ended before the tests read the recording. Test f reads the
    console at ``log_level`` info, test e the observation numbers from a
    database of its own on the real MariaDB, read into ``mysql_rows`` before
    it is dropped (the suite's other replayed nights, golden and simulated,
    number on SQLite).
    """
    from ocd.services.shot_store import ShotStore

    with mariadb_database("ocd_e2e") as (conn, name), pytest.MonkeyPatch.context() as mp:
        mp.setenv("OCD_STANDIN_SPEEDUP", str(SPEEDUP))
        mp.setenv("OCD_STANDIN_LOG", "")
        plan = plan_night(tmp_path_factory.mktemp("armed") / "night",
                          ("general", "log_level", "info"), *mysql_options(name),
                          ("database", "first_obsnum", str(FIRST_MYSQL_OBSNUM)))
        run = NightRun(plan, child_environment(), {})
        try:
            run.start()
            run.allow("start")
            run.pace_for_shots(3)  # the hand shot, then two of OCD's own
            words = shot_table(plan)[HAND_SHOT]
            hand = run.spawn("run_shot", "--config", str(run.cfg), "-e", "-c", "-N", "1",
                             HAND_SHOT, str(FIRST_MYSQL_OBSNUM), words[1], words[2], "-1",
                             "1" if words[3] == "1" else "0", "1000", "1000", "1000")
            assert run.watcher.wait_for(lambda: run.runs(own_only=False), timeout=30), \
                "the hand shot never started: " + (hand.poll() is not None and hand.communicate()[1] or "")
            replay = run.replay(wait=False)
            hand_code, hand_text = run.finish(hand)

            def enough() -> bool:
                return run.started() >= 2 or (replay.poll() is not None and not run.open_shots())

            run.watcher.wait_for(enough, timeout=run.replay_seconds())
            run.allow("stop")  # the second shot finishes, no third starts
            run.wait_idle()
            code, text = run.stop_replay(replay)  # the rest of the night shows nothing more
            ocd_code = run.stop_ocd()
            with conn.cursor() as cur:
                cur.execute(f"SELECT obsnum, shotid FROM `{name}`.vl_obsnum ORDER BY id")
                rows = [tuple(row) for row in cur.fetchall()]
            store = ShotStore(plan.config.get_path("shots", "state_db"))
            try:
                remaining = store.remaining(HAND_SHOT)
            finally:
                store.close()
            night = ArmedNight(run, code, text, ocd_code, rows, hand_code, hand_text, remaining)
        finally:
            run.close()
    yield night


# -- helpers ----------------------------------------------------------------------------


def shot_table(plan: Any) -> dict[str, list[str]]:
    rows = {}
    for line in plan.config.get_path("shots", "shot_file").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            words = line.split()
            rows[words[0]] = words
    return rows


def command_name(argv: list[str]) -> tuple[str, str]:
    return argv[0], argv[1].split("(", 1)[0]


def hand_shot_calls(run: NightRun) -> tuple[list[dict], list[dict]]:
    """The stand-in log split after the hand shot's last dither: (the hand shot's, OCD's)."""
    calls = run.calls()

    def of_hand(call: dict) -> bool:
        argv = call["argv"]
        return "--obsnum" in argv and argv[argv.index("--obsnum") + 1] == str(FIRST_MYSQL_OBSNUM)

    last = max(i for i, call in enumerate(calls) if of_hand(call))
    return calls[:last + 1], calls[last + 1:]


def check_shot_calls(calls: list[dict], starts: list[Seen]) -> None:
    """The stand-in log of OCD's shots: per shot, the syscmd sequence then three dithers."""
    per_shot = 11 + 3
    assert len(calls) == per_shot * len(starts), [c["argv"] for c in calls]
    for i, start in enumerate(starts):
        chunk = calls[i * per_shot:(i + 1) * per_shot]
        syscmds, dithers = chunk[:11], chunk[11:]
        assert [c["program"] for c in syscmds] == ["syscmd"] * 11
        assert [command_name(c["argv"]) for c in syscmds] == SYSCMD_SEQUENCE
        assert 'QIFU="' in syscmds[0]["argv"][1]
        assert [c["program"] for c in dithers] == ["hetdex-dither.py"] * 3
        for n, dither in enumerate(dithers, start=1):
            argv = dither["argv"]
            assert argv[argv.index("--exposure") + 1] == str(n)
            assert argv[argv.index("--obsnum") + 1] == str(start["obs_number"])
            assert argv[argv.index("--object") + 1] == start["shotid"]
        times = [c["time"] for c in chunk]
        assert times == sorted(times), "the stand-ins ran out of order"


def pairs_in_order(runs: list[Seen]) -> list[tuple[Seen, Seen]]:
    """Each START followed by its own FINISH before the next START."""
    assert len(runs) % 2 == 0, [(e["shotid"], e["exec_status"]) for e in runs]
    pairs = []
    for start, finish in zip(runs[::2], runs[1::2]):
        assert start["exec_status"] == 0 and finish["exec_status"] == 1
        assert (start["shotid"], start["obs_number"]) == (finish["shotid"], finish["obs_number"])
        pairs.append((start, finish))
    return pairs


# -- the tests ------------------------------------------------------------------------


@armed_night_test
def test_a_night_runs_the_picked_shots_in_order_with_the_commands_and_numbers(armed_night):
    run = armed_night.run
    runs = run.runs()
    pairs = pairs_in_order(runs)
    assert len(pairs) >= 2, (f"expected at least two shots in the slice at speed-up "
                             f"{run.speedup:g}\n" + run.ocd_log())
    assert all(finish["error"] is False for _s, finish in pairs), [f.payload for _s, f in pairs]
    starts = [start for start, _f in pairs]

    # The order is the scheduler's: each START is the shot of the last "run" decision.
    decisions = run.watcher.of("ocd.decision.made")
    for start in starts:
        picks = [d for d in decisions if d.at <= start.at and d["verdict"] == "run"]
        assert picks and picks[-1]["shotid"] == start["shotid"]
        assert not picks[-1]["blockers"]
    # A shot is done once (n_obs 1 in the sample list).
    assert len({s["shotid"] for s in starts}) == len(starts)
    table = shot_table(run.plan)

    # Observation numbers consecutive after the hand shot's (first_obsnum).
    first = run.plan.config.get_int("database", "first_obsnum")
    numbers = [s["obs_number"] for s in starts]
    assert numbers == list(range(first + 1, first + 1 + len(starts)))
    check_shot_calls(hand_shot_calls(run)[1], starts)
    # The shot list's coordinates reach the telescope.
    for start in starts:
        assert float(table[start["shotid"]][1]) == pytest.approx(start["ra"])
    assert armed_night.ocd_code == 0, run.ocd_log()


@armed_night_test
def test_c_a_shot_by_hand_holds_the_main_loop_and_counts_down(armed_night):
    run = armed_night.run
    assert armed_night.hand_code == 0, armed_night.hand_text
    everything = run.runs(own_only=False)
    hand_events = [e for e in everything if e["obs_number"] == FIRST_MYSQL_OBSNUM]
    assert [e["exec_status"] for e in hand_events] == [0, 1] and hand_events[1]["error"] is False, \
        [e.payload for e in everything]
    assert hand_events[0]["shotid"] == HAND_SHOT
    hand_start, hand_finish = hand_events
    own = run.runs()
    assert not [e for e in own if hand_start.at <= e.at <= hand_finish.at], \
        "OCD started a shot while the hand shot ran"
    decisions = run.watcher.of("ocd.decision.made")
    # Arrival times at the watcher, with a margin at both ends: OCD's decision
    # on the FINISH (no longer blocked) can be read before the FINISH itself,
    # which comes from the run_shot process on another socket.
    during = [d for d in decisions if hand_start.at + 0.2 < d.at < hand_finish.at - 0.2]
    assert during and all("shot_running" in d["blockers"] for d in during), (
        f"hand shot from {hand_start.at:.2f} to {hand_finish.at:.2f}; decisions (arrival, "
        f"blockers): {[(round(d.at, 2), d['blockers']) for d in decisions][:80]}")
    # Its commands ran before OCD's, its exposures numbered with its own number.
    hand_calls, _own_calls = hand_shot_calls(run)
    dithers = [c for c in hand_calls if c["program"] == "hetdex-dither.py"]
    assert [c["argv"][c["argv"].index("--exposure") + 1] for c in dithers] == ["1", "2", "3"]
    assert {c["program"] for c in hand_calls} == {"syscmd", "hetdex-dither.py"}
    # The hand shot counted its shot down: OCD never runs it again.
    assert HAND_SHOT not in {e["shotid"] for e in own}
    assert armed_night.hand_remaining == 0
    # OCD's own numbers continue after the hand shot's.
    assert [e["obs_number"] for e in own if e["exec_status"] == 0] == \
        list(range(FIRST_MYSQL_OBSNUM + 1, FIRST_MYSQL_OBSNUM + 1 + len(own) // 2)), \
        [e.payload for e in own]


@armed_night_test
def test_e_observation_numbers_on_mariadb_are_consecutive(armed_night):
    """The armed night reserved its numbers on the real MariaDB: the hand shot's
    ``first_obsnum``, then OCD's own consecutive after it, one row per shot
    started, in the order they ran."""
    starts = [s for s, _f in pairs_in_order(armed_night.run.runs())]
    assert len(starts) >= 2, armed_night.run.ocd_log()
    numbers = [s["obs_number"] for s in starts]
    assert numbers == list(range(FIRST_MYSQL_OBSNUM + 1, FIRST_MYSQL_OBSNUM + 1 + len(starts)))
    assert armed_night.mysql_rows == [(FIRST_MYSQL_OBSNUM, HAND_SHOT)] + [
        (n, s["shotid"]) for n, s in zip(numbers, starts)]


@pytest.mark.mysql
@pytest.mark.slow(4)
def test_e_unreachable_database_is_a_blocker_and_the_loop_keeps_running(night):
    run = night(*mysql_options("ocd", port=closed_port()), ("database", "timeout", "1"))
    run.allow("start")
    replay = run.replay(wait=False)

    def unavailable() -> bool:
        return any("obsnum_unavailable" in d["blockers"] for d in run.watcher.of("ocd.decision.made"))

    assert run.watcher.wait_for(unavailable, timeout=20), run.ocd_log()
    # Still alive: heartbeats answered, and the decisions go on.
    assert run.watcher.handshake(timeout=5)
    seen = len(run.watcher.of("ocd.decision.made"))
    assert run.watcher.wait_for(lambda: len(run.watcher.of("ocd.decision.made")) > seen, timeout=5)
    run.stop_replay(replay)  # the blocker may come before the replay sends anything
    assert run.ocd.poll() is None, run.ocd_log()
    assert not run.runs() and not run.calls()
    assert run.stop_ocd() == 0


EPOCH = re.compile(r"(?<![\d.])1[0-9]{9}(?:\.\d+)?(?![\d.])")  # 2001-09 .. 2033-05


@armed_night_test
def test_f_the_console_at_info_has_short_lines_with_clock_times_never_epoch_seconds(armed_night):
    """Issue 11, section 1: what a person at the console reads during a replay."""
    run, replay_text = armed_night.run, armed_night.replay_text
    assert armed_night.replay_code == 0, replay_text
    assert armed_night.ocd_code == 0, run.ocd_log()
    ocd_text = (run.workdir / "ocd-run.err").read_text()
    # Ctrl+C (which ends the replay here) is one line: the sockets still open
    # when the reactor stops are expected to go, never a warning with a Failure.
    assert "replay stopped:" in replay_text, replay_text
    assert "lost its descriptor" not in replay_text and "Failure" not in replay_text, replay_text
    for name, text in (("ocd run", ocd_text), ("ocd db_replay", replay_text)):
        lines = text.splitlines()
        assert lines, f"{name} printed nothing"
        too_long = [line for line in lines if len(line) > 200]
        assert not too_long, f"{name}: lines over 200 characters:\n" + "\n".join(too_long)
        epoch = [line for line in lines if EPOCH.search(line)]
        assert not epoch, f"{name}: epoch seconds on the console:\n" + "\n".join(epoch)
        assert not [line for line in lines if " publish " in line], f"{name} prints raw events"
    # The narration: decisions, arming and shots, each on the night's clock.
    night = [line for line in ocd_text.splitlines() if "[ocd.night#info]" in line]
    assert any("ARMED by ocd allow_hetdex start: asked by " in line for line in night), night
    assert any(re.search(r"night \d\d:\d\d:\d\d WAIT: ", line) for line in night), night
    assert any(re.search(r"night \d\d:\d\d:\d\d RUN DEX", line) for line in night), night
    assert any(re.search(r"shot \S+ \(obs \d+\) started", line) for line in night), night
    assert any(re.search(r"shot \S+ \(obs \d+\): exposure 3 of 3", line) for line in night), night
    assert any(re.search(r"shot \S+ \(obs \d+\) done", line) for line in night), night
