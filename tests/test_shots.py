"""Shot list parsing (shots.md section 1) and the state database."""

from __future__ import annotations

import pytest

from ocd.core.shots import METADATA_COLUMNS, Shot, ShotListError, parse_shot_file, parse_shot_text
from ocd.services.shot_store import ShotStore

SAMPLE = "DEX00001 12.401733 56.1464 2 1 1 -1 89 HET18-2-100 HS0015_E 000 10:55:31.00 +51:07:40.44 2000 0.0 0.0 2000"


def line(shotid="DEX00001", **changes):
    cols = SAMPLE.split()
    cols[0] = shotid
    names = ["shotid", "ra", "dec", "track", "priority", "n_obs", "forced_az"]
    for key, value in changes.items():
        cols[names.index(key)] = str(value)
    return " ".join(cols)


def test_good_file_with_comments_and_blank_lines(tmp_path):
    path = tmp_path / "shots.txt"
    path.write_text(
        "# shotid ra dec ...\n\n" + SAMPLE + "   # the spec's sample\n"
        "   \n" + line("DEX00002", track=0, priority=3, n_obs=2, forced_az=120.5) + "\n"
    )
    shots = parse_shot_file(path)
    assert [s.shotid for s in shots] == ["DEX00001", "DEX00002"]
    first = shots[0]
    assert (first.ra, first.dec, first.track, first.priority, first.n_obs, first.forced_az) == (
        12.401733, 56.1464, 2, 1, 1, -1.0)
    assert list(first.metadata) == list(METADATA_COLUMNS)
    assert first.metadata["QIFU"] == "000" and first.metadata["QRA"] == "10:55:31.00"
    assert first.tracks == (0, 1) and shots[1].tracks == (0,)
    assert shots[1].forced_az == 120.5


@pytest.mark.parametrize(
    "bad, column, words",
    [
        (line(ra="12h"), 2, "'12h' is not a number"),
        (line(ra=24.5), 2, "0 <= ra < 24"),
        (line(dec=91), 3, "-90 <= dec <= 90"),
        (line(track=3), 4, "must be 0 (EAST), 1 (WEST) or 2 (either)"),
        (line(track=1.5), 4, "is not an integer"),
        (line(priority=-1), 5, ">= 0"),
        (line(n_obs="x"), 6, "is not an integer"),
        (line(forced_az=400), 7, "-1 (none)"),
        (line(ra="nan"), 2, "is not a number"),
        (" ".join(SAMPLE.split()[:12]), 13, "missing; a shot line has 17 columns, this one has 12"),
        (SAMPLE + " extra", 18, "unexpected 'extra'"),
        (line("X" * 33), 1, "longer than 32"),
    ],
)
def test_each_kind_of_bad_line_is_refused_with_file_line_and_column(tmp_path, bad, column, words):
    path = tmp_path / "shots.txt"
    path.write_text("# header\n" + line("DEX00009") + "\n" + bad + "\n")
    with pytest.raises(ShotListError) as caught:
        parse_shot_file(path)
    error = caught.value
    assert (error.name, error.line, error.column) == (str(path), 3, column)
    assert str(error).startswith(f"{path}, line 3, column {column} (")
    assert words in str(error)


def test_character_position_is_given_too():
    with pytest.raises(ShotListError, match=r"line 1, column 3 \(dec, character 20\): 'north'"):
        parse_shot_text(line(dec="north"), "list")


def test_duplicate_shotid_is_an_error():
    with pytest.raises(ShotListError, match=r"x, line 3, column 1 .*duplicate shotid 'DEX00001' \(first on line 1\)"):
        parse_shot_text(SAMPLE + "\n" + line("DEX00002") + "\n" + SAMPLE, "x")


def test_unreadable_files(tmp_path):
    with pytest.raises(ShotListError, match="cannot read the shot list"):
        parse_shot_file(tmp_path / "missing.txt")
    path = tmp_path / "latin.txt"
    path.write_bytes(b"# ok\n\xff\xfe\n")
    with pytest.raises(ShotListError, match="line 2: not UTF-8"):
        parse_shot_file(path)


def test_store_keeps_remaining_across_restart_and_follows_the_file(tmp_path):
    db = tmp_path / "state" / "ocd-state.sqlite"
    shots = parse_shot_text(SAMPLE + "\n" + line("DEX00002", n_obs=3))
    store = ShotStore(db)
    assert [s.n_obs for s in store.sync(shots)] == [1, 3]
    assert store.count_down("DEX00002") == 2
    assert store.count_down("DEX00001") == 0
    assert store.count_down("DEX00001") == 0  # never below zero
    assert store.count_down("NOT-IN-LIST") == 0
    store.close()

    store = ShotStore(db)  # restart: the same file, remaining counts kept
    assert [s.n_obs for s in store.sync(shots)] == [0, 2]
    # The file changes: DEX00002's n_obs edited (the file wins), DEX00001
    # removed, DEX00003 new.
    edited = parse_shot_text(line("DEX00002", n_obs=5) + "\n" + line("DEX00003", n_obs=4))
    synced = store.sync(edited)
    assert [(s.shotid, s.n_obs) for s in synced] == [("DEX00002", 5), ("DEX00003", 4)]
    assert store.remaining("DEX00001") == 0
    store.close()

    store = ShotStore(db)
    assert [s.n_obs for s in store.sync(edited)] == [5, 4]
    # A shot that comes back with the same n_obs resumes its count (its row
    # was kept, absent); one whose n_obs changed starts from the file's.
    assert [s.n_obs for s in store.sync(shots)] == [0, 3]
    store.close()


def test_running_record_for_crash_recovery(tmp_path):
    db = tmp_path / "s.sqlite"
    store = ShotStore(db)
    assert store.running() is None
    store.record_running("DEX00001", 1234, "setup_telescope", when=10.0)
    store.record_running("DEX00001", 1234, "exp_hetdex 2", pgid=4321, when=11.0)
    store.close()
    store = ShotStore(db)
    assert store.running() == {"shotid": "DEX00001", "obs_number": 1234, "step": "exp_hetdex 2",
                               "pgid": 4321, "updated": 11.0, "pgid_start": None,
                               "boot_id": None}
    store.clear_running()
    assert store.running() is None
    store.close()


def test_sync_of_ten_thousand_shots_is_quick(tmp_path):
    import time

    shots = [Shot(f"DEX{i:05d}", 1.0, 50.0, 2, 1, 1, -1.0, {}) for i in range(10000)]
    store = ShotStore(tmp_path / "big.sqlite")
    t0 = time.perf_counter()
    store.sync(shots)
    store.sync(shots)
    assert time.perf_counter() - t0 < 2.0
    store.close()
