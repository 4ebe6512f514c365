"""What ``ocd run`` and ``twistd ocd`` check and say at start (issue 9 items 3 and 6).

Real child processes: a ``--config`` that does not exist, the banner,
relative paths in a site file, a URL that cannot be bound, and twistd's
log honouring ``[general] log_level`` and ``json_log``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bus_helpers import make_config
from conftest import REPO, reap
from ocd.config import BareConfigName, Config, ConfigError

TWISTD = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]


# -- configuration: unit level ------------------------------------------------

def test_a_missing_config_file_is_an_error_only_when_required(tmp_path):
    missing = tmp_path / "no-such.cfg"
    config = Config.load(str(missing))  # the other subcommands: a warning
    assert any("does not exist" in w for w in config.warnings)
    with pytest.raises(ConfigError) as info:
        Config.load(str(missing), required=True)
    assert str(missing) in str(info.value)
    # a bare --config (ocd.cfg) that is missing stays a warning
    os.chdir(tmp_path)
    Config.load(BareConfigName("ocd.cfg"), required=True)


def test_relative_paths_in_a_file_are_relative_to_its_folder(tmp_path, monkeypatch):
    site = tmp_path / "etc" / "site.cfg"
    site.parent.mkdir()
    site.write_text("[shots]\nstate_db = state/ocd-state.sqlite\nshot_file = /abs/shots.txt\n")
    monkeypatch.chdir(tmp_path)  # anywhere else
    config = Config.load(str(Path("etc") / "site.cfg"),
                         [("database", "sqlite_file", "here.sqlite")])
    assert config.get_path("shots", "state_db") == tmp_path / "etc" / "state" / "ocd-state.sqlite"
    assert config.get_path("shots", "shot_file") == Path("/abs/shots.txt")
    # the command line and the master stay relative to the working directory
    assert config.get_path("database", "sqlite_file") == Path("here.sqlite")
    assert config.files_read == [str(site)]


# -- ocd run and twistd ocd as child processes --------------------------------

def _site(tmp_path: Path, free_url, **extra: str) -> tuple[Config, Path]:
    """A site file with free URLs and relative state paths."""
    config = make_config(free_url)
    folder = tmp_path / "site"
    folder.mkdir()
    lines = ["[urls]"]
    for option in ("event_urls", "ocd_main_loop", "ocd_allow_hetdex", "ocd_config",
                   "ocd_run_shot"):
        lines.append(f"{option} = {' '.join(config.get_urls('urls', option))}")
    lines += ["[shots]", "state_db = state/ocd-state.sqlite", "shot_file = shots.txt",
              "[database]", "sqlite_file = obsnum.sqlite"]
    sections: dict[str, list[str]] = {}
    for key, value in extra.items():
        section, option = key.split("__", 1)
        sections.setdefault(section, []).append(f"{option} = {value}")
    for section, options in sections.items():
        lines += [f"[{section}]", *options]
    path = folder / "ocd.cfg"
    path.write_text("\n".join(lines) + "\n")
    return config, path


def _run(argv, env, cwd, timeout=30):
    return subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.integration
@pytest.mark.parametrize("daemon", ["ocd run", "twistd ocd"])
def test_a_config_file_that_does_not_exist_stops_the_daemon(tmp_path, ocd_command, child_env,
                                                            daemon):
    missing = tmp_path / "typo.cfg"
    argv = (ocd_command + ["run"] if daemon == "ocd run"
            else TWISTD + ["-n", "--pidfile=", "ocd"]) + ["--config", str(missing)]
    done = _run(argv, child_env, tmp_path)
    out = done.stdout + done.stderr
    assert done.returncode == 2, out
    assert str(missing) in out and "does not exist" in out
    assert "Traceback" not in out


@pytest.mark.integration
def test_banner_then_sigterm(tmp_path, free_url, ocd_command, child_env):
    config, cfg = _site(tmp_path, free_url)
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    console = tmp_path / "console.txt"
    state = cfg.parent / "state" / "ocd-state.sqlite"
    with open(console, "w") as out:
        child = subprocess.Popen(ocd_command + ["run", "--config", str(cfg)], env=child_env,
                                 cwd=workdir, stdout=subprocess.DEVNULL, stderr=out, text=True)
    try:
        # Stopped once it runs: its first decision is on the console (the
        # reactor is running, with its signal handlers).
        deadline = time.monotonic() + 30
        while "[ocd.night#info] night " not in console.read_text():
            assert child.poll() is None, console.read_text()
            assert time.monotonic() < deadline, "no decision within 30 s\n" + console.read_text()
            time.sleep(0.05)
        child.send_signal(signal.SIGTERM)
        assert child.wait(timeout=20) == 0
        err = console.read_text()
    finally:
        reap(child)
    banner = [line.split("] ", 1)[1] for line in err.splitlines() if "[ocd.banner#" in line]
    text = "\n".join(banner)
    assert banner[0].startswith("OCD ") and "starting" in banner[0]
    assert f"then {cfg}" in text  # the file read, absolute
    main_loop = config.get_urls("urls", "ocd_main_loop")[0]
    assert f"bind    {main_loop} (ocd_main_loop" in text
    assert f"connect {config.get_urls('urls', 'event_urls')[0]} (event_urls" in text
    assert f"SQLite file {cfg.parent / 'obsnum.sqlite'}" in text
    assert f"shot file: {cfg.parent / 'shots.txt'} (MISSING" in text
    assert f"state database: {state} (NEW" in text
    assert "program [run_shot] syscmd_command" in text
    assert "clock: [dates] clock = tcs" in text
    # the new state database is also a warning of its own
    # (the console wraps lines over 200 characters, continuations indented by 4)
    assert "does not exist: a new one is created" in re.sub(r"\n {4}", " ", err)
    assert "Traceback" not in err


@pytest.mark.integration
def test_twistd_bind_error_is_one_line_and_exit_2(tmp_path, free_url, child_env):
    import zmq

    config, cfg = _site(tmp_path, free_url)
    context = zmq.Context()
    holder = context.socket(zmq.PUB)
    holder.bind(config.get_urls("urls", "ocd_main_loop")[0])
    try:
        done = _run(TWISTD + ["-n", "--pidfile=", "ocd", "--config", str(cfg)], child_env,
                    tmp_path)
    finally:
        holder.close(linger=0)
        context.term()
    out = done.stdout + done.stderr
    assert done.returncode == 2, out
    assert "address already in use" in out and config.get_urls("urls", "ocd_main_loop")[0] in out
    assert "Traceback" not in out


@pytest.mark.integration
def test_twistd_honours_log_level_and_json_log(tmp_path, free_url, ocd_command, child_env):
    json_log = tmp_path / "ocd.json"
    config, cfg = _site(tmp_path, free_url, general__log_level="warn",
                        general__json_log=str(json_log))
    logfile = tmp_path / "twistd.log"
    child = subprocess.Popen(TWISTD + ["-n", "--pidfile=", "--logfile", str(logfile), "ocd",
                                       "--config", str(cfg)],
                             env=child_env, cwd=tmp_path, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (
                logfile.exists() and "programs_missing" in logfile.read_text()):
            time.sleep(0.1)
        child.send_signal(signal.SIGTERM)
        child.wait(timeout=20)
    finally:
        reap(child)
    text = logfile.read_text()
    assert "[ocd.banner#info] OCD " in text  # the banner passes any level
    assert "#error]" in text  # programs_missing at start
    assert "#info] publish" not in text  # info lines filtered out: log_level warn
    events = [json.loads(line) for line in json_log.read_text().splitlines() if line.strip()]
    # The JSON log has its own level ([general] json_log_level, default info): the
    # info lines filtered from the text log are there, raw published events are not
    # (debug); every record names the program.
    assert any(isinstance(e.get("log_level"), dict) and e["log_level"].get("name") == "info"
               for e in events)
    assert not any(e.get("ocd_event") == "publish" for e in events)
    assert {e.get("ocd_program") for e in events} == {"twistd ocd"}


def test_the_sample_systemd_unit():
    unit = (REPO / "etc" / "ocd.service").read_text()
    settings = dict(line.split("=", 1) for line in unit.splitlines()
                    if "=" in line and not line.startswith("#"))
    assert settings["RestartPreventExitStatus"] == "2"  # a configuration error: no restart loop
    assert settings["StateDirectory"] == "ocd" and settings["LogsDirectory"] == "ocd"
    path = settings["Environment"].removeprefix("PATH=").split(":")
    assert path and not [p for p in path if "venv" in p or "ocd" in p]
    assert "twistd -n" in settings["ExecStart"]


def test_the_banner_says_when_the_shuffle_folder_or_the_acam_folder_is_missing(tmp_path):
    """Both were found only when the first shot's set-up failed (and disarmed OCD)."""
    from ocd.config import Config
    from ocd.services.banner import banner_lines

    missing = tmp_path / "no-such"
    lines = banner_lines(Config.load(None, [("paths", "shuffle_shot", str(missing)),
                                            ("paths", "acam_dest_file", str(missing / "a.fits"))]))
    assert f"shuffle files: {missing} (MISSING: every shot fails at its set-up)" in lines
    assert (f"ACAM image copied to: {missing / 'a.fits'} (its folder is MISSING: every shot "
            "fails at its set-up)") in lines
    lines = banner_lines(Config.load(None, [("paths", "shuffle_shot", str(tmp_path)),
                                            ("paths", "acam_dest_file", str(tmp_path / "a.fits"))]))
    assert f"shuffle files: {tmp_path}" in lines
    assert f"ACAM image copied to: {tmp_path / 'a.fits'}" in lines
