"""The user's "Run OCD" page, transcribed by hand: the CLI contract.

Source: the seed page of the project (its usage blocks, ``ocd X -h`` as the
user printed it). ``tests/test_cli_contract.py`` compares the real parser
with this table, so it is written from the seed, never from the parser.

For every command:

- ``usage``: the seed's usage line, verbatim (whitespace is normalised
  before comparing);
- ``options``: every optional argument as the seed's help lists it: the
  flags, what follows a flag in the usage (``""`` for a switch), the default
  as printed in ``(default: ...)``, the choices, and, for the options in a
  group "Override options in the [section] section", the section and the
  configuration option they override;
- ``positionals``: the names of the positional arguments, in order;
- ``groups``: the override group titles, verbatim.

Known, intentional differences from the seed (recorded in ``KNOWN``):
``-u/--event-urls`` connects (the seed's help text says "bind"), and its
group is ``[urls]`` (the seed's typo says ``[ulrs]``).

``docker_mysql up|down|info`` have no usage block on the seed page; the
seed's prose and the shots spec say that each action takes ``--config``
and ``-c/--container-name`` (``[docker_mysql] container_name``).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Opt:
    flags: tuple[str, ...]
    args: str = ""  # what follows the flag in the usage; "" for a switch
    default: str = "None"  # as printed by "(default: ...)"
    choices: tuple[str, ...] | None = None
    section: str | None = None  # override group: [section]
    option: str | None = None  # overridden option; default: long name, - -> _

    @property
    def long(self) -> str:
        return next(f for f in self.flags if f.startswith("--"))

    @property
    def config_option(self) -> str | None:
        if self.section is None:
            return None
        return self.option or self.long[2:].replace("-", "_")


@dataclass(frozen=True)
class Command:
    usage: str
    options: tuple[Opt, ...]
    positionals: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    subcommands: tuple[str, ...] = ()
    extra: dict = field(default_factory=dict)


HELP = Opt(("-h", "--help"), default="==SUPPRESS==")
VERSION = Opt(("-V", "--version"), default="==SUPPRESS==")
CONFIG = Opt(("--config",), "[CONFIG]")


def _title(section: str, dot: str = "") -> str:
    return f"Override options in the [{section}] section{dot}"


SEED: dict[tuple[str, ...], Command] = {
    (): Command(
        usage="usage: ocd [-h] [-V] COMMAND ...",
        options=(HELP, VERSION),
        subcommands=("run", "config", "run_shot", "allow_hetdex", "db_replay", "docker_mysql"),
    ),
    ("run",): Command(
        usage=(
            "usage: ocd run [-h] [--config [CONFIG]] [-u EVENT-URLS [EVENT-URLS ...]] "
            "[-t EXTRA-TOPICS [EXTRA-TOPICS ...]] [-a {yes,no}] "
            "[--n-ocd-main-loop N_OCD_MAIN_LOOP] [--n-ocd-run-shot N_OCD_RUN_SHOT]"
        ),
        options=(
            HELP,
            CONFIG,
            # The seed's title says [ulrs]: a typo (KNOWN).
            Opt(("-u", "--event-urls"), "EVENT-URLS [EVENT-URLS ...]", section="urls"),
            Opt(("-t", "--extra-topics"), "EXTRA-TOPICS [EXTRA-TOPICS ...]", section="topics"),
            Opt(("-a", "--auto-subscribe"), "{yes,no}", choices=("yes", "no"), section="topics"),
            Opt(("--n-ocd-main-loop",), "N_OCD_MAIN_LOOP", section="run"),
            Opt(("--n-ocd-run-shot",), "N_OCD_RUN_SHOT", section="run"),
        ),
        groups=(_title("urls"), _title("topics", "."), _title("run")),
    ),
    ("config",): Command(
        usage="usage: ocd config [-h] {copy,send} ...",
        options=(HELP,),
        subcommands=("copy", "send"),
    ),
    ("config", "copy"): Command(
        usage="usage: ocd config copy [-h] [-V] [-t TO_DIR] [-f] [-b]",
        options=(
            HELP,
            VERSION,
            Opt(("-t", "--to-dir"), "TO_DIR", default="."),
            Opt(("-f", "--force"), default="False"),
            Opt(("-b", "--backup"), default="False"),
        ),
    ),
    ("config", "send"): Command(
        usage=(
            "usage: ocd config send [-h] [-V] [--config [CONFIG]] [-n MAX_ATTEMPTS] "
            "[-I INTERVAL] [-o OCD_CONFIG [OCD_CONFIG ...]] "
            "[-i OCD_MAIN_LOOP [OCD_MAIN_LOOP ...]] [-N N_OCD_CONFIG] section option value"
        ),
        options=(
            HELP,
            VERSION,
            CONFIG,
            Opt(("-n", "--max-attempts"), "MAX_ATTEMPTS", default="5"),
            Opt(("-I", "--interval"), "INTERVAL", default="1"),
            Opt(("-o", "--ocd-config"), "OCD_CONFIG [OCD_CONFIG ...]", section="urls"),
            Opt(("-i", "--ocd-main-loop"), "OCD_MAIN_LOOP [OCD_MAIN_LOOP ...]", section="urls"),
            # "unless otherwise stated": the long name differs from the option.
            Opt(("-N", "--n-ocd-config-hetdex"), "N_OCD_CONFIG", section="config",
                option="n_ocd_config"),
        ),
        positionals=("section", "option", "value"),
        groups=(_title("urls"), _title("config")),
    ),
    ("run_shot",): Command(
        usage=(
            "usage: ocd run_shot [-h] [--config [CONFIG]] [-e] [-c] [-t TIMEOUT] [-m METADATA] "
            "[-d {yes,no}] [-w {yes,no}] [-N N_OCD_RUN_SHOT] [--shuffle-shot SHUFFLE_SHOT] "
            "[--shuffle-conf-template SHUFFLE_CONF_TEMPLATE] [--acam-dest-file ACAM_DEST_FILE] "
            "[--ocd-run-shot OCD_RUN_SHOT [OCD_RUN_SHOT ...]] "
            "shotid obs_number ra dec azimuth {0,1} exp01 exp02 exp03"
        ),
        options=(
            HELP,
            CONFIG,
            Opt(("-e", "--emit-events"), default="False"),
            Opt(("-c", "--wait-for-connection"), default="False"),
            Opt(("-t", "--timeout"), "TIMEOUT", default="10"),
            Opt(("-m", "--metadata"), "METADATA"),
            Opt(("-d", "--dither-with-probes"), "{yes,no}", choices=("yes", "no"),
                section="run_shot"),
            Opt(("-w", "--wait-last-write"), "{yes,no}", choices=("yes", "no"),
                section="run_shot"),
            Opt(("-N", "--n-ocd-run-shot"), "N_OCD_RUN_SHOT", section="run_shot"),
            Opt(("--shuffle-shot",), "SHUFFLE_SHOT", section="paths"),
            Opt(("--shuffle-conf-template",), "SHUFFLE_CONF_TEMPLATE", section="paths"),
            Opt(("--acam-dest-file",), "ACAM_DEST_FILE", section="paths"),
            Opt(("--ocd-run-shot",), "OCD_RUN_SHOT [OCD_RUN_SHOT ...]", section="urls"),
        ),
        positionals=("shotid", "obs_number", "ra", "dec", "azimuth", "{0,1}",
                     "exp01", "exp02", "exp03"),
        groups=(_title("run_shot"), _title("paths", "."), _title("urls")),
    ),
    ("allow_hetdex",): Command(
        usage=(
            "usage: ocd allow_hetdex [-h] [--config [CONFIG]] [-n MAX_ATTEMPTS] [-I INTERVAL] "
            "[-o OCD_ALLOW_HETDEX [OCD_ALLOW_HETDEX ...]] "
            "[-i OCD_MAIN_LOOP [OCD_MAIN_LOOP ...]] [-N N_OCD_ALLOW_HETDEX] {start,stop}"
        ),
        options=(
            HELP,
            CONFIG,
            Opt(("-n", "--max-attempts"), "MAX_ATTEMPTS", default="5"),
            Opt(("-I", "--interval"), "INTERVAL", default="1"),
            Opt(("-o", "--ocd-allow-hetdex"), "OCD_ALLOW_HETDEX [OCD_ALLOW_HETDEX ...]",
                section="urls"),
            Opt(("-i", "--ocd-main-loop"), "OCD_MAIN_LOOP [OCD_MAIN_LOOP ...]", section="urls"),
            Opt(("-N", "--n-ocd-allow-hetdex"), "N_OCD_ALLOW_HETDEX", section="allow_hetdex"),
        ),
        positionals=("{start,stop}",),
        groups=(_title("urls"), _title("allow_hetdex")),
        extra={"positional_choices": {"{start,stop}": ("start", "stop")}},
    ),
    ("db_replay",): Command(
        usage=(
            "usage: ocd db_replay [-h] [--config [CONFIG]] [--serve-forever] [-t TIMEOUT] "
            "[-s SPEEDUP] [-T TOPICS [TOPICS ...]] [-S {none,__data_time,__wire_time}] "
            "[--no-convert-number] [--no-convert-bool] "
            "[--ocd-db-replay OCD_DB_REPLAY [OCD_DB_REPLAY ...]] db_name"
        ),
        options=(
            HELP,
            CONFIG,
            Opt(("--serve-forever",), default="False"),
            Opt(("-t", "--timeout"), "TIMEOUT", default="10"),
            Opt(("-s", "--speedup"), "SPEEDUP", default="1.0"),
            Opt(("-T", "--topics"), "TOPICS [TOPICS ...]"),
            Opt(("-S", "--sort-by"), "{none,__data_time,__wire_time}", default="__wire_time",
                choices=("none", "__data_time", "__wire_time")),
            # In the seed's usage line but not in its option list: switches.
            Opt(("--no-convert-number",), default="False"),
            Opt(("--no-convert-bool",), default="False"),
            Opt(("--ocd-db-replay",), "OCD_DB_REPLAY [OCD_DB_REPLAY ...]", section="urls"),
        ),
        positionals=("db_name",),
        groups=(_title("urls"),),
    ),
    ("docker_mysql",): Command(
        usage="usage: ocd docker_mysql [-h] {up,down,info} ...",
        options=(HELP,),
        subcommands=("up", "down", "info"),
        extra={"subcommand_title": "Docker-mysql subcommands"},
    ),
}

for _action in ("up", "down", "info"):
    SEED[("docker_mysql", _action)] = Command(
        usage=f"usage: ocd docker_mysql {_action} [-h] [--config [CONFIG]] [-c CONTAINER_NAME]",
        options=(
            HELP,
            CONFIG,
            Opt(("-c", "--container-name"), "CONTAINER_NAME", section="docker_mysql"),
        ),
        groups=(_title("docker_mysql"),),
    )

#: Where the real parser departs from the seed on purpose (see events.md 1).
KNOWN = {
    "ulrs": "the seed's group title for -u/--event-urls says [ulrs]: a typo for [urls]",
    "-u bind": "the seed's help of -u/--event-urls says bind: ocd run connects",
}

#: Options of our own beyond the seed (listed in docs/run_ocd.rst's
#: differences): for each command, the usage fragment they follow and the
#: options, as the seed would have printed them.
ADDED: dict[tuple[str, ...], tuple[str, tuple[Opt, ...]]] = {
    ("run_shot",): (
        "[--ocd-run-shot OCD_RUN_SHOT [OCD_RUN_SHOT ...]]",
        (Opt(("--force",), default="False"),),
    ),
}


def expected_usage(path: tuple[str, ...]) -> str:
    """The seed's usage line with our own options inserted where argparse puts them."""
    usage = SEED[path].usage
    if path in ADDED:
        after, options = ADDED[path]
        assert after in usage, (path, after)
        flags = " ".join(f"[{o.flags[0]}{' ' + o.args if o.args else ''}]" for o in options)
        usage = usage.replace(after, f"{after} {flags}", 1)
    return usage


def expected_options(path: tuple[str, ...]) -> tuple[Opt, ...]:
    return SEED[path].options + (ADDED[path][1] if path in ADDED else ())


#: Subcommands of our own, beyond the seed page (docs/run_ocd.rst lists them
#: under "Commands of our own" and in its differences). Same contract as the
#: seed's: their usage and options only change on purpose.
OWN: dict[tuple[str, ...], Command] = {
    # issue 11: what the running OCD does, from a terminal (exit 0/1/3).
    ("status",): Command(
        usage="usage: ocd status [-h] [--config [CONFIG]] [-t TIMEOUT] [--json] [-e ENDPOINT]",
        options=(
            HELP,
            CONFIG,
            Opt(("-t", "--timeout"), "TIMEOUT", default="5"),
            Opt(("--json",), default="False"),
            Opt(("-e", "--endpoint"), "ENDPOINT", section="status"),
        ),
        groups=(_title("status"),),
    ),
    # issue 11: the night report from the night log (docs/operations.md).
    ("night_report",): Command(
        usage="usage: ocd night_report [-h] [--config [CONFIG]] [-l NIGHT_LOG] [-o FILE.png] "
              "[date]",
        options=(
            HELP,
            CONFIG,
            Opt(("-l", "--night-log"), "NIGHT_LOG"),
            Opt(("-o", "--output"), "FILE.png"),
        ),
        positionals=("date",),
    ),
    # issue 13: tonight's plan on a clear night (docs/operations.md).
    ("plan",): Command(
        usage="usage: ocd plan [-h] [--config [CONFIG]] [-o FILE.png] [--json] [date]",
        options=(
            HELP,
            CONFIG,
            Opt(("-o", "--output"), "FILE.png"),
            Opt(("--json",), default="False"),
        ),
        positionals=("date",),
    ),
    # CurveZMQ key pairs for [security] (events.md 3.7, docs/curve.md).
    ("keys",): Command(
        usage="usage: ocd keys [-h] [--for {ocd,client}] [-o FILE]",
        options=(
            HELP,
            Opt(("--for",), "{ocd,client}", default="client", choices=("ocd", "client")),
            Opt(("-o", "--output"), "FILE"),
        ),
    ),
}
