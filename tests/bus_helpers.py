"""Helpers shared by the event-bus tests (no reactor import at module level)."""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from ocd.config import Config
from ocd.core.events import Event, UrlKind, event_from_payload, make_payload

#: A dark moment of the default sample night (2025-02-20, 06:00 UTC).
NIGHT = 1740031200.0
STANDIN_SYSCMD = f"{sys.executable} -m ocd.sim.syscmd {{switch}} {{command}}"
STANDIN_DITHER = f"{sys.executable} -m ocd.sim.dither --exposure {{exposure}} --exptime {{seconds}}"


def make_config(free_url: Callable[[], str], **extra: str) -> Config:
    """A config whose every URL is a fresh free one; ``extra`` = {"section__option": value}."""
    state = tempfile.mkdtemp(prefix="ocd-test-")
    overrides = [
        ("urls", "event_urls", free_url()),
        ("urls", "ocd_db_replay", ""),
        ("urls", "ocd_main_loop", free_url()),
        ("urls", "ocd_allow_hetdex", free_url()),
        ("urls", "ocd_config", free_url()),
        ("urls", "ocd_run_shot", f"{free_url()} {free_url()}"),
        ("dates", "clock", "tcs"),
        # The tests send fixed historical TCS times (2018, 2025) on TCS URLs.
        ("dates", "max_time_offset", "0"),
        # Local state of the main loop goes to a fresh folder, never the work tree.
        ("shots", "state_db", str(Path(state) / "state.sqlite")),
        ("shots", "shot_file", str(Path(state) / "shots.txt")),
        ("database", "sqlite_file", str(Path(state) / "obsnum.sqlite")),
        ("general", "night_log", str(Path(state) / "nightlog.sqlite")),
        # No status page: the tests of the page ask for one (status__endpoint,
        # a port of the system's choosing, never 8642, which parallel test runs
        # and a real OCD would fight over); every child ``ocd run`` then starts
        # without twisted.web.
        ("status", "endpoint", ""),
    ]
    for key, value in extra.items():
        section, option = key.split("__", 1)
        overrides.append((section, option, value))
    return Config.load(None, overrides=overrides)




def write_whole_config(config: Config, path, sections: Sequence[str] | None = None) -> str:
    """Write ``sections`` of ``config`` (every one by default) to a file a child reads.

    Raw values, one line each (a value of several lines is joined with spaces).
    """
    values = config.as_dict()
    lines = []
    for section in sections or values:
        lines.append(f"[{section}]")
        lines += [f"{option} = {value.replace(chr(10), ' ')}"
                  for option, value in values[section].items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def write_config(config: Config, path) -> str:
    """Write the sections of ``config`` a child main loop or command reads (URLs and the like)."""
    return write_whole_config(config, path, ("general", "urls", "dates", "topics", "shots",
                                             "database", "status"))


def tcs_frames(topic: str, data_time: float, **fields: Any) -> list[bytes]:
    system, source, key = topic.split(".", 2)
    payload = dict(fields, __system=system, __source=source, __key=key,
                   __data_time=data_time, __wire_time=time.time(), __data=False)
    return [topic.encode(), json.dumps(payload).encode()]


def wait_until(condition: Callable[[], bool], timeout: float = 5.0, step: float = 0.01):
    """A Deferred that fires True once ``condition()`` holds, False after ``timeout``."""
    from twisted.internet import reactor
    from twisted.internet.defer import Deferred

    d: Deferred = Deferred()
    deadline = reactor.seconds() + timeout

    def poll() -> None:
        if condition():
            d.callback(True)
        elif reactor.seconds() > deadline:
            d.callback(False)
        else:
            reactor.callLater(step, poll)

    poll()
    return d


def sleep(seconds: float):
    from twisted.internet import reactor
    from twisted.internet.task import deferLater

    return deferLater(reactor, seconds, lambda: None)


def event_on(kind: UrlKind, topic: str, data_time: float, **fields: Any) -> Event:
    """An event as a subscriber on a ``kind`` URL hands it to the main loop."""
    url = "tcp://tcs" if kind is UrlKind.TCS else "tcp://control"
    return event_from_payload(topic, make_payload(topic, fields, data_time, data_time), kind, url)


def tcs_event(topic: str, t: float, **fields: Any) -> Event:
    """A TCS event whose data time is ``t``."""
    return event_on(UrlKind.TCS, topic, t, **fields)


def feed_good_sky(loop: Any, t: float) -> None:
    """Feed ``loop`` a TCS that says: alive, dry, calm, open, good seeing."""
    loop.handle_event(tcs_event("tcs.receiver.heartbeat", t))
    loop.handle_event(tcs_event("legacy.weather.status", t, humidity=20, wind_speed=3, ambtemp=5,
                                dewpoint=-10))
    loop.handle_event(tcs_event("legacy.shutter.status", t, state="open"))
    loop.handle_event(tcs_event("pas.Guider1.metrology_data", t, fwhm=1.2, transparency=0.95,
                                valid=True))


def control_event(kind: UrlKind, topic: str, **fields: Any) -> Event:
    """A control event (``allow_hetdex``, ``config``, ...) with data time :data:`NIGHT`."""
    return event_on(kind, topic, NIGHT, **fields)


def good_sky_now(loop: Any, clock: Any, t: float) -> None:
    """:func:`feed_good_sky`, then let the loop's Clock run what is due now."""
    feed_good_sky(loop, t)
    clock.advance(0)


def clock_loop_config(tmp_path: Path, shots: int = 6, extra: Sequence[tuple[str, str, str]] = (),
                      options: dict | None = None) -> Config:
    """Configuration of a main loop on a Clock, its files in ``tmp_path``.

    A sample shot list of ``shots`` shots around :data:`NIGHT`, the stand-ins
    as programs, and TCS times of 2025 accepted on a Clock that starts near 0;
    then the ``extra`` overrides and ``options`` ({(section, option): value}).
    """
    from ocd.sim.shotlist import make_sample_shots, shot_list_text

    sample = make_sample_shots(NIGHT - 3600, NIGHT + 3600, shots, seed=3)
    shot_file = tmp_path / "shots.txt"
    shot_file.write_text(shot_list_text(sample))
    overrides = [("shots", "shot_file", str(shot_file)),
                 ("shots", "state_db", str(tmp_path / "state.sqlite")),
                 ("run_shot", "syscmd_command", STANDIN_SYSCMD),
                 ("run_shot", "dither_command", STANDIN_DITHER),
                 ("dates", "max_time_offset", "0"),
                 *extra]
    overrides += [(s, o, v) for (s, o), v in (options or {}).items()]
    return Config.load(None, overrides)


def one_shot_standin_config(free_url: Callable[[], str], folder: Path, night: float,
                            **extra: str) -> tuple[Config, list]:
    """A configuration for ``ocd run`` with one shot observable at ``night``.

    Writes the shot list and its shuffle files into ``folder``; the shot runs
    through OCD's stand-ins (``python -m ocd.sim.*``) and OCD's clock is pinned
    at ``night``. ``extra`` (``section__option``) overrides or adds options.
    Returns the configuration and the shots.
    """
    from ocd.sim.shotlist import make_sample_shots, shot_list_text
    from ocd.sim.shuffle_files import write_shuffle_files

    shots = make_sample_shots(night - 300, night + 300, 1, seed=5)
    (folder / "shots.txt").write_text(shot_list_text(shots))
    write_shuffle_files(shots, folder)
    py = sys.executable
    options = dict(
        dates__mock_time=str(night),
        shots__shot_file=str(folder / "shots.txt"),
        paths__shuffle_shot=str(folder),
        run_shot__syscmd_command=f"{py} -m ocd.sim.syscmd {{switch}} {{command}}",
        run_shot__dither_command=f"{py} -m ocd.sim.dither --exposure {{exposure}} "
                                 "--exptime {seconds} --obsnum {obs_number} --object {shotid}",
        decision__decide_interval="0.2",
    )
    options.update(extra)
    return make_config(free_url, **options), shots
