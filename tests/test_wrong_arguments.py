"""A person's mistakes on the command line: one line, exit 2, never a traceback.

Issue 9 item 7: every subcommand run with a table of wrong arguments. Each
case runs ``ocd.cli.main`` in-process (an escaping exception fails the test
as a traceback would) and asserts the exit status and that the message
names what is wrong. Ctrl+C during ``sample_night`` runs as a real process.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest

from conftest import REPO
from ocd.cli import main


def _cases(tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    missing = tmp_path / "no-such" / "folder"
    programs = tmp_path / "programs.cfg"  # run_shot's checks of its programs pass
    programs.write_text("[run_shot]\nsyscmd_command = true\ndither_command = true\n")
    shot = ["S", "1", "1", "2", "3", "0", "1", "1", "1"]
    return [
        # (argv, exit status, a fragment the message must contain)
        (["nosuch"], 2, "invalid choice"),
        (["run", "--no-such-option"], 2, "unrecognized arguments"),
        (["run", "--n-ocd-main-loop", "x"], 2, "invalid int value"),
        (["run", "--config", str(tmp_path / "typo.cfg")], 2, "does not exist"),
        (["run", "-a", "maybe"], 2, "invalid choice"),
        (["run", "--n-ocd-main-loop", "7"], 2, "index out of range"),
        (["config"], 2, "required"),
        (["config", "copy", "-t", "/proc"], 2, "/proc"),
        (["config", "copy", "-t", str(missing)], 2, "not a directory"),
        (["config", "send"], 2, "required"),
        (["config", "send", "decision", "max_wind"], 2, "required"),
        (["config", "send", "-n", "x", "a", "b", "c"], 2, "'x' is not an integer"),
        # A -N beyond the URLs, or waits and attempts that cannot be: one line,
        # exit 2, before the reactor runs (they were tracebacks from inside it).
        (["config", "send", "-N", "99", "a", "b", "c"], 2,
         "ocd config send: configuration error: command line: [config] n_ocd_config = '99': "
         "index out of range"),
        (["config", "send", "-n", "0", "a", "b", "c"], 2, "'0' is not a number of attempts >= 1"),
        (["config", "send", "-I", "-1", "a", "b", "c"], 2, "'-1' is not a number of seconds"),
        (["run_shot"], 2, "required"),
        (["run_shot", "S", "x", "1", "2", "3", "0", "1", "1", "1"], 2, "invalid int value"),
        (["run_shot", "S", "1", "1", "2", "3", "5", "1", "1", "1"], 2, "invalid choice"),
        (["run_shot", "-m", "{bad", "S", "1", "1", "2", "3", "0", "1", "1", "1"], 2,
         "not valid JSON"),
        # Exposure times OCD would refuse in the START (issue 12): refused here first.
        (["run_shot", "S", "1", "1", "2", "3", "0", "-5", "1", "1"], 2,
         "argument exp01: '-5' is not an exposure time"),
        (["run_shot", "S", "1", "1", "2", "3", "0", "1", "nan", "1"], 2,
         "argument exp02: 'nan' is not a finite number"),
        (["run_shot", "S", "1", "1", "2", "3", "0", "1", "1", "1e300"], 2,
         "argument exp03: '1e300' is not an exposure time"),
        (["run_shot", "S", "1", "inf", "2", "3", "0", "1", "1", "1"], 2,
         "argument ra: 'inf' is not a finite number"),
        (["allow_hetdex"], 2, "required"),
        (["allow_hetdex", "maybe"], 2, "invalid choice"),
        (["allow_hetdex", "-I", "soon", "start"], 2, "'soon' is not a number"),
        (["allow_hetdex", "-I", "nan", "start"], 2, "'nan' is not a finite number"),
        (["allow_hetdex", "-n", "-3", "start"], 2, "'-3' is not a number of attempts >= 1"),
        (["allow_hetdex", "-N", "99", "start"], 2, "index out of range"),
        (["run_shot", "--config", str(programs), "-e", "-N", "99", *shot], 2,
         "index out of range"),
        (["run_shot", "-e", "-c", "-t", "-1", *shot], 2,
         "argument -t/--timeout: '-1' is not a number of seconds >= 0"),
        (["run_shot", "-e", "-c", "-t", "nan", *shot], 2, "'nan' is not a finite number"),
        (["db_replay"], 2, "required"),
        (["db_replay", "-s", "fast", "x.db"], 2, "invalid float value"),
        (["db_replay", "-S", "random", "x.db"], 2, "invalid choice"),
        (["db_replay", "-t", "-1", "x.db"], 2, "'-1' is not a number of seconds >= 0"),
        (["db_replay", "-t", "nan", "x.db"], 2, "'nan' is not a finite number"),
        (["status", "-t", "-1"], 2, "'-1' is not a number of seconds >= 0"),
        (["db_replay", str(tmp_path / "no-such.db")], 2, "no URL to publish on"),
        (["db_replay", str(tmp_path / "no-such.db"), "--ocd-db-replay", "tcp://127.0.0.1:1"], 2,
         "no-such.db"),
        (["docker_mysql"], 2, "required"),
        (["docker_mysql", "sideways"], 2, "invalid choice"),
        (["sample_night"], 2, "give an OUTPUT file or --cache"),
        (["sample_night", "--date", "2025-02-30", "x.db"], 2, "not a date"),
        (["sample_night", "--hours", "-3", "x.db"], 2, "must be positive"),
        (["sample_night", "--bad-weather", "-30", str(tmp_path / "n.db")], 2,
         "would end before it starts"),
        (["sample_night", "--hours", "2", "--bad-weather-at", "5", str(tmp_path / "n.db")], 2,
         "not within the night"),
        (["sample_night", str(missing / "night.db")], 2, "does not exist"),
        (["sample_night", str(tmp_path)], 2, "is a folder"),
        (["simulate_night", "--date", "2025-02-30"], 2, "not a date"),
        (["simulate_night", "--workdir", str(a_file)], 2, "is a file"),
        (["simulate_night", "--hours", "0"], 2, "positive number of hours"),
        (["simulate_night", "--speedup", "-1"], 2, "--speedup must be positive"),
    ]


def test_every_subcommand_with_wrong_arguments(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("OCD_CACHE_DIR", str(tmp_path / "cache"))
    failures = []
    for argv, expected, fragment in _cases(tmp_path):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse's usage errors
            code = exc.code
        except BaseException as exc:  # a traceback for a person's mistake
            failures.append(f"ocd {' '.join(argv)}: {type(exc).__name__}: {exc}")
            continue
        out = capsys.readouterr()
        text = out.out + out.err
        if code != expected or fragment not in text or "Traceback" in text:
            failures.append(f"ocd {' '.join(argv)}: exit {code}, said {text.strip()[-300:]!r}")
    assert not failures, "\n".join(failures)
    # nothing was created by a refused command
    assert not (tmp_path / "no-such").exists()
    assert not (tmp_path / "n.db").exists()


@pytest.mark.slow(3)
@pytest.mark.integration
def test_ctrl_c_in_sample_night_is_one_line_and_exit_1(tmp_path, ocd_command, child_env):
    child = subprocess.Popen(ocd_command + ["sample_night", "--hours", "12",
                                            str(tmp_path / "night.db")],
                             env=child_env, cwd=tmp_path, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    # Interrupted while it writes the night: once its partial file is there.
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".night.db.*.partial")) and child.poll() is None:
        assert time.monotonic() < deadline, "sample_night never started writing"
        time.sleep(0.05)
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=30)
    assert child.returncode == 1, err
    assert "interrupted" in err and "Traceback" not in err


def test_ctrl_c_while_the_command_is_still_being_imported_is_one_line(monkeypatch, capsys):
    """Ctrl+C in the first half second of ``ocd db_replay`` (while its modules were
    being imported) ended in a KeyboardInterrupt traceback; now it is one line, exit 1."""
    import importlib

    real = importlib.import_module

    def interrupted(name, *args):
        if name == "ocd.commands.db_replay":
            raise KeyboardInterrupt
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", interrupted)
    assert main(["db_replay", "night.db"]) == 1
    err = capsys.readouterr().err
    assert err == "ocd db_replay: interrupted\n"


@pytest.mark.integration
def test_a_run_started_with_ctrl_c_ignored_still_interrupts_its_children(tmp_path):
    """A shell starts a background job (``make test &``) with SIGINT ignored, and the
    children inherit it: every Ctrl+C test then failed (sample_night finished with 0,
    run_shot and db_replay went on). :func:`conftest.interruptible` restores it."""
    probe = ("import signal, subprocess, sys\n"
             "signal.signal(signal.SIGINT, signal.SIG_IGN)  # as a background job starts\n"
             f"sys.path.insert(0, {str(REPO / 'tests')!r})\n"
             "from conftest import interruptible\n"
             "interruptible()\n"
             "print(subprocess.run([sys.executable, '-c', 'import signal; "
             "print(signal.getsignal(signal.SIGINT) is signal.default_int_handler)'],"
             " capture_output=True, text=True).stdout.strip())\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=60, cwd=tmp_path)
    assert out.stdout.strip() == "True", out.stderr
