"""Layered configuration: the master file, a site file, then overrides.

OCD reads its options in three layers, later ones winning:

1. the master configuration shipped in the package (``ocd/data/ocd.cfg``),
   which names every section and option that exists;
2. the file given with ``--config`` (a missing file is skipped with a
   warning, except for ``ocd run`` and ``twistd ocd``: a daemon started on
   the built-in defaults after a typo would use another observation-number
   database and other URLs, so there it is an error; a bare ``--config``,
   meaning ``ocd.cfg``, stays a warning everywhere);
3. overrides from the command line (and, while ``ocd run`` runs, from
   ``ocd config send`` for the options that the master marks ``live: yes``).

A relative path in a configuration file (``[shots] state_db = state.sqlite``)
is taken relative to that file's folder, so a site file works from any
working directory; relative paths of the master and of the command line are
taken relative to the working directory.

Only options of the master can be set: an unknown section or option in a
layer is an error that names it, so a misspelt threshold never silently
leaves the default in force. Values are strings until read through the
typed getters, whose errors name the file, section, option and value.

``${NAME}`` reads the environment variable NAME; ``$$`` is a literal ``$``.
The environment is never injected as configparser's DEFAULT section.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shlex
import sys
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, TypeVar

# ConfigError lives with the checks (which raise it) and is also imported from here.
from ocd.config_checks import OPTION_TYPES, ConfigError
from ocd.config_docs import OptionDoc, OptionDocError, parse_option_docs

T = TypeVar("T")

MASTER_NAME = "ocd.cfg"
DEFAULT_LOCAL_CONFIG = "ocd.cfg"
COMMAND_LINE = "command line"
LIVE_UPDATE = "ocd config send"


class BareConfigName(str):
    """The value of a bare ``--config`` (``ocd.cfg``): missing is only a warning."""


def master_path() -> Path:
    """Path of the master configuration shipped with the package."""
    return Path(str(resources.files("ocd").joinpath("data", MASTER_NAME)))


def master_text() -> str:
    return master_path().read_text(encoding="utf-8")


_ENV_RE = re.compile(r"\$(?:\$|\{([A-Za-z_][A-Za-z0-9_]*)\})")


class EnvInterpolation(configparser.Interpolation):
    """``${NAME}`` from the process environment, ``$$`` for ``$``.

    A ``$`` followed by anything else is an error, so that a forgotten brace
    does not pass through as a literal.
    """

    def before_get(self, parser, section, option, value, defaults):  # type: ignore[override]
        return expand_environment(value, section, option, os.environ)

    def before_set(self, parser, section, option, value):  # type: ignore[override]
        # Validate early so a bad override fails where it is given.
        expand_environment(value, section, option, {}, check_only=True)
        return value


def expand_environment(
    value: str,
    section: str,
    option: str,
    environ: Mapping[str, str],
    check_only: bool = False,
) -> str:
    out: list[str] = []
    pos = 0
    for match in _ENV_RE.finditer(value):
        before = value[pos : match.start()]
        if "$" in before:
            raise ConfigError(
                f"[{section}] {option}: bad '$' in {value!r}: use ${{NAME}} or $$"
            )
        out.append(before)
        name = match.group(1)
        if name is None:
            out.append("$")
        elif check_only:
            out.append(match.group(0))
        elif name in environ:
            out.append(environ[name])
        else:
            raise ConfigError(
                f"[{section}] {option}: environment variable {name} is not set"
                f" (value {value!r})"
            )
        pos = match.end()
    rest = value[pos:]
    if "$" in rest:
        raise ConfigError(
            f"[{section}] {option}: bad '$' in {value!r}: use ${{NAME}} or $$"
        )
    out.append(rest)
    return "".join(out)


def _new_parser() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(
        interpolation=EnvInterpolation(),
        default_section="__no_defaults__",
        inline_comment_prefixes=None,
    )
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    return parser


_TRUE = {"yes", "true", "on", "1"}
_FALSE = {"no", "false", "off", "0"}
_LIST_SPLIT = re.compile(r"[\s,]+")


def split_list(value: str) -> list[str]:
    """Split a whitespace- or comma-separated list; empty gives []."""
    return [item for item in _LIST_SPLIT.split(value.strip()) if item]


class Config:
    """The configuration of one OCD program: layered, typed, validated.

    One instance is made at start and passed down; nothing reads options
    from module-level state.
    """

    def __init__(self) -> None:
        self._parser = _new_parser()
        self._origin: dict[tuple[str, str], str] = {}
        self.files_read: list[str] = []
        self.warnings: list[str] = []
        try:
            docs = parse_option_docs(master_text(), MASTER_NAME)
        except OptionDocError as exc:
            raise ConfigError(str(exc)) from None
        self._docs = {(d.section, d.option): d for d in docs}
        self._read_layer(master_text(), str(master_path()), allow_new=True)

    # -- building -----------------------------------------------------------
    @classmethod
    def load(
        cls,
        config_file: str | None = None,
        overrides: Iterable[tuple[str, str, str]] = (),
        required: bool = False,
    ) -> "Config":
        """Master, then ``config_file`` (when given and present), then overrides.

        With ``required`` (``ocd run``, ``twistd ocd``), a ``config_file`` that
        does not exist is an error, unless it is a bare ``--config``
        (:class:`BareConfigName`).
        """
        config = cls()
        if config_file:
            if required and not isinstance(config_file, BareConfigName) \
                    and not os.path.exists(config_file):
                raise ConfigError(
                    f"configuration file {os.path.abspath(config_file)} does not exist: "
                    "OCD does not start on the built-in defaults (another observation-number "
                    "database, other URLs); give an existing file")
            config.read_file(config_file)
        for section, option, value in overrides:
            config.set(section, option, value, origin=COMMAND_LINE)
        config.validate()
        return config

    def read_file(self, path: str | os.PathLike[str]) -> None:
        path = os.path.abspath(os.fspath(path))
        if not os.path.exists(path):
            message = f"configuration file {path!r} does not exist: skipped"
            self.warnings.append(message)
            print(f"WARNING: {message}", file=sys.stderr)
            return
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read configuration file {path!r}: {exc}") from exc
        self._read_layer(text, path, allow_new=False)
        self.files_read.append(path)

    def _read_layer(self, text: str, origin: str, allow_new: bool) -> None:
        layer = _new_parser()
        try:
            layer.read_string(text, source=origin)
        except configparser.Error as exc:
            raise ConfigError(f"{origin}: {exc}") from exc
        for section in layer.sections():
            if not allow_new and not self._parser.has_section(section):
                raise ConfigError(f"{origin}: unknown section [{section}]")
            if allow_new and not self._parser.has_section(section):
                self._parser.add_section(section)
            for option in layer.options(section):
                if not allow_new and not self._parser.has_option(section, option):
                    raise ConfigError(
                        f"{origin}: unknown option {option!r} in section [{section}]"
                    )
                raw = layer.get(section, option, raw=True)
                self._set_raw(section, option, raw, origin)

    def set(self, section: str, option: str, value: str, origin: str = COMMAND_LINE) -> None:
        """Override one existing option (command line or live update)."""
        if not self._parser.has_section(section):
            raise ConfigError(f"{origin}: cannot override [{section}] {option}: no section [{section}]")
        if not self._parser.has_option(section, option):
            raise ConfigError(
                f"{origin}: cannot override [{section}] {option}: "
                f"section [{section}] has no option {option!r}"
            )
        self._set_raw(section, option, value, origin)

    def _set_raw(self, section: str, option: str, value: str, origin: str) -> None:
        try:
            self._parser.set(section, option, value)
        except ConfigError as exc:
            raise ConfigError(f"{origin}: {exc}") from exc
        self._origin[(section, option)] = origin

    def copy(self) -> "Config":
        """An independent copy (a live update is validated on a copy first)."""
        new = Config.__new__(Config)
        new._parser = _new_parser()
        new._parser.read_dict(
            {s: {o: self._parser.get(s, o, raw=True) for o in self._parser.options(s)}
             for s in self._parser.sections()}
        )
        new._origin = dict(self._origin)
        new.files_read = list(self.files_read)
        new.warnings = list(self.warnings)
        new._docs = self._docs
        return new

    # -- introspection -----------------------------------------------------
    def sections(self) -> list[str]:
        return self._parser.sections()

    def options(self, section: str) -> list[str]:
        return self._parser.options(section)

    def has_option(self, section: str, option: str) -> bool:
        return self._parser.has_option(section, option)

    def origin(self, section: str, option: str) -> str:
        return self._origin.get((section, option), "?")

    def doc(self, section: str, option: str) -> OptionDoc | None:
        return self._docs.get((section, option))

    def is_live(self, section: str, option: str) -> bool:
        """May ``ocd config send`` change this option while OCD runs?"""
        doc = self._docs.get((section, option))
        return bool(doc and doc.live)

    def as_dict(self) -> dict[str, dict[str, str]]:
        return {s: {o: self._parser.get(s, o, raw=True) for o in self._parser.options(s)}
                for s in self._parser.sections()}

    # -- typed access ------------------------------------------------------
    def where(self, section: str, option: str, value: str) -> str:
        """``file: [section] option = 'value'``: the start of every error about a value."""
        return f"{self.origin(section, option)}: [{section}] {option} = {value!r}"

    def raw(self, section: str, option: str) -> str:
        """The option's text, ``${NAME}`` expanded; ConfigError if it has none."""
        if not self._parser.has_option(section, option):
            raise ConfigError(f"no option [{section}] {option} in the configuration")
        try:
            return self._parser.get(section, option)
        except ConfigError as exc:
            raise ConfigError(f"{self.origin(section, option)}: {exc}") from exc

    def convert(self, section: str, option: str, kind: str, convert: Callable[[str], T]) -> T:
        """``convert(text)``; a ValueError becomes a ConfigError that says where and ``kind``."""
        value = self.raw(section, option)
        try:
            return convert(value)
        except (ValueError, TypeError) as exc:
            detail = f" ({exc})" if str(exc) else ""
            raise ConfigError(
                f"{self.where(section, option, value)}: expected {kind}{detail}"
            ) from exc

    def get_str(self, section: str, option: str) -> str:
        return self.raw(section, option).strip()

    def get_int(self, section: str, option: str) -> int:
        return self.convert(section, option, "an integer", lambda v: int(v.strip()))

    def get_float(self, section: str, option: str) -> float:
        def convert(value: str) -> float:
            number = float(value.strip())
            if number != number or number in (float("inf"), float("-inf")):
                raise ValueError("not a finite number")
            return number

        return self.convert(section, option, "a number", convert)

    def get_bool(self, section: str, option: str) -> bool:
        def convert(value: str) -> bool:
            v = value.strip().lower()
            if v in _TRUE:
                return True
            if v in _FALSE:
                return False
            raise ValueError("")

        return self.convert(section, option, "yes or no", convert)

    def get_list(self, section: str, option: str) -> list[str]:
        return split_list(self.raw(section, option))

    def get_float_list(self, section: str, option: str, length: int | None = None) -> list[float]:
        def convert(value: str) -> list[float]:
            numbers = [float(v) for v in split_list(value)]
            if length is not None and len(numbers) != length:
                raise ValueError(f"{length} numbers needed, got {len(numbers)}")
            return numbers

        return self.convert(section, option, "a list of numbers", convert)

    def get_urls(self, section: str, option: str) -> list[str]:
        def convert(value: str) -> list[str]:
            urls = split_list(value)
            for url in urls:
                if not re.match(r"^(tcp|ipc|inproc|pgm|epgm)://\S+$", url):
                    raise ValueError(f"{url!r} is not a ZeroMQ URL such as tcp://127.0.0.1:5555")
                port = re.match(r"^tcp://.*:(\d+)$", url)
                if port and not 0 <= int(port.group(1)) < 65536:
                    # ZeroMQ takes 99999 modulo 65536 and binds another port than the banner says
                    raise ValueError(f"{url!r}: port {port.group(1)} is not 0 to 65535 "
                                     "(0: a free port)")
            return urls

        return self.convert(section, option, "a list of ZeroMQ URLs", convert)

    def get_url_at(self, option: str, index_section: str, index_option: str) -> str:
        """The ``[urls] option`` URL picked by a 0-based index option."""
        urls = self.get_urls("urls", option)
        index = self.get_int(index_section, index_option)
        if not 0 <= index < len(urls):
            raise ConfigError(
                f"{self.where(index_section, index_option, str(index))}: index out of "
                f"range for [urls] {option}, which has {len(urls)} URL(s): {urls}"
            )
        return urls[index]

    def get_path(self, section: str, option: str) -> Path | None:
        """A path; relative ones in a configuration file are relative to its folder."""
        value = self.get_str(section, option)
        if not value:
            return None
        path = Path(os.path.expanduser(value))
        origin = self.origin(section, option)
        if not path.is_absolute() and origin in self.files_read:
            path = Path(os.path.abspath(origin)).parent / path
        return path

    def get_json(self, section: str, option: str) -> Any:
        return self.convert(section, option, "JSON", json.loads)

    def get_choice(self, section: str, option: str, choices: Iterable[str]) -> str:
        allowed = list(choices)

        def convert(value: str) -> str:
            v = value.strip()
            if v not in allowed:
                raise ValueError(f"one of {', '.join(allowed)}")
            return v

        return self.convert(section, option, "a choice", convert)

    def get_command(self, section: str, option: str) -> list[str]:
        return self.convert(section, option, "a command line", shlex.split)

    # -- validation --------------------------------------------------------
    def validate(self) -> None:
        """Read every option, typed when its type is known, so a bad value
        (or an unset ``${NAME}``) fails at start, not in the middle of a night."""
        for section in self.sections():
            for option in self.options(section):
                self.raw(section, option)
        for (section, option), kind in OPTION_TYPES.items():
            if self.has_option(section, option):
                kind(self, section, option)


def apply_live_update(config: Config, section: str, option: str, value: str) -> tuple[bool, str]:
    """Validate and apply one ``ocd config send`` update; never half-applies.

    Returns ``(applied, message)``: the message says what changed or why not.
    """
    if not config.has_option(section, option):
        return False, f"unknown option [{section}] {option}"
    if not config.is_live(section, option):
        return False, f"[{section}] {option} cannot be changed while OCD runs (live: no)"
    trial = config.copy()
    try:
        trial.set(section, option, value, origin=LIVE_UPDATE)
        check = OPTION_TYPES.get((section, option))
        if check is not None:
            check(trial, section, option)
        else:
            trial.get_str(section, option)
    except ConfigError as exc:
        return False, str(exc)
    old = config._parser.get(section, option, raw=True)
    config.set(section, option, value, origin=LIVE_UPDATE)
    return True, f"[{section}] {option}: {old!r} -> {value!r}"
