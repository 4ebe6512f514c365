"""A shot file that is not a regular file, or is far too large, is refused at once.

``[shots] shot_file = /dev/full`` used to be read until memory ran out (the
reactor blocked, SIGTERM ignored), and a FIFO blocked the start for ever
(``open`` waits for a writer). Now only a regular file of at most
:data:`~ocd.core.shots.MAX_SHOT_FILE_BYTES` is read; anything else is refused
like a bad shot list: the last good list is kept and the reason names the file.

Without the fix the FIFO tests hang (hence the timeouts) and the endless
device tests would eat memory: they run under an address-space limit, so
that they fail with MemoryError instead.
"""

from __future__ import annotations

import os
import resource
import stat

import pytest

from ocd.config import Config
from ocd.core.counters import Counters
from ocd.core.decide import DecisionSettings
from ocd.core.shots import MAX_SHOT_FILE_BYTES, ShotListError, parse_shot_file
from ocd.services.shot_list import ShotList
from ocd.sim.shotlist import make_sample_shots, shot_list_text

T0 = 1526353200.0
ENDLESS = "/dev/zero"  # an endless character device; read only, never written

needs_endless = pytest.mark.skipif(
    not (os.path.exists(ENDLESS) and stat.S_ISCHR(os.stat(ENDLESS).st_mode)),
    reason=f"no {ENDLESS} here",
)


@pytest.fixture
def settings():
    return DecisionSettings.from_config(Config.load(None))


@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "shots.fifo"
    os.mkfifo(path)
    return path


@pytest.fixture
def memory_cap():
    """At most ~1 GB more address space for the test: an unbounded read fails
    with MemoryError instead of taking the machine's memory."""
    with open("/proc/self/status") as status:
        vm_kb = next(int(line.split()[1]) for line in status if line.startswith("VmSize:"))
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = vm_kb * 1024 + (1 << 30)
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def write_list(path, count=3):
    path.write_text(shot_list_text(make_sample_shots(T0, T0 + 3 * 3600, count, seed=1)))


def counts(shot_list):
    return {s.shotid: s.n_obs for s in shot_list.scheduler.shots}


# -- reading the file (ocd.core.shots.parse_shot_file) ----------------------

@pytest.mark.timeout(10)
def test_a_fifo_is_refused_without_waiting_for_a_writer(fifo):
    with pytest.raises(ShotListError, match=r"is a FIFO \(named pipe\), not a regular file") as caught:
        parse_shot_file(fifo)
    assert caught.value.name == str(fifo) and str(caught.value).startswith(f"{fifo}: ")


@needs_endless
@pytest.mark.timeout(10)
def test_an_endless_character_device_is_refused_without_reading_it(memory_cap):
    with pytest.raises(ShotListError, match=f"^{ENDLESS}: is a character device, not a regular file"):
        parse_shot_file(ENDLESS)


def test_a_folder_is_refused(tmp_path):
    with pytest.raises(ShotListError) as caught:
        parse_shot_file(tmp_path)
    assert caught.value.name == str(tmp_path) and str(caught.value).startswith(f"{tmp_path}: ")


def test_a_regular_file_larger_than_the_bound_is_refused(tmp_path):
    path = tmp_path / "huge.txt"
    with open(path, "wb") as handle:
        handle.truncate(MAX_SHOT_FILE_BYTES + 1)  # sparse: no 16 MB written
    assert MAX_SHOT_FILE_BYTES == 16 * 1024 * 1024
    with pytest.raises(ShotListError, match=f"^{path}: is larger than 16 MB"):
        parse_shot_file(path)


def test_a_file_whose_size_says_nothing_is_still_read_only_up_to_the_bound():
    path = "/proc/self/status"  # a regular file of size 0 that has bytes
    if not os.path.exists(path):
        pytest.skip("no /proc here")
    with pytest.raises(ShotListError, match=f"^{path}: is larger than 100 bytes"):
        parse_shot_file(path, limit=100)


def test_a_good_file_still_parses_up_to_the_bound_exactly(tmp_path):
    path = tmp_path / "shots.txt"
    write_list(path)
    shots = parse_shot_file(path, limit=path.stat().st_size)
    assert len(shots) == 3 and parse_shot_file(path) == shots


# -- the shot list in force (ocd.services.shot_list.ShotList) ----------------

@pytest.mark.timeout(10)
def test_a_fifo_in_place_of_the_shot_file_keeps_the_last_good_list(tmp_path, settings):
    path = tmp_path / "shots.txt"
    write_list(path)
    counters = Counters()
    shots = ShotList(settings, counters)
    assert shots.read(path, settings) is None
    good = counts(shots)
    path.unlink()
    os.mkfifo(path)  # the file becomes a FIFO during the night
    assert shots.file_changed(path)
    problem = shots.read(path, settings)
    assert problem == f"shot file rejected: {path}: is a FIFO (named pipe), not a regular file"
    assert counts(shots) == good and shots.have_good_list
    assert counters.get("shot_file.rejected") == 1


@needs_endless
@pytest.mark.timeout(10)
def test_an_endless_device_as_the_shot_file_gives_no_shots(settings, memory_cap):
    counters = Counters()
    shots = ShotList(settings, counters)
    problem = shots.read(ENDLESS, settings)
    assert problem == f"shot file rejected: {ENDLESS}: is a character device, not a regular file"
    assert not shots.have_good_list and not shots.scheduler.shots
    assert counters.get("shot_file.rejected") == 1


def test_a_too_large_shot_file_keeps_the_last_good_list(tmp_path, settings):
    path = tmp_path / "shots.txt"
    write_list(path)
    shots = ShotList(settings, Counters())
    assert shots.read(path, settings) is None
    good = counts(shots)
    with open(path, "r+b") as handle:
        handle.truncate(MAX_SHOT_FILE_BYTES + 1)
    problem = shots.read(path, settings)
    assert problem.startswith(f"shot file rejected: {path}: is larger than 16 MB")
    assert counts(shots) == good and shots.have_good_list
