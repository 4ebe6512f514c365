"""astropy's IERS table kept between starts (ocd.services.earth_orientation).

The table given back from the cache must be the one astropy builds: every
column, unit, mask and meta value, and the sidereal times, positions and
UT1-UTC it gives. A file that is garbage, made for another astropy, or not
the user's is never used. Two child processes check a cold and a warm start
end to end; one checks that importing the service tree leaves astropy out.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

from conftest import REPO
from ocd.services import earth_orientation as eo

import ocd.core.astro  # noqa: F401  (offline set-up before the astropy imports below)
from astropy import units as u  # noqa: E402
from astropy.table import MaskedColumn  # noqa: E402
from astropy.time import Time  # noqa: E402
from astropy.utils import iers  # noqa: E402

from ocd.core.astro import HET_LOCATION  # noqa: E402

#: One worker runs the module: its module fixture builds astropy's own table
#: from its files (about 1.5 s of CPU), once, not in each worker.
pytestmark = pytest.mark.xdist_group("earth_orientation")

#: Unix times across the table: IERS-B values (2015, 2020), IERS-A ones, the
#: predictions, and past the end of the table (astropy extrapolates, warns).
TIMES = np.array([1.43e9, 1.58e9, 1.70e9, 1.76e9, 1.80e9, 1.95e9])


def assert_same_table(got, want):
    assert type(got) is type(want) is iers.IERS_Auto
    assert got.colnames == want.colnames
    for name in want.colnames:
        a, b = got[name], want[name]
        assert type(a) is type(b), name
        if isinstance(b, u.Quantity):
            assert a.unit == b.unit, name
            np.testing.assert_array_equal(a.value, b.value, err_msg=name)
        else:
            assert a.dtype == b.dtype, name
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=name)
        if isinstance(b, MaskedColumn):
            np.testing.assert_array_equal(a.mask, b.mask, err_msg=name)
    assert dict(got.meta) == dict(want.meta)
    assert {k: type(v) for k, v in got.meta.items()} == {k: type(v) for k, v in want.meta.items()}


def what_astropy_computes(table):
    """Sidereal time, UT1-UTC (with its source) and polar motion on ``table``."""
    with iers.earth_orientation_table.set(table), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # past the table: astropy extrapolates and says so
        t = Time(TIMES, format="unix")
        last = t.sidereal_time("apparent", longitude=HET_LOCATION.lon).value
        dut1, status = table.ut1_utc(t, return_status=True)
        xp, yp = table.pm_xy(t)
    return last, dut1.value, status, xp.value, yp.value


@pytest.fixture(scope="module")
def astropy_table():
    """The table astropy builds itself from its files, astropy's own for this module.

    Built now, whatever this process had (conftest hands every test process
    OCD's cached table, as ``ocd run`` does): the tests compare the cache
    with what astropy makes without it. Put back at the module's end.
    """
    kept = iers.IERS_Auto.iers_table
    iers.IERS_Auto.iers_table = None
    try:
        yield iers.IERS_Auto.open()
    finally:
        iers.IERS_Auto.iers_table = kept


def test_a_warm_start_gets_the_table_astropy_built(tmp_path, astropy_table):
    cold, how = eo.cached_table(tmp_path)
    assert "kept in" in how and "no cache file yet" in how
    assert cold is astropy_table
    (path,) = tmp_path.glob("iers-*.npz")
    assert path == eo.cache_file(tmp_path, eo.cache_key())
    assert oct(path.stat().st_mode & 0o777) == "0o600"  # the temporary file's mode, kept
    warm, how = eo.cached_table(tmp_path)
    assert how == f"from the cache file {path}"
    assert warm is not astropy_table
    assert_same_table(warm, astropy_table)
    for got, want in zip(what_astropy_computes(warm), what_astropy_computes(astropy_table)):
        np.testing.assert_array_equal(got, want)


def test_a_garbage_file_is_ignored_and_rewritten(tmp_path, astropy_table):
    path = eo.cache_file(tmp_path, eo.cache_key())
    path.write_bytes(b"PK\x03\x04 not a zip at all")
    table, how = eo.cached_table(tmp_path)
    assert "the cache file was ignored: it cannot be read" in how and "kept in" in how
    assert table is astropy_table
    assert_same_table(eo.load_table(path, eo.cache_key()), astropy_table)


def test_a_file_of_another_astropy_is_ignored_and_rewritten(tmp_path, astropy_table):
    key = eo.cache_key()
    other = dict(key, astropy="0.0.1")
    path = eo.cache_file(tmp_path, key)
    eo.save_table(astropy_table, path, other)  # at this key's name, made for another
    with pytest.raises(eo.CacheUnusable, match="another astropy"):
        eo.load_table(path, key)
    table, how = eo.cached_table(tmp_path)
    assert "made for another astropy" in how and "kept in" in how
    assert_same_table(eo.load_table(path, key), astropy_table)
    # and the key is in the name: two installations keep one file each
    assert eo.cache_file(tmp_path, other) != path


def test_a_symlink_is_not_followed(tmp_path, astropy_table):
    key = eo.cache_key()
    real = tmp_path / "elsewhere.npz"
    eo.save_table(astropy_table, real, key)
    path = eo.cache_file(tmp_path, key)
    path.symlink_to(real)
    with pytest.raises(eo.CacheUnusable, match="not a regular file"):
        eo.load_table(path, key)


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file away needs root")
def test_a_cache_of_another_user_is_never_read(tmp_path, astropy_table):
    key = eo.cache_key()
    nobody = 65534
    # A file that is not ours in our folder: ignored, replaced by ours.
    path = eo.cache_file(tmp_path, key)
    eo.save_table(astropy_table, path, key)
    os.chown(path, nobody, -1)
    table, how = eo.cached_table(tmp_path)
    assert f"belongs to user id {nobody}" in how and "kept in" in how
    assert path.stat().st_uid == os.geteuid()
    # A folder that is not ours: not read, not written.
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    eo.save_table(astropy_table, eo.cache_file(theirs, key), key)
    os.chown(theirs, nobody, -1)
    before = sorted(p.name for p in theirs.iterdir())
    table, how = eo.cached_table(theirs)
    assert table is astropy_table
    assert f"cache not used: the cache folder belongs to user id {nobody}" in how
    assert sorted(p.name for p in theirs.iterdir()) == before


CHILD = """
import json, sys
from ocd.services.earth_orientation import install
how = install()
from astropy.time import Time
from ocd.core.astro import HET_LOCATION
from ocd.core.decide import DecisionSettings
from ocd.core.scheduler import Scheduler
times = json.loads(sys.argv[1])
last = Time(times, format="unix").sidereal_time("apparent", longitude=HET_LOCATION.lon)
sun = Scheduler([], DecisionSettings()).sun_altitude(times)
from astropy.utils import iers
read = iers.IERS_Auto.iers_table is not None  # did astropy parse its files itself?
print(json.dumps({"how": how, "last": last.value.tolist(), "sun": sun.tolist(), "read": read}))
"""


@pytest.mark.slow(4)
def test_a_cold_and_a_warm_start_give_the_same_sidereal_times(tmp_path, child_env,
                                                              astropy_table):
    env = dict(child_env, OCD_CACHE_DIR=str(tmp_path / "cache"))
    runs = []
    times = [1.76e9, 1.76e9 + 3600.0, 1.76e9 + 7200.0]  # one sky span
    for _ in range(2):
        done = subprocess.run([sys.executable, "-c", CHILD, json.dumps(times)], env=env,
                              cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    cold, warm = runs
    assert "read from astropy's IERS files (no cache file yet) and kept in" in cold["how"]
    assert warm["how"].startswith(f"from the cache file {tmp_path / 'cache'}/iers-")
    assert cold["read"] and not warm["read"]  # the warm start computed on the cached table
    assert warm["last"] == cold["last"]
    assert warm["sun"] == cold["sun"]
    # and this process, on astropy's own table, agrees to the last bit
    with iers.earth_orientation_table.set(astropy_table):
        here = Time(times, format="unix").sidereal_time("apparent", longitude=HET_LOCATION.lon)
    assert here.value.tolist() == cold["last"]


def test_a_finals_file_in_the_working_directory_is_left_to_astropy(tmp_path, monkeypatch):
    """astropy reads ./finals2000A.all then (its old behaviour): nothing to cache."""
    monkeypatch.setattr(eo, "_installed", None)  # a fresh process, as far as install knows
    monkeypatch.setattr(iers.IERS_Auto, "iers_table", None)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "finals2000A.all").write_text("")
    handed: list = []
    monkeypatch.setattr(iers.earth_orientation_table, "set", handed.append)
    how = eo.install(tmp_path / "cache")
    assert how.startswith("not cached: astropy reads finals2000A.all from the working directory")
    assert not (tmp_path / "cache").exists()
    assert handed == []  # astropy's own choice stands
    assert eo.install(tmp_path / "cache") is how  # once per process


def test_the_service_tree_and_the_commands_that_never_decide_leave_astropy_out():
    """What a start that fails early, and ocd allow_hetdex, run_shot, db_replay,
    status, config send and keys import: no astropy, no matplotlib."""
    code = (
        "import sys, ocd.app, ocd.cli\n"
        "ocd.cli.build_parser()\n"
        "for name in ('allow_hetdex', 'run_shot', 'db_replay', 'status', 'config_send', "
        "'keys', 'run'):\n"
        "    __import__('ocd.commands.' + name)\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'astropy', 'matplotlib', 'erfa'}))"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
