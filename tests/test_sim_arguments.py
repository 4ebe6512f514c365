"""``ocd sample_night`` and ``ocd simulate_night`` refuse what cannot be, before any work.

A hostile tester's findings: an output that was a device (replaced by a
SQLite file), a folder that takes no file (a traceback), options without an
upper bound (``--hours inf``, ``--heartbeat-hz inf``, ``--shots 100000000``:
hangs to 3 GB and a 146 MB ``.partial`` left behind), dates past year 9999
(half-written files), a spell outside a --start/--end night, and
``simulate_night --workdir prod`` overwriting a production shot list. Each
is one line naming the option or file, exit 2, and nothing written.

Every refusal must happen before the work starts: the generator and the
night's preparation are replaced by tripwires, so that a refusal that comes
too late fails at once instead of writing a night for hours.
"""

from __future__ import annotations

import os
import stat

import pytest

from ocd.cli import main, subcommand_parser

START = "1740098895"  # sunset at the HET, 2025-02-20: no sky to compute


class Prepared(Exception):
    """Raised by the stand-in of ``prepare``: the command went on to the night."""


@pytest.fixture
def tripwires(tmp_path, monkeypatch):
    """Cache in tmp_path; writing a night or preparing one fails the test."""
    import ocd.services.sky_cache
    import ocd.sim.night
    import ocd.sim.simulate

    def wrote(*args, **kwargs):
        raise AssertionError(f"the night was written before the refusal: {args} {kwargs}")

    prepared = []

    def prepare(workdir, **kwargs):
        prepared.append(workdir)
        raise Prepared(str(workdir))

    monkeypatch.setenv("OCD_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(ocd.sim.night, "generate_night", wrote)
    monkeypatch.setattr(ocd.sim.night, "cached_night", wrote)
    monkeypatch.setattr(ocd.sim.simulate, "prepare", prepare)
    monkeypatch.setattr(ocd.services.sky_cache, "keep_sky_spans", lambda: None)
    return prepared


def run(argv, capsys):
    """Exit status and stderr of ``ocd ARGV`` in this process (argparse's errors included)."""
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err


def assert_refused(code, err, *fragments):
    """Exit 2 and one line (after argparse's usage, if any) that says ``fragments``."""
    assert code == 2, err
    assert "Traceback" not in err, err
    lines = err.strip().splitlines()
    assert lines and all(line.startswith(("usage:", " ")) for line in lines[:-1]), err
    for fragment in fragments:
        assert fragment in lines[-1], err


def left_in(folder):
    return sorted(p.name for p in folder.iterdir() if p.name != "cache")


# -- sample_night ------------------------------------------------------------------------


def test_an_output_that_is_not_a_regular_file_is_not_replaced(tmp_path, capsys, tripwires):
    fifo = tmp_path / "pipe.db"
    os.mkfifo(fifo)
    code, err = run(["sample_night", str(fifo), "--start", START, "--hours", "0.01"], capsys)
    assert_refused(code, err, str(fifo), "named pipe", "not a regular file")
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert left_in(tmp_path) == ["pipe.db"]


def test_the_generator_itself_never_renames_onto_a_fifo_and_leaves_no_partial(tmp_path):
    from ocd.sim.night import generate_night

    fifo = tmp_path / "pipe.db"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match="not a regular file"):
        generate_night(fifo, start=float(START), hours=0.01)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)
    assert left_in(tmp_path) == ["pipe.db"]


def test_a_night_that_fails_while_written_leaves_no_partial_file(tmp_path, monkeypatch):
    import ocd.sim.night

    def broken(path, rows, counts):
        path.write_bytes(b"half a night")
        raise KeyboardInterrupt

    monkeypatch.setattr(ocd.sim.night, "_write", broken)
    with pytest.raises(KeyboardInterrupt):
        ocd.sim.night.generate_night(tmp_path / "n.db", start=float(START), hours=0.01)
    assert left_in(tmp_path) == []


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc")
def test_an_output_in_a_folder_that_takes_no_file_is_one_line(tmp_path, capsys, tripwires):
    code, err = run(["sample_night", "/proc/x.db", "--start", START, "--hours", "0.01"], capsys)
    assert_refused(code, err, "/proc/x.db")


def test_an_empty_output_is_refused(tmp_path, capsys, tripwires):
    code, err = run(["sample_night", "", "--start", START, "--hours", "0.01"], capsys)
    assert_refused(code, err, "OUTPUT is empty")
    assert left_in(tmp_path) == []


@pytest.mark.parametrize("options, fragments", [
    (["--hours", "inf"], ["--hours", "at most 24 hours"]),
    (["--hours", "1e308"], ["--hours", "at most 24 hours"]),
    (["--hours", "1e6"], ["--hours", "at most 24 hours"]),
    (["--end", "1e308"], ["--end", "2099-12-31"]),
    (["--start", "1e12", "--end", "1.0000001e12"], ["--start", "1900-01-01 to 2099-12-31"]),
    (["--date", "9999-12-31"], ["--date", "1900-01-01 to 2099-12-31"]),
    (["--heartbeat-hz", "inf"], ["--heartbeat-hz", "at most 200 Hz"]),
    (["--heartbeat-hz", "1e308"], ["--heartbeat-hz", "at most 200 Hz"]),
    (["--pointing-hz", "inf"], ["--pointing-hz", "at most 200 Hz"]),
    (["--metrology-interval", "1e-300", "1e-300"], ["--metrology-interval", "from 0.01"]),
    (["--weather-interval", "1e-300"], ["--weather-interval", "from 0.1"]),
    (["--shutter-interval", "1e-300"], ["--shutter-interval", "from 0.1"]),
    (["--shutter-interval", "inf"], ["--shutter-interval", "to 86400 s"]),
    (["--bad-weather", "inf"], ["--bad-weather", "at most 1440"]),
    (["--start", START, "--end", "2025-02-23T00:00:00"], ["--end", "at most 24 h"]),
    (["--heartbeat-hz", "200", "--pointing-hz", "200", "--metrology-interval", "0.01", "0.01"],
     ["--heartbeat-hz 200", "--pointing-hz 200", "--metrology-interval 0.01", "50,000,000"]),
    (["--metrology-interval", "10", "5"], ["--metrology-interval 10 5", "LOW"]),
    # The spell outside a night of --start/--end (the check ran only with --hours).
    (["--start", "2025-02-21T01:00:00", "--end", "2025-02-21T01:06:00", "--bad-weather-at", "30"],
     ["--bad-weather-at 30", "not within the night"]),
    (["--start", START, "--end", "1740099000", "--bad-weather-at", "1e308"],
     ["--bad-weather-at", "not within the night"]),
])
def test_sample_night_refuses_a_night_without_bounds(tmp_path, capsys, tripwires, options,
                                                     fragments):
    code, err = run(["sample_night", str(tmp_path / "n.db"), *options], capsys)
    assert_refused(code, err, *fragments)
    assert left_in(tmp_path) == []


def test_a_spell_after_the_whole_night_is_refused_before_writing(tmp_path, capsys, tripwires):
    """The reported case: sunset to sunrise (the sky is computed) and a spell at 1e308 h."""
    code, err = run(["sample_night", str(tmp_path / "n.db"), "--bad-weather-at", "1e308"], capsys)
    assert_refused(code, err, "--bad-weather-at", "not within the night, 12.7 h long")
    assert left_in(tmp_path) == []


# -- simulate_night ----------------------------------------------------------------------


@pytest.mark.parametrize("options, fragments, absent", [
    (["--date", "9999-12-31"], ["--date", "1900-01-01 to 2099-12-31"], None),
    (["--hours", "inf"], ["--hours inf", "at most 24"], None),
    (["--shots", "100000000"], ["--shots 100000000", "1 to 2000"], None),
    (["--shots", "0"], ["--shots 0", "1 to 2000"], "--speedup"),
    (["--speedup", "1e-308"], ["--speedup 1e-308", "1 to 100000"], "--shots"),
    (["--speedup", "inf"], ["--speedup inf", "1 to 100000"], "--shots"),
    (["--speedup", "1e308"], ["--speedup 1e+308", "1 to 100000"], "--shots"),
    (["--workdir", ""], ["--workdir is empty"], None),
])
def test_simulate_night_refuses_options_one_at_a_time(tmp_path, capsys, tripwires, options,
                                                      fragments, absent):
    code, err = run(["simulate_night", *options], capsys)
    assert_refused(code, err, *fragments)
    if absent:
        assert absent not in err
    assert tripwires == []
    assert not (tmp_path / "cache" / "simulated-night").exists()


def test_a_folder_of_someone_else_is_not_overwritten(tmp_path, capsys, tripwires):
    prod = tmp_path / "prod"
    prod.mkdir()
    (prod / "shots.txt").write_text("the production shot list\n")
    code, err = run(["simulate_night", "--workdir", str(prod)], capsys)
    assert_refused(code, err, f"--workdir {prod}", "not empty", ".ocd-simulated-night")
    assert (prod / "shots.txt").read_text() == "the production shot list\n"
    assert left_in(prod) == ["shots.txt"]


def test_a_folder_whose_night_log_is_a_folder_is_refused_before_anything_is_written(
        tmp_path, capsys, tripwires):
    prod2 = tmp_path / "prod2"
    (prod2 / "nightlog.sqlite").mkdir(parents=True)
    code, err = run(["simulate_night", "--workdir", str(prod2)], capsys)
    assert_refused(code, err, f"--workdir {prod2}")
    assert left_in(prod2) == ["nightlog.sqlite"]


def test_a_new_folder_is_marked_and_used_again(tmp_path, capsys, tripwires):
    work = tmp_path / "night"
    with pytest.raises(Prepared):
        main(["simulate_night", "--workdir", str(work)])
    assert (work / ".ocd-simulated-night").is_file()
    (work / "shots.txt").write_text("the list of the last simulated night\n")
    with pytest.raises(Prepared):
        main(["simulate_night", "--workdir", str(work)])
    assert tripwires == [work, work]


def test_the_cache_folder_keeps_working_and_is_marked(tmp_path, capsys, tripwires):
    default = tmp_path / "cache" / "simulated-night"
    default.mkdir(parents=True)
    (default / "shots.txt").write_text("made by an older ocd, before the marker\n")
    with pytest.raises(Prepared):
        main(["simulate_night"])
    assert tripwires == [default]
    assert (default / ".ocd-simulated-night").is_file()


def test_simulate_night_help_says_its_exit_statuses():
    parser = subcommand_parser(["simulate_night"])
    assert "1 when no shot ran" in parser.description
    assert "2 when an option cannot be used" in parser.description
