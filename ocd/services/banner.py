"""The banner: what ``ocd run`` and ``twistd ocd`` are about to do, said first.

A night operator reading a log at 3 a.m. must see, before anything else,
which OCD this is and what it is connected to: the version, the
configuration files read, every URL bound or connected with its role, the
observation-number database, the shot file, the state database, the
programs a shot will run (resolved on ``PATH``) and the clock. Every path is
absolute. The lines go through ``twisted.logger`` (namespace ``ocd.banner``),
so they reach the console, twistd's log file and the JSON log alike.

Built from the configuration alone (no I/O beyond looking at files and
``PATH``), so a test can read it without starting anything.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from twisted.logger import Logger

from ocd import __version__
from ocd.config import Config, ConfigError, master_path

log = Logger(namespace="ocd.banner")


def _path(path: Path | None, missing: str) -> str:
    if path is None:
        return "none"
    absolute = os.path.abspath(path)
    return absolute if os.path.exists(absolute) else f"{absolute} ({missing})"


def banner_lines(config: Config) -> list[str]:
    """The banner, one line per fact (see the module doc)."""
    from ocd.core.clock import OcdClock
    from ocd.services.obsnum import ObsnumPool
    from ocd.services.programs import alert_program, resolve_programs

    lines = [f"OCD {__version__} starting (pid {os.getpid()}, Python "
             f"{sys.version.split()[0]}, working directory {os.getcwd()})"]
    files = ", ".join(config.files_read) or "none: built-in defaults and command line only"
    lines.append(f"configuration: {master_path()} (master), then {files}")
    for warning in config.warnings:
        lines.append(f"configuration WARNING: {warning}")
    lines.append("bind    {} (ocd_main_loop: replies, states, decisions)".format(
        config.get_url_at("ocd_main_loop", "run", "n_ocd_main_loop")))
    lines.append("bind    {} (ocd_run_shot: OCD's own shot events)".format(
        config.get_url_at("ocd_run_shot", "run", "n_ocd_run_shot")))
    # (main_loop.telescope_source has refused both at once before this runs)
    replay = config.get_urls("urls", "ocd_db_replay")
    option, role = (("ocd_db_replay", "a replayed night (ocd db_replay)") if replay
                    else ("event_urls", "telescope events (TCS)"))
    for url in config.get_urls("urls", option) or ["(none: OCD hears no telescope)"]:
        lines.append(f"connect {url} ({option}: {role})")
    for option, role in (("ocd_allow_hetdex", "arming requests"),
                         ("ocd_config", "live configuration updates"),
                         ("ocd_run_shot", "shot events of every runner")):
        for url in config.get_urls("urls", option):
            lines.append(f"connect {url} ({option}: {role})")
    try:
        lines.append(f"observation numbers: {ObsnumPool(config, None).where()}")
    except ConfigError as exc:
        lines.append(f"observation numbers: configuration error: {exc}")
    lines.append("shot file: " + _path(config.get_path("shots", "shot_file"),
                                       "MISSING: no shots until it appears"))
    lines.append("state database: " + _path(config.get_path("shots", "state_db"),
                                            "NEW: remaining n_obs start afresh"))
    lines.append("shuffle files: " + _path(config.get_path("paths", "shuffle_shot") or Path("."),
                                            "MISSING: every shot fails at its set-up"))
    acam = config.get_path("paths", "acam_dest_file")
    if acam is not None:
        lines.append(f"ACAM image copied to: {os.path.abspath(acam)}"
                     + ("" if os.path.isdir(os.path.dirname(os.path.abspath(acam)))
                        else " (its folder is MISSING: every shot fails at its set-up)"))
    for program in resolve_programs(config):
        lines.append("program " + program.describe())
    lines.append(alert_program(config))
    clock = OcdClock.from_config(config)
    lines.append(f"clock: [dates] clock = {clock.mode}, OCD's time is the "
                 f"{clock.describe()}; silences and timeouts on the monotonic clock")
    json_log = config.get_path("general", "json_log")
    lines.append(f"log level {config.get_str('general', 'log_level')}; JSON log "
                 f"{os.path.abspath(json_log) if json_log else 'none'}")
    return lines


def log_banner(config: Config) -> None:
    """Log the banner, one event per line."""
    for line in banner_lines(config):
        log.info("{line}", line=line, ocd_event="banner")
