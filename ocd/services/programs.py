"""Which programs a shot will run: found at start, never a stand-in in disguise.

``[run_shot] syscmd_command`` and ``dither_command`` name the telescope's own
programs. OCD resolves their first word on ``PATH`` at start (``ocd run``,
``twistd ocd``, ``ocd run_shot``) and on every timer tick of the main loop,
so that a program that cannot be found is the ``programs_missing`` blocker
(shots.md section 2) and a clear line at start, not a failure in the middle
of the first shot.

OCD ships stand-ins for both programs (``python -m ocd.sim.syscmd``,
``python -m ocd.sim.dither``) for the demo and the tests. A shot run
through a stand-in "succeeds" without taking data, so whenever a resolved
program is one of them (the ``-m ocd.sim...`` form, or an executable file
that loads ``ocd.sim``, such as a console script left by an old install)
OCD says so loudly: a warning at start and a ``stand_ins`` entry in the
details of every ``ocd.decision.made``.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from typing import Mapping

from ocd.config import Config, ConfigError

#: The options that name a program, in the order of the spec's table.
PROGRAM_OPTIONS: tuple[tuple[str, str], ...] = (
    ("run_shot", "syscmd_command"),
    ("run_shot", "dither_command"),
)
#: Modules of OCD's own stand-ins.
STANDIN_PACKAGE = "ocd.sim"
#: How much of an executable file is read to recognise a stand-in script.
_SNIFF_BYTES = 4096


@dataclass(frozen=True)
class Program:
    """The program of one command option, as found on ``PATH`` (or not)."""

    option: str  # "[run_shot] syscmd_command"
    name: str  # the first word of the template, as written
    path: str | None  # absolute path, None when not found
    standin: str | None  # e.g. "python -m ocd.sim.syscmd", None for a real program

    def describe(self) -> str:
        if self.path is None:
            return f"{self.option}: program {self.name!r} not found on PATH"
        text = f"{self.option}: {self.path}"
        if self.standin:
            text += f" (OCD's STAND-IN {self.standin}: NO DATA IS TAKEN)"
        return text


def _standin_module(argv: list[str]) -> str | None:
    """``ocd.sim.x`` when the command is ``<python> -m ocd.sim.x ...``."""
    for flag, module in zip(argv[1:], argv[2:]):
        if flag == "-m" and (module == STANDIN_PACKAGE or module.startswith(STANDIN_PACKAGE + ".")):
            return module
    return None


def _script_loads_standin(path: str) -> bool:
    """Does the executable at ``path`` load OCD's stand-ins (a console script)?"""
    try:
        with open(path, "rb") as handle:
            head = handle.read(_SNIFF_BYTES)
    except OSError:
        return False
    return STANDIN_PACKAGE.encode() in head


def resolve_program(option: str, argv: list[str], env: Mapping[str, str] | None = None) -> Program:
    """Find ``argv[0]`` on the ``PATH`` of ``env`` (the child's environment)."""
    name = argv[0] if argv else ""
    search = (env if env is not None else os.environ).get("PATH", os.defpath)
    found = shutil.which(name, path=search) if name else None
    path = os.path.abspath(found) if found else None
    standin = None
    if path is not None:
        module = _standin_module(argv)
        if module is not None:
            standin = f"{os.path.basename(name)} -m {module}"
        elif _script_loads_standin(path):
            standin = f"{path} (a script that runs {STANDIN_PACKAGE})"
    return Program(option, name, path, standin)


def resolve_programs(config: Config, env: Mapping[str, str] | None = None) -> list[Program]:
    """Every program option of ``config``, in the spec's order."""
    out = []
    for section, option in PROGRAM_OPTIONS:
        try:
            argv = config.get_command(section, option)
        except ConfigError:
            argv = []
        out.append(resolve_program(f"[{section}] {option}", argv, env))
    return out


def alert_program(config: Config, env: Mapping[str, str] | None = None) -> str:
    """``[general] alert_command`` in one line for the banner: none, found, or NOT found.

    It wakes a person when OCD disarms or a shot fails; a missing program was
    only discovered at the first alert ("alert command failed"), at night.
    """
    try:
        argv = config.get_command("general", "alert_command")
    except ConfigError as exc:
        return f"alert command: {exc}"
    if not argv:
        return "alert command: none ([general] alert_command is empty: alerts only in the log)"
    program = resolve_program("[general] alert_command", argv, env)
    if program.path is None:
        return (f"alert command: [general] alert_command: program {program.name!r} NOT FOUND on "
                "PATH: ALERTS WILL FAIL")
    return f"alert command: {program.path}"


def missing_detail(programs: list[Program]) -> str | None:
    """The ``programs_missing`` detail, or None when every program is found."""
    missing = [p for p in programs if p.path is None]
    if not missing:
        return None
    return "; ".join(
        f"{p.option} names {p.name!r}, not found on PATH" if p.name else f"{p.option} is empty"
        for p in missing
    )


def standin_detail(programs: list[Program]) -> str | None:
    """The loud ``stand_ins`` detail, or None when no stand-in is configured."""
    used = [p for p in programs if p.standin]
    if not used:
        return None
    return "STAND-IN programs, no data is taken: " + "; ".join(
        f"{p.option} runs {p.standin}" for p in used)
