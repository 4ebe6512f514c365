"""How long ``ocd run`` takes from its start to its first decision: cold, new hour, warm.

A restarted OCD (after a crash, an upgrade, a reboot at 3 a.m.) decides
nothing until it has a sky span (:mod:`ocd.core.scheduler`). OCD keeps the
spans it computed, and astropy's IERS table, in its cache folder
(:mod:`ocd.services.sky_cache`), so this measures three starts, each as its
own ``ocd run`` process with a shot list of 24 shots, told the telescope's
time by a few valid events on its replay URL:

- **first start**: an empty cache folder (astropy builds its IERS table from
  its files, the span is computed, both are kept);
- **new hour**: the same folder, telescope time a day later (the table is
  read back, the span is computed);
- **same hour**: the same folder and hour as the first start (the span is
  read back; astropy is not imported).

Each figure is the child's CPU (user + system, from ``wait4``) and the wall
time from ``Popen`` to the first ``ocd.decision.made``, best of ``--rounds``;
the ratios are against the first start, measured in the same run. Only a
decision made at the telescope's time counts, and every decision is sent
(``report_interval`` 0.1 s), so one made before this process's SUB joined
does not hide the start for a minute.

    .venv/bin/python bench/start.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import zmq  # noqa: E402

from ocd.sim.ports import free_url  # noqa: E402

#: 2018-05-15 03:00 UTC: night at the HET.
NIGHT = 1526353200.0


def tcs_event(topic: str, t: float, **fields: object) -> list[bytes]:
    system, source, key = topic.split(".", 2)
    payload = {"__system": system, "__source": source, "__key": key, "__data_time": t,
               "__wire_time": t, "__data": True, **fields}
    return [topic.encode(), json.dumps(payload).encode()]


def write_site(workdir: Path, url: str, reply_url: str) -> Path:
    from ocd.sim.shotlist import make_sample_shots, shot_list_text

    (workdir / "shots.txt").write_text(
        shot_list_text(make_sample_shots(NIGHT - 4 * 3600, NIGHT + 4 * 3600, 24, seed=0)))
    cfg = workdir / "ocd.cfg"
    cfg.write_text("\n".join([
        "[general]", "log_level = warn",
        "[urls]", "event_urls =", f"ocd_db_replay = {url}", f"ocd_main_loop = {reply_url}",
        f"ocd_allow_hetdex = {free_url()}", f"ocd_config = {free_url()}",
        f"ocd_run_shot = {free_url()} {free_url()}",
        "[status]", "endpoint =",
        "[dates]", "max_time_offset = 0",
        # Every decision goes out: the first one may be made before this SUB
        # has joined (ZeroMQ's slow joiner), and at the default 60 s an
        # unchanged decision is not sent again for a minute.
        "[decision]", "report_interval = 0.1",
        "[shots]", f"state_db = {workdir / 'state.sqlite'}",
        f"shot_file = {workdir / 'shots.txt'}",
        "[database]", f"sqlite_file = {workdir / 'obsnum.sqlite'}", ""]))
    return cfg


def one_start(cache: Path, night: float) -> tuple[float, float]:
    """(CPU s, wall s) of one ``ocd run`` from its start to its first decision."""
    with tempfile.TemporaryDirectory(prefix="ocd-start-") as folder:
        workdir = Path(folder)
        url, reply_url = free_url(), free_url()
        cfg = write_site(workdir, url, reply_url)
        context = zmq.Context()
        pub = context.socket(zmq.PUB)
        pub.bind(url)
        sub = context.socket(zmq.SUB)
        sub.setsockopt(zmq.SUBSCRIBE, b"ocd.decision.made")
        sub.connect(reply_url)
        env = dict(os.environ, OCD_CACHE_DIR=str(cache), PYTHONPATH=str(REPO))
        log = open(workdir / "ocd.log", "w")
        started = time.perf_counter()
        child = subprocess.Popen([sys.executable, "-m", "ocd", "run", "--config", str(cfg)],
                                 cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT)
        wall = None
        try:
            deadline = started + 120
            while time.perf_counter() < deadline and wall is None:
                # Slow joiner and start-up: send the telescope's time until a decision comes.
                pub.send_multipart(tcs_event("tcs.receiver.heartbeat", night))
                pub.send_multipart(tcs_event("legacy.shutter.status", night, state="open"))
                while sub.poll(20):
                    # A decision made before the first telescope event is at the
                    # machine's time (another hour, another span): not this one.
                    payload = json.loads(sub.recv_multipart()[1])
                    if abs(payload.get("now", 0.0) - night) < 3600:
                        wall = time.perf_counter() - started
                        break
            if wall is None:
                raise RuntimeError(f"no decision; see {workdir / 'ocd.log'}")
        finally:
            child.terminate()
            _pid, _status, usage = os.wait4(child.pid, 0)
            log.close()
            pub.close(linger=0)
            sub.close(linger=0)
            context.term()
        return usage.ru_utime + usage.ru_stime, wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    figures: dict[str, list[tuple[float, float]]] = {"first start": [], "new hour": [],
                                                     "same hour": []}
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="ocd-start-cache-") as cache_folder:
            cache = Path(cache_folder)
            figures["first start"].append(one_start(cache, NIGHT))
            figures["new hour"].append(one_start(cache, NIGHT + 86400.0))
            figures["same hour"].append(one_start(cache, NIGHT + 600.0))
    base_cpu = min(c for c, _w in figures["first start"])
    base_wall = min(w for _c, w in figures["first start"])
    print(f"ocd run, start to first decision, 24 shots, best of {args.rounds}:")
    for name, runs in figures.items():
        cpu, wall = min(c for c, _w in runs), min(w for _c, w in runs)
        print(f"  {name:12s} CPU {cpu:5.2f} s ({cpu / base_cpu:4.2f} of the first start), "
              f"wall {wall:5.2f} s ({wall / base_wall:4.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
