"""Logging: readable lines for a person, JSON that reads back intact."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess

from twisted.logger import LogLevel, LogPublisher, Logger, eventsFromJSONLogFile

from ocd.config import Config
from ocd.logs import level_observer, observers_for


def _logger(observers) -> Logger:
    return Logger(namespace="ocd.test", observer=LogPublisher(*observers))


def test_json_log_reads_back_with_structured_fields(tmp_path):
    path = tmp_path / "logs" / "ocd.json"  # the folder is created
    config = Config.load(None, [("general", "json_log", str(path))])
    stream = io.StringIO()
    opened: list = []
    observers = observers_for(config, stream, opened)
    assert len(observers) == 2 and len(opened) == 1
    log = _logger(observers)
    log.info(
        "decision {verdict} for {shotid}",
        verdict="wait", shotid="DEX00001", blockers=["weather", "bad_seeing"],
        details={"weather": "wind 17 > 15"}, now=1526371200.25,
    )
    log.debug("not on the terminal, nor in the JSON log at its default level", step=2)
    opened[0].close()

    with open(path, encoding="utf-8") as f:
        events = list(eventsFromJSONLogFile(f))
    assert len(events) == 1
    first = events[0]
    assert first["ocd_program"] == "ocd" and first["ocd_pid"] == os.getpid()
    assert first["verdict"] == "wait"
    assert first["shotid"] == "DEX00001"
    assert first["blockers"] == ["weather", "bad_seeing"]
    assert first["details"] == {"weather": "wind 17 > 15"}
    assert first["now"] == 1526371200.25
    assert first["log_namespace"] == "ocd.test"
    assert first["log_level"] == LogLevel.info
    # one JSON object per line (record separators aside)
    lines = [line.strip("\x1e") for line in path.read_text(encoding="utf-8").splitlines()]
    assert all(json.loads(line) for line in lines if line)

    text = stream.getvalue()
    assert "decision wait for DEX00001" in text
    assert "not on the terminal" not in text


def test_json_log_appends(tmp_path):
    path = tmp_path / "ocd.json"
    config = Config.load(None, [("general", "json_log", str(path))])
    for n in range(2):
        opened: list = []
        log = _logger(observers_for(config, io.StringIO(), opened))
        log.info("start {n}", n=n)
        opened[0].close()
    with open(path, encoding="utf-8") as f:
        assert [e["n"] for e in eventsFromJSONLogFile(f)] == [0, 1]


def test_no_json_log_by_default():
    observers = observers_for(Config.load(), io.StringIO())
    assert len(observers) == 1


def test_text_observer_filters_by_level():
    stream = io.StringIO()
    config = Config.load(None, [("general", "log_level", "warn")])
    log = _logger(observers_for(config, stream))
    log.debug("quiet debug")
    log.info("quiet info")
    log.warn("loud warning {n}", n=1)
    log.error("loud error")
    log.critical("loud critical")
    text = stream.getvalue()
    assert "quiet" not in text
    assert "loud warning 1" in text and "loud error" in text and "loud critical" in text
    assert len(text.splitlines()) == 3


def test_text_lines_are_readable():
    stream = io.StringIO()
    log = _logger(observers_for(Config.load(), stream))
    log.info("armed by {who}", who="ocd allow_hetdex")
    line = stream.getvalue().strip()
    assert line.endswith("[ocd.test#info] armed by ocd allow_hetdex")


def test_level_observer_debug_lets_everything_through():
    seen = []
    log = Logger(namespace="x", observer=level_observer(seen.append, "debug"))
    log.debug("d")
    log.info("i")
    assert [e["log_format"] for e in seen] == ["d", "i"]


def test_json_log_follows_its_own_level_and_names_the_program(tmp_path):
    path = tmp_path / "ocd.json"
    config = Config.load(None, [("general", "json_log", str(path)),
                                ("general", "json_log_level", "debug"),
                                ("general", "log_level", "warn")])
    opened: list = []
    stream = io.StringIO()
    log = _logger(observers_for(config, stream, opened, program="db_replay"))
    log.debug("a heartbeat-rate state {n}", n=1)
    log.info("progress")
    opened[0].close()
    with open(path, encoding="utf-8") as f:
        events = list(eventsFromJSONLogFile(f))
    assert [e["log_format"] for e in events] == ["a heartbeat-rate state {n}", "progress"]
    assert {e["ocd_program"] for e in events} == {"db_replay"}
    assert stream.getvalue() == ""


def test_json_log_is_a_json_text_sequence_jq_reads(tmp_path):
    """The docs say ``jq --seq``: check it where jq is installed."""
    import shutil

    import pytest

    if shutil.which("jq") is None:
        pytest.skip("jq is not installed")
    path = tmp_path / "ocd.json"
    config = Config.load(None, [("general", "json_log", str(path))])
    opened: list = []
    log = _logger(observers_for(config, io.StringIO(), opened, program="ocd run"))
    log.info("one {n}", n=1)
    log.warn("two {n}", n=2)
    opened[0].close()
    with open(path, "rb") as f:
        out = subprocess.run(["jq", "--seq", "-r", ".n"], stdin=f, capture_output=True,
                             text=True, check=True).stdout
    assert [line.strip("\x1e") for line in out.split()] == ["1", "2"]


def test_console_lines_carry_utc_iso_times():
    stream = io.StringIO()
    log = _logger(observers_for(Config.load(), stream))
    log.info("hello")
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \[ocd.test#info\] hello$",
                    stream.getvalue().strip())


def test_long_console_lines_are_wrapped_not_cut():
    stream = io.StringIO()
    log = _logger(observers_for(Config.load(), stream))
    path = "/tmp/" + "x" * 120 + "/state.sqlite"
    log.warn("state database {path} does not exist: a new one is created, so the remaining "
             "n_obs of every shot start afresh from the shot file", path=path)
    text = stream.getvalue()
    assert all(len(line) <= 200 for line in text.splitlines())
    assert len(text.splitlines()) == 2 and text.splitlines()[1].startswith("    ")
    assert f"{path} does not exist: a new one is created" in re.sub(r"\n {4}", " ", text)
