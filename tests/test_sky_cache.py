"""Sky spans kept between starts (ocd.services.sky_cache)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest

from ocd.core import scheduler
from ocd.core.decide import DecisionSettings
from ocd.core.scheduler import AstropySky, Scheduler, TimeGrid, sky_origin
from ocd.core.shots import Shot
from ocd.services import sky_cache
from ocd.services.sky_cache import SkyCache

#: An evening at the HET (2018-05-15 02:00 UTC) and two shots.
NIGHT = 1526349600.0
RA = np.array([13.5, 16.25])
DEC = np.array([51.2, 54.9])
SHOTS = [Shot("A", 13.5, 51.2, 2, 1, 1, -1.0), Shot("B", 16.25, 54.9, 2, 1, 1, -1.0)]


class CountingSky:
    """A SkySource that computes with astropy and counts what it computed."""

    def __init__(self) -> None:
        self.grids: list[float] = []
        self.places: list[int] = []

    def time_grid(self, origin: float) -> TimeGrid:
        self.grids.append(origin)
        return AstropySky().time_grid(origin)

    def apparent_places(self, origin, ra_hours, dec_deg):
        self.places.append(len(ra_hours))
        return AstropySky().apparent_places(origin, ra_hours, dec_deg)


def test_a_second_cache_on_the_folder_reads_what_the_first_computed(tmp_path):
    first_sky, second_sky = CountingSky(), CountingSky()
    prepared: list[str] = []
    first = SkyCache(tmp_path, first_sky, before_compute=lambda: prepared.append("first"))
    grid = first.time_grid(NIGHT)
    ra, dec = first.apparent_places(NIGHT, RA, DEC)
    assert first_sky.grids == [NIGHT] and first_sky.places == [2] and first.computed == 2
    assert prepared == ["first"]  # the IERS table, once, before computing
    second = SkyCache(tmp_path, second_sky, before_compute=lambda: prepared.append("second"))
    again = second.time_grid(NIGHT)
    ra2, dec2 = second.apparent_places(NIGHT, RA, DEC)
    assert second_sky.grids == [] and second_sky.places == [] and second.hits == 2
    assert prepared == ["first"]  # a start that reads its span never hands over the table
    assert np.array_equal(again.last, grid.last) and np.array_equal(again.sun_alt, grid.sun_alt)
    assert again.rate == grid.rate and not again.last.flags.writeable
    assert np.array_equal(ra2, ra) and np.array_equal(dec2, dec)
    # another hour, another shot list: computed, not read
    second.time_grid(NIGHT + 3600.0)
    second.apparent_places(NIGHT, RA[:1], DEC[:1])
    assert second_sky.grids == [NIGHT + 3600.0] and second_sky.places == [1]


@pytest.mark.parametrize("spoil", ["corrupt", "bad crc", "other key", "symlink", "not ours"])
def test_a_file_that_cannot_be_trusted_is_computed_again_and_written_over(tmp_path, spoil):
    SkyCache(tmp_path, CountingSky()).time_grid(NIGHT)
    (path,) = tmp_path.glob("sky-*.npz")
    if spoil == "corrupt":
        path.write_bytes(path.read_bytes()[:100])
    elif spoil == "bad crc":  # a byte flipped inside an array: zipfile finds it on reading
        data = bytearray(path.read_bytes())
        start = data.index(b"sun_alt.npy") + 200
        data[start] ^= 0xFF
        path.write_bytes(bytes(data))
    elif spoil == "other key":
        with np.load(path) as data:
            arrays = {name: data[name] for name in data.files}
        key = json.loads(str(arrays["key"][()]))
        key["versions"]["astropy"] = "0.1"
        arrays["key"] = np.array(json.dumps(key, sort_keys=True))
        arrays["last"] = arrays["last"] + 1.0  # what another astropy would say
        with open(path, "wb") as handle:
            np.savez(handle, **arrays)
    elif spoil == "symlink":
        real = tmp_path / "elsewhere.npz"
        path.rename(real)
        path.symlink_to(real)
    else:
        if os.geteuid() != 0:
            pytest.skip("changing a file's owner needs root")
        os.chown(path, 65534, -1)
    counting = CountingSky()
    grid = SkyCache(tmp_path, counting).time_grid(NIGHT)
    assert counting.grids == [NIGHT]
    assert np.array_equal(grid.last, AstropySky().time_grid(NIGHT).last)
    if spoil in ("corrupt", "bad crc", "other key"):  # written over: the next start reads it
        later = CountingSky()
        SkyCache(tmp_path, later).time_grid(NIGHT)
        assert later.grids == []


def test_a_span_kept_by_other_code_of_ocd_is_computed_again(tmp_path, monkeypatch):
    """An upgrade of OCD (or a change under test) that changes how a span is
    computed must not read the spans the old code kept."""
    SkyCache(tmp_path, CountingSky()).time_grid(NIGHT)
    key = dict(sky_cache.software_key())
    monkeypatch.setattr(sky_cache, "software_key", lambda: dict(key, code="another version"))
    counting = CountingSky()
    SkyCache(tmp_path, counting).time_grid(NIGHT)
    assert counting.grids == [NIGHT]
    assert len(key["code"]) == 64  # the modules' hash is in the real key


def test_a_key_that_cannot_be_made_still_gives_the_span(tmp_path, monkeypatch):
    """A broken installation (an IERS file gone, metadata missing) must not stop
    OCD from deciding: the span is computed, and nothing is kept."""
    def broken():
        raise FileNotFoundError("finals2000A.all is gone")

    monkeypatch.setattr(sky_cache, "software_key", broken)
    counting = CountingSky()
    prepared: list[int] = []
    cache = SkyCache(tmp_path, counting, before_compute=lambda: prepared.append(1))
    grid = cache.time_grid(NIGHT)
    ra, dec = cache.apparent_places(NIGHT, RA, DEC)
    assert counting.grids == [NIGHT] and counting.places == [2] and prepared == [1]
    assert np.array_equal(grid.last, AstropySky().time_grid(NIGHT).last) and len(ra) == 2
    assert not list(tmp_path.glob("sky-*"))


def test_a_finals_file_in_the_working_directory_means_no_cache(tmp_path, monkeypatch):
    """astropy reads ./finals2000A.all then: spans from the bundled tables would differ."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "finals2000A.all").write_text("")
    cache = tmp_path / "cache"
    for _ in range(2):
        counting = CountingSky()
        SkyCache(cache, counting).time_grid(NIGHT)
        assert counting.grids == [NIGHT]
    assert not list(cache.glob("sky-*"))


def test_old_files_are_pruned_when_a_new_one_is_written(tmp_path):
    old = tmp_path / "sky-0123456789abcdef01234567.npz"
    old.write_bytes(b"x")
    recent = tmp_path / "sky-fedcba9876543210fedcba98.npz"
    recent.write_bytes(b"x")
    past = time.time() - sky_cache.PRUNE_AGE - 60
    os.utime(old, (past, past))
    other = tmp_path / "iers-0123456789abcdef.npz"  # not a sky file: left alone
    other.write_bytes(b"x")
    os.utime(other, (past, past))
    SkyCache(tmp_path, CountingSky()).time_grid(NIGHT)
    assert not old.exists() and recent.exists() and other.exists()


def test_a_folder_that_cannot_be_written_only_costs_the_computation(tmp_path):
    folder = tmp_path / "file-not-folder"
    folder.write_text("")
    counting = CountingSky()
    grid = SkyCache(folder, counting).time_grid(NIGHT)
    assert counting.grids == [NIGHT] and len(grid.times)


def test_the_sky_service_sits_before_the_first_tick_and_puts_the_source_back(free_url):
    """A start that fails in the main loop (a bad state database) pays nothing for
    astropy; the timer's first tick, the first decision, finds the cache set."""
    from twisted.internet.task import Clock

    from bus_helpers import make_config
    from ocd.app import makeService
    from ocd.services.sky_cache import SkyService

    names = [child.name for child in makeService(make_config(free_url), Clock())]
    assert names.index("main_loop") < names.index("sky") < names.index("timer")
    before = scheduler.use_sky_source(None)
    scheduler.use_sky_source(before)
    service = SkyService()
    service.startService()
    try:
        assert isinstance(scheduler._source, SkyCache)
    finally:
        service.stopService()
    assert scheduler._source is before


WARM = """
import json, sys
from ocd.services.sky_cache import keep_sky_spans
from ocd.core.decide import DecisionSettings
from ocd.core.scheduler import Scheduler
from ocd.core.shots import Shot
keep_sky_spans()
now = float(sys.argv[1])
shots = [Shot("A", 13.5, 51.2, 2, 1, 1, -1.0), Shot("B", 16.25, 54.9, 2, 1, 1, -1.0)]
s = Scheduler(shots, DecisionSettings())
alts = s.altitudes(now).tolist()
sun = s.sun_altitude([now, now + 5000.0]).tolist()
print(json.dumps({"alts": alts, "sun": sun,
                  "astropy": sorted(m for m in sys.modules if m.split(".")[0] in ("astropy", "erfa"))[:3]}))
"""


@pytest.mark.slow(3)
def test_a_warm_start_decides_on_the_kept_span_without_importing_astropy(tmp_path, child_env):
    cache = tmp_path / "cache"
    cache.mkdir()
    # The run's IERS table (conftest): the cold start computes its span without
    # building the table from astropy's files (test_earth_orientation does that).
    from ocd.sim.cache import cache_dir

    for table in cache_dir().glob("iers-*.npz"):
        shutil.copy(table, cache)
    env = dict(child_env, OCD_CACHE_DIR=str(cache))
    runs = []
    for now in (NIGHT + 600.0, NIGHT + 3000.0):  # two starts in the same hour
        done = subprocess.run([sys.executable, "-c", WARM, repr(now)], env=env, cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    cold, warm = runs
    assert cold["astropy"] and warm["astropy"] == []
    # the same span: what this process computes at the second start's moment
    here = Scheduler(SHOTS, DecisionSettings())
    assert warm["alts"] == here.altitudes(NIGHT + 3000.0).tolist()
    assert warm["sun"] == here.sun_altitude([NIGHT + 3000.0, NIGHT + 8000.0]).tolist()
    assert sky_origin(NIGHT + 600.0) == sky_origin(NIGHT + 3000.0) == NIGHT

