"""The files ``ocd run`` and ``twistd ocd`` write, checked before the service tree is built.

``[general] json_log``, ``[general] night_log`` and, with ``[database]
backend = sqlite``, ``[database] sqlite_file``: a folder, a device, a file
that is not SQLite, a folder that cannot be made or no permission used to
end in a traceback from deep inside a service (exit 1); now one line naming
the option, exit 2, before anything starts.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ocd.config import Config, ConfigError

#: The first 16 bytes of every SQLite database file.
SQLITE_HEADER = b"SQLite format 3\x00"


def start_files(config: Config) -> list[tuple[str, str, Path, bool]]:
    """``(section, option, path, is_sqlite)`` of the files ``ocd run`` writes."""
    files: list[tuple[str, str, Path, bool]] = []
    for section, option, sqlite in (("general", "json_log", False),
                                    ("general", "night_log", True)):
        path = config.get_path(section, option)
        if path is not None:
            files.append((section, option, path, sqlite))
    if config.get_choice("database", "backend", ("mysql", "sqlite")) == "sqlite":
        path = config.get_path("database", "sqlite_file")
        if path is not None:  # empty: ObsnumPool says so
            files.append(("database", "sqlite_file", path, True))
    return files


def _cannot_write(target: Path) -> str:
    try:
        if os.statvfs(target).f_flag & os.ST_RDONLY:
            return f"read-only: the file system of {target} is mounted read-only"
    except OSError:
        pass
    return f"read-only: no permission to write {target}"


def file_problem(path: Path, sqlite: bool) -> str | None:
    """Why OCD cannot write ``path`` (an SQLite database if ``sqlite``), or None.

    Makes the missing folders as OCD itself does at start (the night log,
    the JSON log and the SQLite observation numbers all do); a missing file
    is created and removed again (a JSON log is kept: it is opened at once).
    """
    try:
        info: os.stat_result | None = path.stat()
    except FileNotFoundError:
        info = None
    except NotADirectoryError:
        return "cannot be reached: a part of its path is a file, not a folder"
    except OSError as exc:  # a loop of links, no permission
        return f"cannot be reached: {exc.strerror or exc}"
    folder = path.parent
    if info is None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            return f"cannot create its folder {folder}: {exc.strerror or exc}"
        if not os.access(folder, os.W_OK | os.X_OK):
            return _cannot_write(folder)
        if not sqlite:
            return None  # created by the opening below
        try:  # creatable here? (/proc, a full or odd file system)
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        except FileExistsError:
            return None  # made meanwhile by someone else
        except OSError as exc:
            return f"cannot be created in {folder}: {exc.strerror or exc}"
        try:
            os.unlink(path)
        except OSError:
            pass  # an empty file is a valid new database
        return None
    if stat.S_ISDIR(info.st_mode):
        return "is a folder, not a file"
    if sqlite and not stat.S_ISREG(info.st_mode):
        return "is not a regular file (a device, a pipe or a socket): SQLite cannot use it"
    if not os.access(path, os.W_OK):
        return _cannot_write(path)
    if sqlite:
        if info.st_size:
            try:
                with open(path, "rb") as handle:
                    header = handle.read(len(SQLITE_HEADER))
            except OSError as exc:
                return f"cannot be read: {exc.strerror or exc}"
            if header != SQLITE_HEADER:
                return "not an SQLite database (another kind of file)"
        if not os.access(folder, os.W_OK | os.X_OK):  # SQLite's journal is beside the file
            return f"{_cannot_write(folder)} (SQLite writes its journal there)"
    return None


def option_error(config: Config, section: str, option: str, path: Path,
                 problem: str) -> ConfigError:
    """``file: [section] option = 'value' (absolute path): problem``."""
    try:
        where = config.where(section, option, config.raw(section, option))
    except ConfigError:
        where = f"[{section}] {option}"
    shown = f" ({path.absolute()})" if str(path) != config.get_str(section, option) else ""
    return ConfigError(f"{where}{shown}: {problem}")


def check_start_files(config: Config) -> None:
    """Refuse, as one :class:`ConfigError` naming the option, a file OCD cannot write.

    ``ocd run`` and ``twistd ocd`` call it before the service tree is built:
    ``[general] json_log`` (opened here, as logging will), ``[general]
    night_log`` and, with ``[database] backend = sqlite``, ``[database]
    sqlite_file`` (a folder, a device, a file that is not SQLite, a folder
    that cannot be made, no permission). What slips through still fails at
    start in one line naming the option (the night log and the observation
    numbers say so themselves).
    """
    from ocd.json_log import open_for_append

    for section, option, path, sqlite in start_files(config):
        problem = file_problem(path, sqlite)
        if problem is None and not sqlite:
            try:
                os.close(open_for_append(path))
            except OSError as exc:
                problem = f"cannot be opened for writing: {exc.strerror or exc}"
        if problem is not None:
            raise option_error(config, section, option, path, problem)


def json_log_error(config: Config, exc: OSError) -> ConfigError:
    """The JSON log checked above could not be opened after all (it changed since)."""
    path = config.get_path("general", "json_log") or Path(exc.filename or "?")
    return option_error(config, "general", "json_log", path,
                        f"cannot be opened for writing: {exc.strerror or exc}")
