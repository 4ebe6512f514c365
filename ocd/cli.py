"""The ``ocd`` command line: one argparse tree, one function per subcommand.

The usage, options, defaults and help texts follow the user's own page
(``docs/run_ocd.rst``); they are the contract. Options in the groups
"Override options in the [section] section" override the configuration
option of the same name (``--event-urls`` -> ``[urls] event_urls``); the
mapping is recorded on each action so that one function turns parsed
arguments into configuration overrides.

Each subcommand is implemented in ``ocd.commands.<name>`` by a function
``main(args, config) -> int`` (the exit status of events.md 3.6).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Any, Callable, Sequence

from ocd import __version__
from ocd.commands import attempts, exposure_seconds, finite_number, seconds
from ocd.config import BareConfigName, Config, ConfigError, DEFAULT_LOCAL_CONFIG

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3

#: Subcommands for which a ``--config FILE`` that does not exist is an error
#: (the daemon; the others skip it with a warning, as the user's page says).
CONFIG_REQUIRED = frozenset({"run"})

CONFIG_HELP = (
    "Override the builtin configurations with the given configuration file. "
    'If the option is used without a value, "ocd.cfg" is used. Non existing '
    "files are skipped and a warning is printed to the screen."
)
#: ``ocd run`` (and ``twistd ocd``) refuse a named file that is missing
#: (CONFIG_REQUIRED): its help says so instead of the original page's words.
RUN_CONFIG_HELP = (
    "Override the builtin configurations with the given configuration file. "
    'If the option is used without a value, "ocd.cfg" is used, and skipped with '
    "a warning when it does not exist. A named file that does not exist is an "
    "error (exit 2): the daemon never starts on the builtin defaults after a typo."
)
EPILOG = (
    "The configuration overriding mechanism works only on existing options: "
    "make sure that the corresponding sections and options exist. The section "
    "names are given in the description of the command and the option names "
    "are, unless otherwise stated, the same as the command line options long names."
)


class _Formatter(argparse.ArgumentDefaultsHelpFormatter):
    pass


class OverrideGroup:
    """An argument group whose options override ``[section]`` options."""

    def __init__(self, parser: argparse.ArgumentParser, section: str, title: str | None = None):
        self.section = section
        self._group = parser.add_argument_group(
            title or f"Override options in the [{section}] section"
        )

    def add(self, *flags: str, option: str | None = None, **kwargs: Any) -> argparse.Action:
        action = self._group.add_argument(*flags, **kwargs)
        name = option or action.dest
        action.ocd_override = (self.section, name)  # type: ignore[attr-defined]
        return action



def _add_config(parser: argparse.ArgumentParser, help: str = CONFIG_HELP) -> None:
    parser.add_argument(
        "--config", nargs="?", const=BareConfigName(DEFAULT_LOCAL_CONFIG), default=None,
        help=help
    )


def _add_version(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-V", "--version", action="version", version=f"%(prog)s {__version__}")


def _sub(subparsers: Any, name: str, description: str, **kwargs: Any) -> argparse.ArgumentParser:
    return subparsers.add_parser(
        name,
        description=description,
        help=kwargs.pop("help", description),
        formatter_class=_Formatter,
        epilog=kwargs.pop("epilog", EPILOG),
        **kwargs,
    )


def _retry_options(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "-n", "--max-attempts", type=attempts, default=5,
        help=f'Maximum number of times "{what}" attempts to enable/disable HETDEX shot execution',
    )
    parser.add_argument(
        "-I", "--interval", type=seconds, default=1,
        help="Wait \"interval\" seconds before a new attempt.",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ocd",
        description="OCD: run the HETDEX survey at the Hobby-Eberly Telescope.",
        formatter_class=_Formatter,
    )
    _add_version(parser)
    subparsers = parser.add_subparsers(title="subcommands", dest="command", metavar="COMMAND")
    subparsers.required = True

    # -- ocd run ----------------------------------------------------------
    run = _sub(subparsers, "run", "Subcommand to run OCD")
    run.set_defaults(command_module="run")
    _add_config(run, RUN_CONFIG_HELP)
    urls = OverrideGroup(run, "urls")
    urls.add("-u", "--event-urls", nargs="+", metavar="EVENT-URLS",
             help="Address to which to connect the ZMQ socket (the TCS binds it).")
    topics = OverrideGroup(run, "topics", "Override options in the [topics] section.")
    topics.add("-t", "--extra-topics", nargs="+", metavar="EXTRA-TOPICS",
               help="Topics to subscribe to. OCD automatically subscribe only to the "
                    "topics necessary for it to work. If for any reason other topics "
                    "are needed, add them here.")
    topics.add("-a", "--auto-subscribe", choices=["yes", "no"],
               help="Do not subscribe to the topics used by OCD but only to the ones "
                    "given by -t/--topic option.")
    run_group = OverrideGroup(run, "run")
    run_group.add("--n-ocd-main-loop", type=int,
                  help="Which of the urls for the ``ocd_main_loop`` option of the "
                       "``[urls]`` section use to setup a ZMQ server")
    run_group.add("--n-ocd-run-shot", type=int,
                  help="Which of the urls for the ``ocd_run_shot`` option of the "
                       "``[urls]`` section use to setup a ZMQ server")

    # -- ocd config copy|send ---------------------------------------------
    config = _sub(subparsers, "config", "Handle the configuration files",
                  epilog=None)
    config_sub = config.add_subparsers(title="config subcommands", dest="config_command",
                                       metavar="{copy,send}")
    config_sub.required = True
    copy = _sub(config_sub, "copy", "Copy the configuration files in the desired directory",
                epilog=None)
    copy.set_defaults(command_module="config_copy")
    _add_version(copy)
    copy.add_argument("-t", "--to-dir", default=".",
                      help="Copy the configuration files to the given directory. By "
                           "default use the current directory")
    copy.add_argument("-f", "--force", action="store_true",
                      help="Force overwriting existing configuration files. If this option "
                           "is used, all local modifications will be lost")
    copy.add_argument("-b", "--backup", action="store_true",
                      help="Backup existing files before copying the new ones. If this "
                           "option is used, the `-f/--force` is ignored")

    send = _sub(config_sub, "send", "Send a configuration option to the OCD main loop")
    send.set_defaults(command_module="config_send")
    _add_version(send)
    _add_config(send)
    _retry_options(send, "ocd config send")
    send_urls = OverrideGroup(send, "urls")
    send_urls.add("-o", "--ocd-config", nargs="+",
                  help="Urls/paths used to send the signal to update the configuration entries.")
    send_urls.add("-i", "--ocd-main-loop", nargs="+",
                  help="Url/path from where the confirmation of the update arrives.")
    send_config = OverrideGroup(send, "config")
    send_config.add("-N", "--n-ocd-config-hetdex", metavar="N_OCD_CONFIG", dest="n_ocd_config",
                    type=int,
                    help="Which of the urls for the ``ocd_config`` option of the ``[urls]`` "
                         "section use to setup a ZMQ server")
    send.add_argument("section", help="Configuration section")
    send.add_argument("option", help="Configuration option to override")
    send.add_argument("value", help="New configuration value")

    # -- ocd run_shot -----------------------------------------------------
    shot = _sub(subparsers, "run_shot", "Subcommand to run a single hetdex shot")
    shot.set_defaults(command_module="run_shot")
    _add_config(shot)
    shot.add_argument("-e", "--emit-events", action="store_true",
                      help="Emit events via ZeroMQ. If used, emits a number of events using "
                           "the internal OCD ZeroMQ servers. Use with caution, in particular "
                           "if OCD is running.")
    shot.add_argument("-c", "--wait-for-connection", action="store_true",
                      help="Try to establish a connection with the OCD main loop before "
                           "starting to run the shot. This option is used only if "
                           "``-e/--emit-events`` is activated. If the connection is not "
                           "established within 10 seconds, abort the execution.")
    shot.add_argument("-t", "--timeout", type=seconds, default=10,
                      help="If ``-c/--wait-for-connection`` is given, wait at most "
                           "'timeout' seconds before aborting")
    shot.add_argument("-m", "--metadata",
                      help="Dictionary of metadata to send to TCS. It must be a JSON string "
                           "encoding a dictionary. ``json.loads`` is used to deserialize the "
                           "string to a python dictionary")
    shot_group = OverrideGroup(shot, "run_shot")
    shot_group.add("-d", "--dither-with-probes", choices=["yes", "no"],
                   help="Use the guide probes for dithering")
    shot_group.add("-w", "--wait-last-write", choices=["yes", "no"],
                   help="Wait for the last write to happen before exiting")
    shot_group.add("-N", "--n-ocd-run-shot", type=int,
                   help="Which of the urls for the ``ocd_run_shot`` option of the "
                        "``[urls]`` section use to setup a ZMQ server")
    shot_paths = OverrideGroup(shot, "paths", "Override options in the [paths] section.")
    shot_paths.add("--shuffle-shot",
                   help="Directory containing the shuffle output directoried")
    shot_paths.add("--shuffle-conf-template",
                   help="Template for the name of the configuration files generated by shuffle")
    shot_paths.add("--acam-dest-file", help="File where to copy the ACAM image")
    shot_urls = OverrideGroup(shot, "urls")
    shot_urls.add("--ocd-run-shot", nargs="+",
                  help="Urls/paths used to send the signal when running a shot. Used only "
                       "if ``-e/--emit-events`` is enabled.")
    shot.add_argument("--force", action="store_true",
                      help="Run the shot even when the observation number cannot be recorded "
                           "or, with -c, while the main loop reports another shot running "
                           "(not on the original page).")
    shot.add_argument("shotid", help="ID of the shot to run")
    shot.add_argument("obs_number", type=int,
                      help="Counter for the current observation. The number is used to set "
                           "the directory name where the output fits files are saved.")
    shot.add_argument("ra", type=finite_number, help="Right ascension of the shot")
    shot.add_argument("dec", type=finite_number, help="Declination of the shot")
    shot.add_argument("azimuth", type=finite_number,
                      help="Azimuth at which the observationis performed")
    shot.add_argument("track", type=int, choices=[0, 1], metavar="{0,1}",
                      help="Whether it is EAST or WEST track")
    shot.add_argument("exp01", type=exposure_seconds,
                      help="Exposure time of the first exposure in seconds")
    shot.add_argument("exp02", type=exposure_seconds,
                      help="Exposure time of the second exposure in seconds")
    shot.add_argument("exp03", type=exposure_seconds,
                      help="Exposure time of the third exposure in seconds")

    # -- ocd allow_hetdex -------------------------------------------------
    allow = _sub(subparsers, "allow_hetdex",
                 "Subcommand to enable or disable the execution of HETDEX shots, "
                 "even if the conditions are good.")
    allow.set_defaults(command_module="allow_hetdex")
    _add_config(allow)
    _retry_options(allow, "ocd allow_hetdex")
    allow_urls = OverrideGroup(allow, "urls")
    allow_urls.add("-o", "--ocd-allow-hetdex", nargs="+",
                   help="Urls/paths used to send the signal to enable/disable the HETDEX execution.")
    allow_urls.add("-i", "--ocd-main-loop", nargs="+",
                   help="Url/path from where the confirmation of the enabling/disabling arrive.")
    allow_group = OverrideGroup(allow, "allow_hetdex")
    allow_group.add("-N", "--n-ocd-allow-hetdex", type=int,
                    help="Which of the urls for the ``ocd_allow_hetdex`` option of the "
                         "``[urls]`` section use to setup a ZMQ server")
    allow.add_argument("action", choices=["start", "stop"], metavar="{start,stop}",
                       help='"start": allow OCD to execute HETDEX shots. "stop": don\'t start '
                            "the execution of new HETDEX shot; if a shot is running, it will finish.")

    # -- ocd db_replay ----------------------------------------------------
    replay = _sub(subparsers, "db_replay",
                  "Subcommand to replay a sqlite3 database, typically from night operations.")
    replay.set_defaults(command_module="db_replay")
    _add_config(replay)
    replay.add_argument("--serve-forever", action="store_true",
                        help="After the database finishes, restart serving it.")
    replay.add_argument("-t", "--timeout", type=seconds, default=10,
                        help="When trying to connect with the OCD main loop, wait at most "
                             "'timeout' seconds before aborting")
    replay.add_argument("-s", "--speedup", type=float, default=1.0,
                        help="Speedup to apply when replaying the database. For example, "
                             "speedup=1 plays back at the original speed; speedup=2 plays it "
                             "twice as fast")
    replay.add_argument("-T", "--topics", nargs="+",
                        help="List of topics to publish. If no topic is specified, all the "
                             "topics will be published.")
    replay.add_argument("-S", "--sort-by", choices=["none", "__data_time", "__wire_time"],
                        default="__wire_time",
                        help="Method to time-sort the events before serving them. If 'none', "
                             "no sorting is done and the order of the database is respected.")
    replay.add_argument("--no-convert-number", action="store_true",
                        help="Do not convert numeric strings into numbers.")
    replay.add_argument("--no-convert-bool", action="store_true",
                        help="Do not convert True/False strings into booleans.")
    replay_urls = OverrideGroup(replay, "urls")
    replay_urls.add("--ocd-db-replay", nargs="+",
                    help="Urls/paths used to send the signal when replaying a database.")
    replay.add_argument("db_name", help="Name of the database to replay")

    # -- ocd docker_mysql up|down|info ------------------------------------
    docker = _sub(subparsers, "docker_mysql",
                  "OCD subcommand that manages a docker container used to run a mysql "
                  "server useful for test OCD.", epilog=None)
    docker_sub = docker.add_subparsers(
        title="Docker-mysql subcommands",
        description="Type 'ocd docker_mysql cmd -h' for detailed information about the subcommands",
        dest="docker_command", metavar="{up,down,info}",
    )
    docker_sub.required = True
    for name, text in (
        ("up", "Start the mysql docker container"),
        ("down", "Stop and remove the mysql docker container"),
        ("info", "Get information about the docker image"),
    ):
        action = _sub(docker_sub, name, text)
        action.set_defaults(command_module="docker_mysql", docker_action=name)
        _add_config(action)
        OverrideGroup(action, "docker_mysql").add(
            "-c", "--container-name", help="Name of the docker container")

    # -- commands of our own ----------------------------------------------
    from ocd.commands import extra_subcommands

    for add in extra_subcommands():
        add(subparsers, _sub, _add_config)
    return parser


def overrides_from_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[tuple[str, str, str]]:
    """The ``(section, option, value)`` overrides given on the command line."""
    out: list[tuple[str, str, str]] = []
    for action in _all_actions(parser, args):
        target = getattr(action, "ocd_override", None)
        if target is None:
            continue
        value = getattr(args, action.dest, None)
        if value is None:
            continue
        if isinstance(value, list):
            value = " ".join(str(v) for v in value)
        out.append((target[0], target[1], str(value)))
    return out


def _all_actions(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[argparse.Action]:
    """The actions of the (sub)parser that parsed ``args``."""
    actions = list(parser._actions)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                if name in (getattr(args, "command", None), getattr(args, "config_command", None),
                            getattr(args, "docker_command", None)):
                    actions.extend(_all_actions(sub, args))
    return actions


def subcommand_parser(path: Sequence[str]) -> argparse.ArgumentParser:
    """The parser of ``ocd <path...>`` (for docs and tests)."""
    parser = build_parser()
    for name in path:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[name]
    return parser


def command_name(args: argparse.Namespace) -> str:
    """``ocd config send``, not ``ocd config``: the words a person typed."""
    words = ["ocd", args.command]
    if getattr(args, "config_command", None):
        words.append(args.config_command)
    return " ".join(words)


def main(argv: Sequence[str] | None = None) -> int:
    name = "ocd"
    try:
        parser = build_parser()
        args = parser.parse_args(argv)
        if not getattr(args, "command_module", None):
            parser.print_help()
            return EXIT_USAGE
        name = command_name(args)
        return _run_command(parser, args)
    except KeyboardInterrupt:
        # Also while the modules are still being imported (the first half
        # second of every command): one line, never a traceback.
        print(f"{name}: interrupted", file=sys.stderr)
        return EXIT_FAILED


def _run_command(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    try:
        config = Config.load(getattr(args, "config", None), overrides_from_args(parser, args),
                             required=args.command in CONFIG_REQUIRED)
    except ConfigError as exc:
        print(f"{command_name(args)}: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    module = importlib.import_module(f"ocd.commands.{args.command_module}")
    run: Callable[[argparse.Namespace, Config], int] = module.main
    try:
        return int(run(args, config) or 0)
    except SystemExit as exc:  # a command that ran the reactor (task.react) exits
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except ConfigError as exc:
        print(f"{command_name(args)}: configuration error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        # A file or folder a person named that cannot be used: say which, no traceback.
        where = f" {exc.filename}" if exc.filename else ""
        print(f"{command_name(args)}: cannot use{where}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_USAGE


def console_main() -> None:  # pragma: no cover - thin wrapper
    sys.exit(main())
