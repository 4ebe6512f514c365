"""Layered configuration: master, ``--config FILE``, command-line overrides.

Each test states one rule of the loader; a test fails when the rule breaks.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ocd.cli import main
from ocd.config import (
    Config,
    ConfigError,
    OPTION_TYPES,
    apply_live_update,
    master_text,
    split_list,
)
from ocd.config_docs import parse_option_docs


def write(path: Path, text: str) -> str:
    path.write_text(text, encoding="utf-8")
    return str(path)


# -- the master --------------------------------------------------------------

def test_master_loads_and_validates():
    config = Config.load()
    config.validate()
    for section in ("general", "urls", "topics", "run", "config", "run_shot", "paths",
                    "allow_hetdex", "db_replay", "docker_mysql", "database", "decision",
                    "scheduler", "shots", "dates"):
        assert section in config.sections()
    assert config.files_read == [] and config.warnings == []
    assert config.get_urls("urls", "event_urls") == ["tcp://127.0.0.1:5555"]
    assert config.get_urls("urls", "ocd_db_replay") == []


def test_every_master_option_is_documented():
    docs = parse_option_docs(master_text())
    config = Config()
    assert {(d.section, d.option) for d in docs} == {
        (s, o) for s in config.sections() for o in config.options(s)
    }
    for doc in docs:
        assert doc.help, (doc.section, doc.option)
        assert doc.unit, (doc.section, doc.option)


def test_every_typed_option_exists_in_the_master():
    config = Config()
    missing = [key for key in OPTION_TYPES if not config.has_option(*key)]
    assert missing == []


def test_default_urls_are_on_localhost():
    config = Config()
    for option in config.options("urls"):
        for url in config.get_urls("urls", option):
            assert url.startswith("tcp://127.0.0.1:"), (option, url)


def test_run_and_run_shot_never_bind_the_same_run_shot_url():
    config = Config()
    assert config.get_url_at("ocd_run_shot", "run", "n_ocd_run_shot") != config.get_url_at(
        "ocd_run_shot", "run_shot", "n_ocd_run_shot"
    )


# -- layering ----------------------------------------------------------------

def test_config_file_overrides_the_master(tmp_path):
    site = write(tmp_path / "site.cfg", "[decision]\nmax_wind = 12.5\n")
    config = Config.load(site)
    assert config.get_float("decision", "max_wind") == 12.5
    assert config.origin("decision", "max_wind") == site
    assert config.get_float("decision", "max_humidity") == 80  # untouched
    assert config.files_read == [site]


def test_command_line_overrides_the_config_file(tmp_path):
    site = write(tmp_path / "site.cfg", "[decision]\nmax_wind = 12.5\n")
    config = Config.load(site, [("decision", "max_wind", "9")])
    assert config.get_float("decision", "max_wind") == 9
    assert config.origin("decision", "max_wind") == "command line"


def test_missing_file_warns_on_stderr_and_is_skipped(tmp_path, capsys):
    missing = str(tmp_path / "nope.cfg")
    config = Config.load(missing)
    err = capsys.readouterr().err
    assert "WARNING" in err and missing in err
    assert config.files_read == []
    assert config.get_float("decision", "max_wind") == 15


def test_config_without_value_means_ocd_cfg_in_cwd(tmp_path, monkeypatch, capsys):
    from ocd.cli import build_parser

    args = build_parser().parse_args(["run", "--config"])
    assert args.config == "ocd.cfg"
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "ocd.cfg", "[decision]\nmax_wind = 7\n")
    assert Config.load(args.config).get_float("decision", "max_wind") == 7
    # without --config, a local ocd.cfg is not read
    assert build_parser().parse_args(["run"]).config is None


@pytest.mark.parametrize(
    "text, words",
    [
        ("[decisions]\nmax_wind = 3\n", ["unknown section", "[decisions]"]),
        ("[decision]\nmax_winds = 3\n", ["unknown option", "max_winds", "[decision]"]),
        ("max_wind = 3\n", ["no section headers"]),
        ("[decision]\nmax_wind = 3\nmax_wind = 4\n", ["max_wind", "already exists"]),
    ],
)
def test_bad_file_is_an_error_naming_it(tmp_path, text, words):
    site = write(tmp_path / "site.cfg", text)
    with pytest.raises(ConfigError) as exc:
        Config.load(site)
    message = str(exc.value)
    assert site in message
    for word in words:
        assert word in message


@pytest.mark.parametrize(
    "section, option, words",
    [
        ("nope", "max_wind", ["[nope]", "no section"]),
        ("decision", "nope", ["[decision] nope", "no option"]),
    ],
)
def test_unknown_override_is_an_error_naming_it(section, option, words):
    with pytest.raises(ConfigError) as exc:
        Config.load(None, [(section, option, "1")])
    for word in ["command line", *words]:
        assert word in str(exc.value)


@pytest.mark.parametrize(
    "section, option, value, kind",
    [
        ("decision", "tcs_timeout", "soon", "a number"),
        ("decision", "max_wind", "nan", "a number"),
        ("database", "port", "33o6", "an integer"),
        ("database", "port", "-1", "expected a TCP port, 1 to 65535"),
        ("database", "port", "99999", "expected a TCP port, 1 to 65535"),
        ("docker_mysql", "port", "0", "expected a TCP port, 1 to 65535"),
        ("docker_mysql", "image", "", "must not be empty"),
        ("decision", "require_shutter", "perhaps", "yes or no"),
        ("urls", "event_urls", "tcp://127.0.0.1:5555 http://example.org", "ZeroMQ URL"),
        ("run_shot", "exptimes", "360 360", "3 numbers needed"),
        ("general", "log_level", "loud", "one of"),
        ("dates", "clock", "sundial", "one of"),
        # a 1 ms timer spins, and ocd plan stepped the night by it for minutes
        ("decision", "decide_interval", "1e-3", "expected 0.1 to 600 s (below, the timer would spin"),
        ("decision", "decide_interval", "0", "expected 0.1 to 600 s"),
        # numbers OCD waits on or compares with: each in a range it works in
        # (1e308 never fires, 1e-308 fires at once or overflowed a decision)
        ("run_shot", "kill_grace", "1e308", "expected 0 to 600 s"),
        ("run_shot", "syscmd_timeout", "1e-308", "expected 0.1 to 86400 s"),
        ("topics", "heartbeat_interval", "1e-308", "expected 0.01 to 3600 s"),
        ("dates", "max_time_offset", "1e-308", "expected 60 to 3.15576e+09 s (or 0: no check)"),
        ("decision", "tcs_timeout", "0", "expected above 0 to 86400 s"),
        ("decision", "max_wind", "1e308", "expected 0 to 100 m/s"),
        ("decision", "max_humidity", "-1", "expected 0 to 100 %"),
        ("scheduler", "half_width", "1e308", "expected above 0 to 90 deg"),
        ("database", "first_obsnum", str(10**30), "expected an integer from 0 to 2147483647"),
        ("database", "timeout", "1e308", "expected above 0 to 3600 s"),
        ("urls", "ocd_config", "tcp://127.0.0.1:99999", "port 99999 is not 0 to 65535"),
        ("dates", "mock_time", "1e308", "is not a time from 1970 to 2199"),
        # a template that cannot be filled failed every shot of the night (and
        # disarmed OCD); a format spec or conversion is tried at start
        ("run_shot", "dither_command", "hetdex-dither.py {shotid:d}", "Unknown format code 'd'"),
        ("run_shot", "syscmd_command", "syscmd {ra!z}", "Unknown conversion specifier z"),
        ("paths", "data_dir", "/data/{shotid:d}", "Unknown format code 'd'"),
        ("run_shot", "dither_command", "x {ra.__class__}", "only names, no attribute or index"),
    ],
)
def test_bad_value_names_file_section_option_and_value(tmp_path, section, option, value, kind):
    site = write(tmp_path / "site.cfg", f"[{section}]\n{option} = {value}\n")
    with pytest.raises(ConfigError) as exc:
        Config.load(site)
    message = str(exc.value)
    for part in (site, f"[{section}]", option, repr(value), kind):
        assert part in message


def test_bad_override_value_names_the_command_line():
    with pytest.raises(ConfigError) as exc:
        Config.load(None, [("run", "n_ocd_main_loop", "first")])
    assert "command line: [run] n_ocd_main_loop = 'first'" in str(exc.value)


def test_index_out_of_range_is_an_error():
    config = Config.load(None, [("run", "n_ocd_main_loop", "3")])
    with pytest.raises(ConfigError, match=r"\[run\] n_ocd_main_loop.*out of range"):
        config.get_url_at("ocd_main_loop", "run", "n_ocd_main_loop")


def test_indexes_are_zero_based():
    config = Config.load(None, [("urls", "ocd_run_shot", "tcp://127.0.0.1:1 tcp://127.0.0.1:2")])
    assert config.get_url_at("ocd_run_shot", "run", "n_ocd_run_shot") == "tcp://127.0.0.1:1"
    assert config.get_url_at("ocd_run_shot", "run_shot", "n_ocd_run_shot") == "tcp://127.0.0.1:2"


# -- ${NAME} and $$ ----------------------------------------------------------

def test_environment_variable_expands(tmp_path, monkeypatch):
    monkeypatch.setenv("OCD_TEST_DATA", "/srv/night")
    site = write(tmp_path / "site.cfg", "[paths]\nshuffle_shot = ${OCD_TEST_DATA}/shuffle\n")
    config = Config.load(site)
    assert config.get_str("paths", "shuffle_shot") == "/srv/night/shuffle"
    # reading again sees the environment of now, the raw value keeps ${...}
    assert config.as_dict()["paths"]["shuffle_shot"] == "${OCD_TEST_DATA}/shuffle"


def test_unset_environment_variable_is_an_error_at_load(tmp_path, monkeypatch):
    monkeypatch.delenv("OCD_TEST_UNSET", raising=False)
    site = write(tmp_path / "site.cfg", "[paths]\nacam_dest_file = ${OCD_TEST_UNSET}/a.jpg\n")
    with pytest.raises(ConfigError) as exc:
        Config.load(site)
    assert "OCD_TEST_UNSET" in str(exc.value) and "[paths] acam_dest_file" in str(exc.value)
    assert site in str(exc.value)


def test_double_dollar_is_a_literal_dollar(tmp_path):
    site = write(tmp_path / "site.cfg", "[database]\npassword = pa$$word$$\n")
    assert Config.load(site).get_str("database", "password") == "pa$word$"


@pytest.mark.parametrize("value", ["a$b", "$HOME", "${unclosed", "${1BAD}"])
def test_stray_dollar_is_an_error(value):
    with pytest.raises(ConfigError, match=r"bad '\$'"):
        Config.load(None, [("database", "password", value)])


def test_percent_is_not_interpolated(tmp_path):
    site = write(tmp_path / "site.cfg", "[database]\npassword = 100%(x)s\n")
    assert Config.load(site).get_str("database", "password") == "100%(x)s"


def test_environment_is_not_injected_as_options(monkeypatch):
    monkeypatch.setenv("OCD_TEST_NOT_AN_OPTION", "1")
    config = Config.load()
    for section in config.sections():
        assert not config.has_option(section, "OCD_TEST_NOT_AN_OPTION")
        assert "HOME" not in config.options(section)
    with pytest.raises(ConfigError):
        Config.load(None, [("decision", "OCD_TEST_NOT_AN_OPTION", "2")])
    assert set(config.sections()) == set(config.as_dict())
    assert "DEFAULT" not in config.as_dict()


# -- lists -------------------------------------------------------------------

@pytest.mark.parametrize(
    "text, items",
    [
        ("", []),
        ("   ", []),
        ("a", ["a"]),
        ("a b", ["a", "b"]),
        ("a,b", ["a", "b"]),
        (" a ,\n b\tc,, ", ["a", "b", "c"]),
    ],
)
def test_lists_split_on_whitespace_and_commas(text, items):
    assert split_list(text) == items


def test_multiline_list_in_a_file(tmp_path):
    site = write(
        tmp_path / "site.cfg",
        "[urls]\nevent_urls = tcp://127.0.0.1:1,\n    tcp://127.0.0.1:2\n",
    )
    assert Config.load(site).get_urls("urls", "event_urls") == [
        "tcp://127.0.0.1:1", "tcp://127.0.0.1:2",
    ]


def test_booleans_are_yes_no(tmp_path):
    for text, value in (("yes", True), ("no", False), ("Yes", True), ("NO", False)):
        config = Config.load(None, [("decision", "require_shutter", text)])
        assert config.get_bool("decision", "require_shutter") is value


# -- live updates (ocd config send) ------------------------------------------

def test_live_update_applies_a_live_option():
    config = Config.load()
    assert config.is_live("decision", "max_wind")
    applied, message = apply_live_update(config, "decision", "max_wind", "11")
    assert applied, message
    assert config.get_float("decision", "max_wind") == 11
    assert config.origin("decision", "max_wind") == "ocd config send"
    assert "15" in message and "11" in message


def test_live_update_refuses_a_non_live_option():
    config = Config.load()
    before = config.as_dict()
    applied, message = apply_live_update(config, "urls", "event_urls", "tcp://127.0.0.1:9")
    assert not applied and "live" in message
    assert config.as_dict() == before


def test_live_update_refuses_a_bad_value_and_changes_nothing():
    config = Config.load()
    before = config.as_dict()
    applied, message = apply_live_update(config, "decision", "max_wind", "gusty")
    assert not applied
    assert "[decision] max_wind" in message and "'gusty'" in message
    assert config.as_dict() == before
    assert config.origin("decision", "max_wind") != "ocd config send"


def test_live_update_refuses_an_unknown_option():
    config = Config.load()
    before = config.as_dict()
    applied, message = apply_live_update(config, "decision", "max_gust", "3")
    assert not applied and "unknown option [decision] max_gust" in message
    assert config.as_dict() == before


def test_every_decision_and_scheduler_threshold_is_live():
    """events.md 3.3: at least every threshold of [decision] and [scheduler]."""
    config = Config()
    thresholds = [
        ("decision", o) for o in config.options("decision") if o != "decide_interval"
    ] + [("scheduler", o) for o in config.options("scheduler")]
    assert [key for key in thresholds if not config.is_live(*key)] == []
    for option in config.options("urls"):
        assert not config.is_live("urls", option)


# -- the command line --------------------------------------------------------

@pytest.mark.parametrize(
    "argv_tail, words",
    [
        (["--config", "{bad}"], ["[decision] max_wind", "'gusty'"]),
        (["--config", "{unknown}"], ["unknown section [nowhere]"]),
        (["-u", "http://example.org"], ["[urls] event_urls"]),
        (["--n-ocd-main-loop", "-1"], ["[run] n_ocd_main_loop", ">= 0"]),
    ],
)
def test_cli_exits_2_on_a_bad_configuration(tmp_path, capsys, argv_tail, words):
    bad = write(tmp_path / "bad.cfg", "[decision]\nmax_wind = gusty\n")
    unknown = write(tmp_path / "unknown.cfg", "[nowhere]\nx = 1\n")
    argv = ["run"] + [a.format(bad=bad, unknown=unknown) for a in argv_tail]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "configuration error" in err
    for word in words:
        assert word in err


def test_cli_exits_2_on_a_bad_choice(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["run", "-a", "maybe"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err



def test_every_typed_option_is_checked_by_a_command_that_never_imports_the_main_loop(child_env):
    """``[dates] max_time_offset``, ``mock_time`` and ``[topics] heartbeat_interval``
    were checked only once the main loop's or the clock's module had been
    imported (they registered their checks on import): ``ocd allow_hetdex``
    or ``ocd config copy`` loaded -5 or ``tomorrow`` without a word."""
    import subprocess
    import sys

    from conftest import REPO

    code = """
import sys
from ocd.config import Config, ConfigError
for section, option, value in [("dates", "max_time_offset", "-5"), ("dates", "mock_time", "tomorrow"),
                               ("topics", "heartbeat_interval", "0")]:
    try:
        Config.load(None, [(section, option, value)])
    except ConfigError as exc:
        print("refused:", exc)
    else:
        print("accepted:", section, option, value)
print("main loop imported:", "ocd.services.main_loop" in sys.modules)
"""
    done = subprocess.run([sys.executable, "-c", code], env=child_env, cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[-1] == "main loop imported: False"
    assert [line.split(":")[0] for line in lines[:-1]] == ["refused"] * 3, lines
    assert "max_time_offset" in lines[0] and "expected 60 to" in lines[0]
    assert "mock_time" in lines[1] and "ISO 8601 or epoch seconds" in lines[1]
    assert "heartbeat_interval" in lines[2] and "expected 0.01 to 3600 s" in lines[2]
