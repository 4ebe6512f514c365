"""Shuffle files and the syscmd command texts made from them (pure, plus tmp files)."""

from __future__ import annotations

import pytest

from ocd.core.shuffle import (
    ShuffleError,
    format_value,
    read_shuffle,
    setup_commands,
    shuffle_path,
    syscmd_switch,
)
from ocd.sim.shuffle_files import DEFAULT_TEMPLATE, shuffle_text, write_shuffle_files

SHOT = dict(shotid="DEX00001", ra=12.401733, dec=56.1464, track=0, QIFU="000")
METADATA = {
    "QIDX": "89", "QPROG": "HET18-2-100", "QOBJECT": "HS0015_E", "QIFU": "000",
    "QRA": "10:55:31.00", "QDEC": "+51:07:40.44", "QEQUINOX": "2000", "QPMRA": "0.0",
    "QPMDEC": "0.0", "QEPOCH": "2000",
}


@pytest.fixture
def shuffle(tmp_path):
    (path,) = write_shuffle_files([SHOT], tmp_path)
    return read_shuffle(path)


def test_commands_match_the_spec_example(shuffle):
    commands = setup_commands(shuffle, track=0, metadata=METADATA, forced_az=-1)
    assert commands[0] == (
        'set_metadata(QIDX=89, QPROG="HET18-2-100", QOBJECT="HS0015_E", QIFU="000", '
        'QRA="10:55:31.00", QDEC="+51:07:40.44", QEQUINOX=2000, QPMRA=0.0, QPMDEC=0.0, '
        "QEPOCH=2000)"
    )
    assert commands[1] == 'load_trajectory(ra=12.401733, dec=56.146400, equinox=2000.0, dir="EAST")'
    assert commands[2] == (
        'Guider1_set_position(ra=12.404550, dec=56.210100, equinox=2000.0, trajectory="next")'
    )
    assert [c.split("(")[0] for c in commands] == [
        "set_metadata", "load_trajectory",
        "Guider1_set_position", "Guider2_set_position", "WFS1_set_position", "WFS2_set_position",
        "Guider1_SetObjectAndMagnitudes", "Guider2_SetObjectAndMagnitudes",
        "WFS1_SetObjectAndMagnitudes", "WFS2_SetObjectAndMagnitudes", "go_next",
    ]
    assert commands[6] == (
        'Guider1_SetObjectAndMagnitudes(object="SDSS:1237648702975934556", g=16.900, r=16.100, i=15.800)'
    )
    # wfs2 has i = 0.000: magnitudes that are not above zero are left out.
    assert ", i=" not in commands[9] and ", g=" in commands[9]
    assert commands[-1] == 'go_next(move_structure="true", move_dome="true", move_probes="true")'
    assert [syscmd_switch(c) for c in commands] == ["-T"] * 6 + ["-p"] * 4 + ["-T"]


def test_no_metadata_no_set_metadata(shuffle):
    commands = setup_commands(shuffle, track=0, metadata={})
    assert commands[0].startswith("load_trajectory(")


def test_az_rules(tmp_path):
    (path,) = write_shuffle_files([SHOT], tmp_path, az=97.5)
    shuffle = read_shuffle(path)
    first = lambda **kw: setup_commands(shuffle, track=0, metadata={}, **kw)[0]
    assert first().startswith("load_trajectory(az=97.5000, ra=12.401733")
    assert first(forced_az=120.25).startswith("load_trajectory(az=120.25, ra=")
    assert first(forced_az="-1", azimuth_arg=200.0).startswith("load_trajectory(az=200.0, ra=")
    assert first(forced_az=88.0, azimuth_arg=200.0).startswith("load_trajectory(az=88.0, ra=")
    assert first().count("az=") == 1


def test_az_argument_without_az_in_file(shuffle):
    assert setup_commands(shuffle, track=0, metadata={}, azimuth_arg=33.0)[0] == (
        'load_trajectory(az=33.0, ra=12.401733, dec=56.146400, equinox=2000.0, dir="EAST")'
    )


def test_dir_contradicting_track_fails(shuffle):
    with pytest.raises(ShuffleError, match="contradicts the shot's track 1"):
        setup_commands(shuffle, track=1, metadata={})


@pytest.mark.parametrize("value, text", [
    ("12.5", "12.5"), ("000", '"000"'), ("007", '"007"'), ("-3", "-3"), ("1e-3", "1e-3"),
    ("true", '"true"'), (True, '"true"'), (42, "42"), (2.5, "2.5"), ("nan", '"nan"'),
    ("1_000", '"1_000"'), ('say "hi"', '"say \\"hi\\""'), (None, '"null"'), ([1], '"[1]"'),
])
def test_format_value(value, text):
    assert format_value(value) == text


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ShuffleError, match="does not exist"):
        read_shuffle(tmp_path / "nope.cfg")


def test_incomplete_file_names_section_and_key(tmp_path):
    text = shuffle_text("DEX1", 1.0, 2.0, 0, "000").replace("trajectory = next\n", "", 1)
    path = tmp_path / "f.cfg"
    path.write_text(text)
    with pytest.raises(ShuffleError, match=r"\[guider1\] lacks trajectory"):
        read_shuffle(path)
    whole = shuffle_text("DEX1", 1.0, 2.0, 0, "000")
    path.write_text(whole.replace("[go_next]", "[go_elsewhere]"))
    with pytest.raises(ShuffleError, match=r"no section \[go_next\]"):
        read_shuffle(path)
    path.write_text("not an ini file")
    with pytest.raises(ShuffleError, match="not a valid INI"):
        read_shuffle(path)


def test_shuffle_path_with_and_without_qifu(tmp_path):
    write_shuffle_files([dict(SHOT, track=2)], tmp_path)
    assert shuffle_path(tmp_path, DEFAULT_TEMPLATE, "DEX00001", "000", 1) == (
        tmp_path / "HETcommands/DEX00001_000_W.cfg")
    assert shuffle_path(tmp_path, DEFAULT_TEMPLATE, "DEX00001", None, 0) == (
        tmp_path / "HETcommands/DEX00001_000_E.cfg")
    with pytest.raises(ShuffleError, match="no shuffle file"):
        shuffle_path(tmp_path, DEFAULT_TEMPLATE, "DEX99999", None, 0)
    write_shuffle_files([dict(SHOT, QIFU="045")], tmp_path)
    with pytest.raises(ShuffleError, match="2 shuffle files"):
        shuffle_path(tmp_path, DEFAULT_TEMPLATE, "DEX00001", None, 0)
    assert shuffle_path(tmp_path, "{shotid}_{track_name}_{track}.cfg", "X", None, 1) == (
        tmp_path / "X_WEST_1.cfg")
    with pytest.raises(ShuffleError, match="bad placeholder"):
        shuffle_path(tmp_path, "{shotid}_{nope}.cfg", "X", "000", 0)


def test_bad_metadata_key(shuffle):
    with pytest.raises(ShuffleError, match="metadata key"):
        setup_commands(shuffle, track=0, metadata={"bad key": 1})
