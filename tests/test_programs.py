"""The programs a shot runs: never a stand-in under a real name, found at start.

Issue 9 item 1: ``pip install .`` used to put console scripts named
``syscmd`` and ``hetdex-dither.py`` (the stand-ins) on PATH, and OCD ran
them as if they were the telescope's programs.
"""

from __future__ import annotations

import os
import stat
import sys
from importlib import metadata
from pathlib import Path

from twisted.internet.task import Clock

from ocd.config import Config
from ocd.services.programs import missing_detail, resolve_programs, standin_detail
from conftest import stopped

#: Programs of the telescope that OCD runs (shots.md section 3) or that
#: write its inputs: no command of ours may carry one of these names.
REAL_PROGRAMS = {"syscmd", "hetdex-dither.py", "hetdex-dither", "hetdex-shuffle", "shuffle"}


def test_no_installed_command_carries_a_real_programs_name():
    scripts = [ep for ep in metadata.distribution("ocd").entry_points
               if ep.group in ("console_scripts", "gui_scripts")]
    assert [ep.name for ep in scripts] == ["ocd"]
    assert not {ep.name for ep in scripts} & REAL_PROGRAMS
    bin_dir = Path(sys.prefix) / "bin"
    assert not [name for name in REAL_PROGRAMS if (bin_dir / name).exists()]


def _config(**options: str) -> Config:
    return Config.load(None, [("run_shot", k, v) for k, v in options.items()])


def _executable(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_real_programs_resolve_to_absolute_paths(tmp_path):
    _executable(tmp_path, "syscmd", "#!/bin/sh\nexit 0\n")
    _executable(tmp_path, "hetdex-dither.py", "#!/usr/bin/env python3\n")
    programs = resolve_programs(Config.load(), {"PATH": str(tmp_path)})
    assert [p.path for p in programs] == [str(tmp_path / "syscmd"),
                                           str(tmp_path / "hetdex-dither.py")]
    assert [p.option for p in programs] == ["[run_shot] syscmd_command",
                                            "[run_shot] dither_command"]
    assert missing_detail(programs) is None and standin_detail(programs) is None


def test_a_missing_program_is_named(tmp_path):
    _executable(tmp_path, "hetdex-dither.py", "#!/bin/sh\n")
    programs = resolve_programs(Config.load(), {"PATH": str(tmp_path)})
    detail = missing_detail(programs)
    assert detail == "[run_shot] syscmd_command names 'syscmd', not found on PATH"


def test_the_alert_program_is_named_in_the_banner_and_a_missing_one_is_loud(tmp_path):
    """A missing alert program was found only at the first alert, at night."""
    from ocd.services.programs import alert_program

    env = {"PATH": str(tmp_path)}
    assert "alerts only in the log" in alert_program(Config.load(), env)
    config = Config.load(None, [("general", "alert_command", "page-the-crew --urgent")])
    assert alert_program(config, env) == ("alert command: [general] alert_command: program "
                                          "'page-the-crew' NOT FOUND on PATH: ALERTS WILL FAIL")
    _executable(tmp_path, "page-the-crew", "#!/bin/sh\n")
    assert alert_program(config, env) == f"alert command: {tmp_path / 'page-the-crew'}"


def test_the_python_m_stand_ins_are_recognised():
    config = _config(syscmd_command=f"{sys.executable} -m ocd.sim.syscmd {{switch}} {{command}}",
                     dither_command=f"{sys.executable} -m ocd.sim.dither --exposure {{exposure}}")
    programs = resolve_programs(config)
    assert all(p.path == os.path.abspath(sys.executable) for p in programs)
    note = standin_detail(programs)
    assert note is not None and "STAND-IN" in note and "ocd.sim.syscmd" in note
    assert "ocd.sim.dither" in note
    assert "NO DATA IS TAKEN" in programs[0].describe()


def test_a_script_that_runs_a_stand_in_under_the_real_name_is_recognised(tmp_path):
    """What an old ``pip install`` left on PATH: a ``syscmd`` that loads ocd.sim."""
    _executable(tmp_path, "syscmd", f"#!{sys.executable}\nfrom ocd.sim.syscmd import main\nmain()\n")
    _executable(tmp_path, "hetdex-dither.py", "#!/bin/sh\n")
    programs = resolve_programs(Config.load(), {"PATH": str(tmp_path)})
    assert programs[0].standin is not None and programs[1].standin is None
    assert "[run_shot] syscmd_command" in standin_detail(programs)


def test_main_loop_blocks_on_a_missing_program_until_it_appears(tmp_path, monkeypatch):
    from ocd.services.orchestrator import Orchestrator

    monkeypatch.setenv("PATH", str(tmp_path))
    _executable(tmp_path, "hetdex-dither.py", "#!/bin/sh\n")
    config = Config.load(None, [("shots", "shot_file", str(tmp_path / "none.txt")),
                                ("shots", "state_db", str(tmp_path / "state.sqlite"))])
    loop = Orchestrator(config, Clock())
    heard: list = []
    loop.listeners.append(heard.append)
    loop.startService()
    try:
        decision = loop.evaluate()
        assert decision is not None and "programs_missing" in decision.blockers
        assert "'syscmd'" in decision.details["programs_missing"]
        _executable(tmp_path, "syscmd", "#!/bin/sh\n")
        loop.tick()  # checked on every tick
        assert "programs_missing" not in loop.last_decision.blockers
    finally:
        stopped(loop)


def test_stand_ins_are_loud_in_every_decision(tmp_path):
    from ocd.services.orchestrator import Orchestrator

    config = Config.load(None, [
        ("shots", "shot_file", str(tmp_path / "none.txt")),
        ("shots", "state_db", str(tmp_path / "state.sqlite")),
        ("run_shot", "syscmd_command", f"{sys.executable} -m ocd.sim.syscmd {{command}}"),
        ("run_shot", "dither_command", f"{sys.executable} -m ocd.sim.dither"),
    ])
    loop = Orchestrator(config, Clock())
    heard: list = []
    loop.listeners.append(heard.append)
    loop.startService()
    try:
        loop.evaluate()
        made = [e.payload for e in heard if e.topic == "ocd.decision.made"]
        assert "programs_missing" not in made[-1]["blockers"]
        assert "STAND-IN" in made[-1]["details"]["stand_ins"]
    finally:
        stopped(loop)
