"""The harness of the replayed nights: ``ocd run`` watched from outside.

:class:`NightRun` runs ``ocd run`` as a child process on a prepared night
(:func:`plan_night`, :func:`ocd.sim.simulate.prepare`), arms it with ``ocd
allow_hetdex``, replays the night with ``ocd db_replay``, and watches the
main loop like any client would (:class:`Watcher`): a plain pyzmq SUB on the
main-loop URL and on both run-shot URLs, connected for sure by the heartbeat
handshake of events.md 3.1 (a PUB bound on the ``ocd_config`` URL, which the
main loop subscribes to). test_e2e_night.py and test_golden_night.py use it.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import zmq

from bus_helpers import write_whole_config
from conftest import REPO
from ocd.sim.standin import read_calls
from pace import replay_speedup

SPEEDUP = 2000
HOURS = 4
#: Replayed night seconds the 4-hour slice leaves for one shot when two are
#: counted: the first starts at dusk (-12 deg, 0.9 h after sunset), the second
#: must start while a target of the list is still up (3 shots of 2.5 s fit at 2000).
ROOM_FOR_A_SHOT = 10000.0
#: The shot list's exposures (ocd.cfg exptimes 360 s x 3), in night seconds.
EXPOSURES = 3 * 360.0
#: :func:`pace.replay_speedup`'s margin for the nights that count two shots.
#: With two test workers, two CPU hogs and more on the two cores, a shot's
#: stand-ins took 2 to 3.5 times what the three measured before the replay
#: did (the replay then adds ``ocd run`` and ``db_replay`` to the load, and
#: the load comes in bursts): at margin 2 (pace's default) and 3 the first
#: shot spent 3 of the slice's 4 hours, one in about eight such runs, and
#: only one shot fitted. At 4 both would have fitted with a fifth to spare;
#: idle, it still paces at 2000 (a stand-in starts in 0.05 s).
PACE_MARGIN = 4.0
HANG = 120.0  # seconds; only a hang waits this long
#: The generated night's heartbeat and pointing rates (the TCS sends both at
#: 1 Hz, nine events in ten of a night, and OCD answers every heartbeat with
#: its states): once a minute, like the weather. OCD's decisions hang on
#: neither: a heartbeat silence is ``tcs_timeout`` (30 s) of the machine's
#: clock, 0.03 s of it at 2000; pointing is no condition of a shot. Each
#: guider's metrology comes every 30 to 60 s instead of 5 to 10 s (two in
#: three events of a sparse night): OCD averages it over ``fwhm_window``
#: (300 s), which still holds five to ten readings of each guider.
RATES = {"heartbeat_hz": 1 / 60, "pointing_hz": 1 / 60, "metrology_interval": (30.0, 60.0)}
WATCHED = ("ocd.run_shot.", "ocd.decision.made", "ocd.states.change",
           "ocd.states.hetdex_allowed_changed", "ocd.heartbeat.reply")

def plan_night(workdir: Path, *extra: tuple[str, str, str]) -> Any:
    """``prepare()`` the night into ``workdir``; extra (section, option, value) overrides.

    prepare() sets ``OCD_STANDIN_SPEEDUP`` and ``OCD_STANDIN_LOG`` for
    in-process runs: the caller keeps them out of later tests.
    """
    from ocd.sim.simulate import prepare

    return prepare(workdir, seed=0, shots=24, speedup=SPEEDUP, hours=HOURS,
                   bad_weather_minutes=0, **RATES,
                   extra=[("general", "json_log", str(workdir / "ocd-log.json")),
                          ("decision", "report_interval", "1"), *extra])


@dataclass
class Seen:
    """One event the watcher received, with the machine time it arrived."""

    topic: str
    payload: dict[str, Any]
    at: float
    url: str

    def __getitem__(self, key: str) -> Any:
        return self.payload[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.payload.get(key, default)


class Watcher:
    """SUB on the main-loop and run-shot URLs; PUB on ``ocd_config`` for heartbeats."""

    def __init__(self, config: Any):
        self.ctx = zmq.Context.instance()
        self.subs: list[tuple[Any, str]] = []
        urls = config.get_urls("urls", "ocd_main_loop") + config.get_urls("urls", "ocd_run_shot")
        for url in urls:
            sub = self.ctx.socket(zmq.SUB)
            sub.setsockopt(zmq.LINGER, 0)
            sub.setsockopt(zmq.RCVHWM, 0)
            for prefix in WATCHED:
                sub.setsockopt(zmq.SUBSCRIBE, prefix.encode())
            sub.connect(url)
            self.subs.append((sub, url))
        self.pub = self.ctx.socket(zmq.PUB)
        self.pub.setsockopt(zmq.LINGER, 0)
        self.pub.bind(config.get_urls("urls", "ocd_config")[0])
        self.poller = zmq.Poller()
        for sub, _url in self.subs:
            self.poller.register(sub, zmq.POLLIN)
        self.events: list[Seen] = []
        self.hooks: list[Callable[[Seen], None]] = []

    def pump(self, seconds: float) -> None:
        """Receive for ``seconds`` (at least one poll)."""
        deadline = time.monotonic() + seconds
        while True:
            left = max(deadline - time.monotonic(), 0.0)
            ready = dict(self.poller.poll(timeout=int(left * 1000)))
            for sub, url in self.subs:
                while sub in ready:
                    try:
                        frames = sub.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    seen = Seen(frames[0].decode(), json.loads(frames[1]), time.time(), url)
                    self.events.append(seen)
                    for hook in list(self.hooks):
                        hook(seen)
            if time.monotonic() >= deadline:
                return

    def wait_for(self, condition: Callable[[], bool], timeout: float, step: float = 0.05) -> bool:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                return False
            self.pump(step)
        return True

    def handshake(self, timeout: float = 60.0) -> bool:
        """events.md 3.1: enquire until the main loop's reply with our id comes back.

        The first answer waits for the first decision (the night's sky is computed
        then): seconds on a loaded machine; the wait ends as soon as it comes.
        """
        ident = uuid.uuid4().hex
        payload = {"id": ident, "__system": "ocd", "__source": "heartbeat", "__key": "enquiry",
                   "__data_time": time.time(), "__wire_time": time.time(), "__data": False}
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.pub.send_multipart([b"ocd.heartbeat.enquiry", json.dumps(payload).encode()])
            self.pump(0.1)
            if any(e.topic == "ocd.heartbeat.reply" and e.get("id") == ident for e in self.events):
                return True
        return False

    def of(self, topic: str) -> list[Seen]:
        return [e for e in self.events if e.topic == topic]

    def close(self) -> None:
        for sub, _url in self.subs:
            sub.close()
        self.pub.close()


@dataclass
class NightRun:
    """``ocd run`` in a child process, watched; the replay and arming on demand."""

    plan: Any
    env: dict[str, str]
    extra_env: dict[str, str]
    children: list[subprocess.Popen] = field(default_factory=list)
    speedup: float = SPEEDUP  # of the replay (pace_for_shots may lower it)
    standin_speedup: float = SPEEDUP  # of the stand-ins' exposures, whatever the replay's

    def start(self) -> None:
        self.workdir = self.plan.workdir
        self.cfg = write_whole_config(self.plan.config, self.workdir / "ocd.cfg")
        self.standin_log = self.workdir / "standins.jsonl"
        self.env.update({"OCD_STANDIN_LOG": str(self.standin_log),
                         "OCD_STANDIN_SPEEDUP": str(self.standin_speedup), **self.extra_env})
        self.watcher = Watcher(self.plan.config)
        self.ocd = self.spawn("run", "--config", str(self.cfg), log="ocd-run.err")
        assert self.watcher.handshake(), "the main loop never answered a heartbeat\n" + self.ocd_log()

    def spawn(self, *argv: str, log: str | None = None, env: dict[str, str] | None = None
              ) -> subprocess.Popen:
        err = open(self.workdir / log, "w") if log else subprocess.PIPE
        child = subprocess.Popen([sys.executable, "-m", "ocd", *argv], cwd=REPO,
                                 env={**self.env, **(env or {})}, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.PIPE, stderr=err, text=True)
        self.children.append(child)
        return child

    def finish(self, child: subprocess.Popen, timeout: float = HANG) -> tuple[int, str]:
        """Wait for a child while receiving events; its status and output."""
        assert self.watcher.wait_for(lambda: child.poll() is not None, timeout), \
            f"{child.args} still running after {timeout} s"
        out, err = child.communicate()
        return child.returncode, (out or "") + (err or "")

    def allow(self, what: str = "start") -> None:
        code, text = self.finish(self.spawn("allow_hetdex", "--config", str(self.cfg), what))
        assert code == 0, text

    def pace_for_shots(self, shots: int) -> None:
        """Replay slowly enough that ``shots`` shots (two or more) fit in the slice:
        the slice's room for the shots after the first is shared among them."""
        self.speedup = replay_speedup(self.env, fastest=SPEEDUP, room=ROOM_FOR_A_SHOT / (shots - 1),
                                      exposure_night_seconds=EXPOSURES,
                                      standin_speedup=self.standin_speedup, margin=PACE_MARGIN)

    def replay_seconds(self) -> float:
        """Wall time of the whole replay, plus the hang guard."""
        return HOURS * 3600 / self.speedup + HANG

    def replay(self, wait: bool = True, db: Path | None = None) -> subprocess.Popen:
        """``ocd db_replay`` of the night (or of ``db``)."""
        child = self.spawn("db_replay", "--config", str(self.cfg), "--speedup", f"{self.speedup:g}",
                           "-t", "60", str(db or self.plan.night_db))
        if wait:
            code, text = self.finish(child, timeout=self.replay_seconds())
            assert code == 0, text
        return child

    def stop_replay(self, child: subprocess.Popen) -> tuple[int, str]:
        """Ctrl+C to a replay that has shown enough; its status and output."""
        if child.poll() is None:
            child.send_signal(signal.SIGINT)
        return self.finish(child)

    def wait_idle(self, timeout: float = HANG) -> None:
        """Until every START seen has its FINISH."""
        assert self.watcher.wait_for(lambda: not self.open_shots(), timeout), \
            f"shots never finished: {self.open_shots()}\n" + self.ocd_log()

    def started(self) -> int:
        """How many shots ``ocd run`` has started."""
        return sum(1 for e in self.runs() if e["exec_status"] == 0)

    def open_shots(self) -> list[Any]:
        running = {}
        for e in self.watcher.of("ocd.run_shot.run"):
            key = (e["shotid"], e["obs_number"])
            if e["exec_status"] == 0:
                running[key] = e
            else:
                running.pop(key, None)
        return list(running)

    def runs(self, own_only: bool = True) -> list[Seen]:
        """``ocd.run_shot.run`` events, by default only those ``ocd run`` published."""
        own = self.plan.config.get_url_at("ocd_run_shot", "run", "n_ocd_run_shot")
        return [e for e in self.watcher.of("ocd.run_shot.run") if not own_only or e.url == own]

    def ocd_log(self) -> str:
        path = self.workdir / "ocd-run.err"
        return path.read_text()[-4000:] if path.exists() else ""

    def calls(self, program: str | None = None) -> list[dict[str, Any]]:
        return read_calls(self.standin_log, program)

    def stop_ocd(self) -> int:
        self.ocd.send_signal(signal.SIGTERM)
        try:
            return self.ocd.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.ocd.kill()
            return -9

    def close(self) -> None:
        for child in self.children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
                try:
                    child.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    child.kill()
                    child.wait()
            for stream in (child.stdout, child.stderr):
                if stream is not None:
                    stream.close()
        self.watcher.close()
