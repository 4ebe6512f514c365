"""What each option may hold: the checks of typed options, and ConfigError.

:class:`ocd.config.Config` reads the layers and converts text; this module
says which options have a type and what makes a value wrong (a negative
timeout, ``nan`` exposure times, a template with ``{nosuch}``, an endpoint
Twisted cannot parse). :data:`OPTION_TYPES` is checked whole at start and
per option for a live update, by every command that loads a configuration,
so a bad value fails at start, not in the middle of a night.

A check takes the configuration, a section and an option, reads the value
through the configuration's typed getters (:class:`Options`) and returns it
or raises :class:`ConfigError` naming where the value was set.
"""

from __future__ import annotations

import math
import re
import string
from typing import Any, Callable, Protocol

from ocd.core.clock import MOCK_TIME_KIND, ClockOptions, parse_mock_time
from ocd.core.shot_tracker import MAX_EXPTIME


class ConfigError(Exception):
    """A configuration problem, with where it is (file, section, option)."""


class Options(ClockOptions, Protocol):
    """What a check reads of a configuration (:class:`ocd.config.Config` has it):
    the clock's options (``get_choice``, ``convert``) and these."""

    def where(self, section: str, option: str, value: str) -> str: ...
    def raw(self, section: str, option: str) -> str: ...
    def get_str(self, section: str, option: str) -> str: ...
    def get_int(self, section: str, option: str) -> int: ...
    def get_float(self, section: str, option: str) -> float: ...
    def get_bool(self, section: str, option: str) -> bool: ...
    def get_urls(self, section: str, option: str) -> list[str]: ...
    def get_float_list(self, section: str, option: str, length: int | None = None) -> list[float]: ...
    def get_command(self, section: str, option: str) -> list[str]: ...


def _nonneg(getter: Callable[[Options, str, str], float]) -> Callable[[Options, str, str], float]:
    def check(config: Options, section: str, option: str) -> float:
        value = getter(config, section, option)
        if value < 0:
            raise ConfigError(
                f"{config.where(section, option, config.raw(section, option))}: expected a value >= 0"
            )
        return value

    return check


def _between(low: float, high: float, unit: str, low_open: bool = False,
             zero_too: bool = False) -> Callable[[Options, str, str], float]:
    """A finite float from ``low`` to ``high`` (``low`` itself excluded if ``low_open``;
    0 also allowed if ``zero_too``: "no check").

    Every number OCD waits on, compares with or divides by has a range it
    can work in: a timeout of 1e308 never fires, one of 1e-308 fires at once,
    a negative threshold blocks for ever, and some overflow deep inside a
    decision (seen: every heartbeat dropped, every decision failing). They
    are refused at start and in a live update instead.
    """
    def check(config: Options, section: str, option: str) -> float:
        value = config.get_float(section, option)
        if zero_too and value == 0:
            return value
        above = value > low if low_open else value >= low
        if not (above and value <= high):
            lowest = f"above {low:g}" if low_open else f"{low:g}"
            zero = " (or 0: no check)" if zero_too else ""
            raise ConfigError(f"{config.where(section, option, config.raw(section, option))}: "
                              f"expected {lowest} to {high:g} {unit}{zero}")
        return value

    check.accepts = (f"{'above ' if low_open else ''}{low:g} to {high:g}"  # type: ignore[attr-defined]
                     + (", or 0" if zero_too else ""))
    return check


DAY = 86400.0


def _int_between(low: int, high: int) -> Callable[[Options, str, str], int]:
    """An integer from ``low`` to ``high`` (an observation number fits the table's INT)."""
    def check(config: Options, section: str, option: str) -> int:
        value = config.get_int(section, option)
        if not low <= value <= high:
            raise ConfigError(f"{config.where(section, option, config.raw(section, option))}: "
                              f"expected an integer from {low} to {high}")
        return value

    check.accepts = f"{low} to {high}"  # type: ignore[attr-defined]
    return check

# MAX_EXPTIME (one day) bounds ``[run_shot] exptimes``: beyond it a value is a
# typo or an attack (``1e300``), and deadlines built on it overflow. The same
# bound holds for the exposure times of a START (ocd.core.shot_tracker).


#: The shortest exposure OCD plans with, s: a shot's length is the sum of
#: its exposures and the overhead, and 1e-308 s (with no overhead) made
#: every decision overflow in the look-ahead.
MIN_EXPTIME = 1.0


def _exptimes(config: Options, section: str, option: str) -> list[float]:
    """Three finite numbers, each from :data:`MIN_EXPTIME` to :data:`MAX_EXPTIME` seconds."""
    numbers = config.get_float_list(section, option, 3)
    for number in numbers:
        if not (math.isfinite(number) and MIN_EXPTIME <= number <= MAX_EXPTIME):
            raise ConfigError(
                f"{config.where(section, option, config.raw(section, option))}: expected "
                f"three finite numbers from {MIN_EXPTIME:g} to {MAX_EXPTIME:.0f} s, got {number!r}"
            )
    return numbers


_exptimes.accepts = f"each {MIN_EXPTIME:g} to {MAX_EXPTIME:.0f}"  # type: ignore[attr-defined]


#: Placeholders of the shot command templates (shots.md section 3, step 4).
SHOT_PLACEHOLDERS: tuple[str, ...] = (
    "shotid", "obs_number", "ra", "dec", "azimuth", "track", "track_name",
    "exposure", "seconds", "exp01", "exp02", "exp03", "dither_with_probes",
)
#: Placeholders of ``[paths] shuffle_conf_template`` (shots.md section 1).
SHUFFLE_PLACEHOLDERS: tuple[str, ...] = ("shotid", "QIFU", "track", "track_initial", "track_name")


#: A value of each placeholder's type, as a shot fills it in: a template is
#: formatted with them at start, so that a format spec or conversion that
#: cannot work (``{shotid:d}``, ``{ra!z}``) fails there, not in every shot.
SAMPLE_VALUES: dict[str, Any] = {
    "shotid": "DEX00001", "obs_number": 1, "ra": 150.25, "dec": 50.5, "azimuth": 180.0,
    "track": 0, "track_name": "EAST", "track_initial": "E", "exposure": 1, "seconds": 360.0,
    "exp01": 360.0, "exp02": 360.0, "exp03": 360.0, "dither_with_probes": "yes",
    "switch": "-x", "command": "x", "QIFU": "047",
}


def template_fields(template: str) -> list[str]:
    """The placeholder names of a ``str.format`` template (``{obs_number:07d}`` -> ``obs_number``).

    Raises :class:`ValueError` for a template that cannot be parsed (a lone
    brace), a positional placeholder, or one that reaches into an attribute
    or an index (``{ra.__class__}``).
    """
    names = []
    for _text, field_name, _spec, _conversion in string.Formatter().parse(template):
        if field_name is None:
            continue
        root = re.split(r"[.\[]", field_name, maxsplit=1)[0]
        if not root or root.isdigit():
            raise ValueError(f"positional placeholder {{{field_name}}}: use a name")
        if root != field_name:  # {ra.__class__}, {shotid[0]}: reaches into Python objects
            raise ValueError(f"placeholder {{{field_name}}}: only names, no attribute or index")
        names.append(root)
    return names


def _template(known: tuple[str, ...], command: bool) -> Callable[[Options, str, str], Any]:
    """A command (split like a shell line) or path template whose placeholders are all known.

    A template with ``{nosuch}`` would fail every shot in the middle of the
    night; it fails at start instead (and a live update is refused).
    """

    def check(config: Options, section: str, option: str) -> Any:
        value = config.get_command(section, option) if command else config.get_str(section, option)
        for word in value if command else [value]:
            try:
                names = template_fields(word)
            except ValueError as exc:
                raise ConfigError(
                    f"{config.where(section, option, config.raw(section, option))}: "
                    f"bad template: {exc}") from None
            unknown = [n for n in names if n not in known]
            if unknown:
                raise ConfigError(
                    f"{config.where(section, option, config.raw(section, option))}: unknown "
                    f"placeholder {{{unknown[0]}}}; known: "
                    + " ".join("{" + k + "}" for k in known))
            try:
                word.format(**{name: SAMPLE_VALUES[name] for name in known})
            except (ValueError, TypeError, KeyError, IndexError) as exc:
                raise ConfigError(
                    f"{config.where(section, option, config.raw(section, option))}: "
                    f"bad template {word!r}: {exc}") from None
        return value

    return check


def _choice(*choices: str) -> Callable[[Options, str, str], str]:
    return lambda c, s, o: c.get_choice(s, o, choices)


def _INT(config: Options, section: str, option: str) -> int:
    return config.get_int(section, option)


def _BOOL(config: Options, section: str, option: str) -> bool:
    return config.get_bool(section, option)


def _URLS(config: Options, section: str, option: str) -> list[str]:
    return config.get_urls(section, option)


def _COMMAND(config: Options, section: str, option: str) -> list[str]:
    return config.get_command(section, option)


_POS_INT = _nonneg(_INT)


def accepts(section: str, option: str) -> str:
    """The range an option's check accepts, for the docs' table ("0.1 to 600"), or ""."""
    return getattr(OPTION_TYPES.get((section, option)), "accepts", "")


def _PORT(config: Options, section: str, option: str) -> int:
    """A TCP port a client connects to or Docker maps: 1 to 65535."""
    value = config.get_int(section, option)
    if not 0 < value < 65536:
        raise ConfigError(f"{config.where(section, option, config.raw(section, option))}: "
                          "expected a TCP port, 1 to 65535")
    return value


_PORT.accepts = "1 to 65535"  # type: ignore[attr-defined]


def _nonempty(config: Options, section: str, option: str) -> str:
    value = config.get_str(section, option).strip()
    if not value:
        raise ConfigError(f"{config.where(section, option, '')}: must not be empty")
    return value


def _mock_time(config: Options, section: str, option: str) -> float | None:
    """``[dates] mock_time``: empty, or ISO 8601 or epoch seconds."""
    return config.convert(section, option, MOCK_TIME_KIND, parse_mock_time)


#: The type of every option that has one: checked at start (``Config.load``)
#: and for every live update (``ocd config send``), whichever command loads it.
OPTION_TYPES: dict[tuple[str, str], Callable[[Options, str, str], Any]] = {
    ("general", "alert_after"): _between(0, DAY, "s"),
    ("general", "alert_every"): _between(0, DAY, "s"),
    ("general", "log_level"): _choice("debug", "info", "warn", "error", "critical"),
    ("general", "json_log_level"): _choice("debug", "info", "warn", "error", "critical"),
    ("general", "alert_command"): _COMMAND,
    ("urls", "event_urls"): _URLS,
    ("urls", "ocd_db_replay"): _URLS,
    ("urls", "ocd_main_loop"): _URLS,
    ("urls", "ocd_allow_hetdex"): _URLS,
    ("urls", "ocd_config"): _URLS,
    ("urls", "ocd_run_shot"): _URLS,
    ("topics", "auto_subscribe"): _BOOL,
    ("run", "n_ocd_main_loop"): _POS_INT,
    ("run", "n_ocd_run_shot"): _POS_INT,
    ("config", "n_ocd_config"): _POS_INT,
    ("allow_hetdex", "n_ocd_allow_hetdex"): _POS_INT,
    ("run_shot", "n_ocd_run_shot"): _POS_INT,
    ("run_shot", "dither_with_probes"): _BOOL,
    ("run_shot", "wait_last_write"): _BOOL,
    ("run_shot", "exptimes"): _exptimes,
    ("run_shot", "syscmd_command"): _template(SHOT_PLACEHOLDERS + ("switch", "command"), True),
    ("run_shot", "dither_command"): _template(SHOT_PLACEHOLDERS, True),
    ("paths", "shuffle_conf_template"): _template(SHUFFLE_PLACEHOLDERS, False),
    ("paths", "data_dir"): _template(SHOT_PLACEHOLDERS, False),
    ("run_shot", "syscmd_timeout"): _between(0.1, DAY, "s"),
    ("run_shot", "dither_timeout"): _between(0.1, 2 * DAY, "s"),
    ("run_shot", "kill_grace"): _between(0, 600, "s"),
    ("run_shot", "last_write_quiet"): _between(0, 3600, "s"),
    ("run_shot", "last_write_timeout"): _between(0, DAY, "s"),
    ("db_replay", "progress_interval"): _between(0, DAY, "s"),
    ("docker_mysql", "port"): _PORT,
    ("docker_mysql", "start_timeout"): _between(0, DAY, "s"),
    ("docker_mysql", "image"): _nonempty,
    ("database", "backend"): _choice("mysql", "sqlite"),
    ("database", "port"): _PORT,
    ("database", "first_obsnum"): _int_between(0, 2**31 - 1),
    ("database", "timeout"): _between(0, 3600, "s", low_open=True),
    ("decision", "tcs_timeout"): _between(0, DAY, "s", low_open=True),
    ("decision", "weather_timeout"): _between(0, DAY, "s", low_open=True),
    ("decision", "max_humidity"): _between(0, 100, "%"),
    ("decision", "max_wind"): _between(0, 100, "m/s"),
    ("decision", "require_shutter"): _BOOL,
    ("decision", "fwhm_window"): _between(0, 3600, "s", low_open=True),
    ("decision", "max_fwhm"): _between(0, 20, "arcsec", low_open=True),
    ("decision", "default_fwhm"): _between(0, 20, "arcsec", low_open=True),
    ("decision", "min_transparency"): _between(0, 1, "(a fraction)"),
    ("decision", "default_transparency"): _between(0, 1, "(a fraction)"),
    ("decision", "report_interval"): _between(0, 3600, "s", low_open=True),
    ("decision", "decide_interval"): _between(0.1, 600, "s (below, the timer would spin and "
                                                       "ocd plan step the night for minutes)"),
    ("decision", "shot_grace"): _between(0, DAY, "s"),
    ("scheduler", "max_sun_alt"): _between(-90, 90, "deg"),
    ("scheduler", "half_width"): _between(0, 90, "deg", low_open=True),
    ("scheduler", "overhead"): _between(0, DAY, "s"),
    ("scheduler", "lookahead"): _between(0, 2 * DAY, "s"),
    ("dates", "clock"): _choice("tcs", "system"),
    ("dates", "mock_time"): _mock_time,
    ("dates", "max_time_offset"): _between(60, 100 * 365.25 * DAY, "s", zero_too=True),
    ("topics", "heartbeat_interval"): _between(0.01, 3600, "s"),
    ("status", "endpoint"): lambda c, s, o: _status_endpoint(c.get_str(s, o)),
}


def check_endpoint(description: str) -> None:
    """Raise ConfigError unless ``description`` is a Twisted server endpoint string.

    Parsed with ``serverFromString`` and no reactor: the endpoint is only
    described here; the status service makes it on its reactor at start.
    """
    from twisted.internet.endpoints import serverFromString

    try:
        serverFromString(None, description)
    except Exception as exc:
        raise ConfigError(f"[status] endpoint {description!r} is not a Twisted server "
                          f"endpoint string (like tcp:8642:interface=127.0.0.1): {exc}") from None


def _status_endpoint(value: str) -> str:
    """``[status] endpoint``: empty, or a Twisted server endpoint string."""
    if value.strip():
        check_endpoint(value.strip())
    return value
