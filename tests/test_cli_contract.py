"""The command line against the user's seed page (``tests/seed_usage.py``).

The seed's usage blocks are the acceptance test of the CLI: for every
subcommand the real parser must offer exactly the seed's options (flags,
arguments, nargs, choices, defaults, positional names and order) and the
seed's override groups, each of which maps its options onto configuration
options that exist in the master file.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from ocd import __version__
from ocd.cli import build_parser, main, overrides_from_args, subcommand_parser
from ocd.config import Config
from seed_usage import KNOWN, OWN, SEED, expected_options, expected_usage

PATHS = sorted(SEED, key=len)
IDS = [" ".join(p) or "ocd" for p in PATHS]
TITLE = re.compile(r"^Override options in the \[(?P<section>\w+)\] section\.?$")


def _squash(text: str) -> str:
    return " ".join(text.split())


def _usage(parser: argparse.ArgumentParser) -> str:
    formatter = parser.formatter_class(prog=parser.prog, width=100_000)
    formatter.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups)
    return _squash(formatter.format_help())


def _args(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    """What follows the flag in the usage: ``EVENT-URLS [EVENT-URLS ...]``."""
    if action.nargs == 0:
        return ""
    formatter = parser._get_formatter()
    return formatter._format_args(action, formatter._get_default_metavar_for_optional(action))


def _group_of(parser: argparse.ArgumentParser) -> dict[int, str]:
    return {
        id(action): group.title
        for group in parser._action_groups
        for action in group._group_actions
    }


def _optionals(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if a.option_strings]


def _positionals(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [
        a for a in parser._actions
        if not a.option_strings and not isinstance(a, argparse._SubParsersAction)
    ]


def _subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction | None:
    return next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)


@pytest.mark.parametrize("path", PATHS, ids=IDS)
def test_usage_line_is_the_seeds(path):
    assert _usage(subcommand_parser(path)) == _squash(expected_usage(path))


@pytest.mark.parametrize("path", PATHS, ids=IDS)
def test_options_are_the_seeds(path):
    parser = subcommand_parser(path)
    real = {
        tuple(a.option_strings): (
            _args(parser, a),
            str(a.default),
            tuple(str(c) for c in a.choices) if a.choices else None,
        )
        for a in _optionals(parser)
    }
    seed = {o.flags: (o.args, o.default, o.choices) for o in expected_options(path)}
    assert real == seed


@pytest.mark.parametrize("path", PATHS, ids=IDS)
def test_nargs_follow_the_seed(path):
    """``X [X ...]`` is nargs '+', ``[X]`` is '?', a switch takes nothing."""
    parser = subcommand_parser(path)
    by_flags = {tuple(a.option_strings): a for a in _optionals(parser)}
    for opt in expected_options(path):
        action = by_flags[opt.flags]
        if opt.args.endswith("...]"):
            assert action.nargs == "+", opt.flags
        elif opt.args.startswith("["):
            assert action.nargs == "?", opt.flags
        elif opt.args == "":
            assert action.nargs == 0, opt.flags
        else:
            assert action.nargs is None, opt.flags


@pytest.mark.parametrize("path", PATHS, ids=IDS)
def test_positionals_in_the_seeds_order(path):
    parser = subcommand_parser(path)
    formatter = parser._get_formatter()
    names = tuple(formatter._format_args(a, a.dest) for a in _positionals(parser))
    assert names == SEED[path].positionals
    choices = SEED[path].extra.get("positional_choices", {})
    for action in _positionals(parser):
        shown = formatter._format_args(action, action.dest)
        if shown in choices:
            assert tuple(action.choices) == choices[shown]


def test_run_shot_track_is_0_or_1():
    parser = subcommand_parser(["run_shot"])
    track = _positionals(parser)[5]
    assert list(track.choices) == [0, 1]
    args = build_parser().parse_args(
        ["run_shot", "DEX1", "7", "1.5", "50", "180", "1", "360", "360", "360"]
    )
    assert (args.track, args.obs_number, args.exp03) == (1, 7, 360.0)


@pytest.mark.parametrize("path", PATHS, ids=IDS)
def test_subcommands_of_the_seed(path):
    expected = SEED[path].subcommands
    parser = subcommand_parser(path)
    sub = _subparsers(parser)
    if not expected:
        assert sub is None
        return
    names = list(sub.choices)
    # Our own extra subcommands (sample_night, ...) may follow the seed's.
    assert names[: len(expected)] == list(expected)
    title = SEED[path].extra.get("subcommand_title")
    if title:
        group = _group_of(parser)[id(sub)]
        assert group == title


@pytest.mark.parametrize("path", PATHS, ids=IDS)
def test_override_groups_map_onto_configuration_options(path):
    parser = subcommand_parser(path)
    groups = _group_of(parser)
    by_flags = {tuple(a.option_strings): a for a in _optionals(parser)}
    titles = [g.title for g in parser._action_groups if TITLE.match(g.title or "")]
    assert titles == list(SEED[path].groups)
    for opt in expected_options(path):
        action = by_flags[opt.flags]
        target = getattr(action, "ocd_override", None)
        if opt.section is None:
            assert target is None, opt.flags
            assert not TITLE.match(groups[id(action)] or ""), opt.flags
            continue
        match = TITLE.match(groups[id(action)])
        assert match and match["section"] == opt.section, (opt.flags, groups[id(action)])
        assert target == (opt.section, opt.config_option), opt.flags


def _all_parsers(parser=None, path=()):
    parser = parser or build_parser()
    yield path, parser
    sub = _subparsers(parser)
    if sub is not None:
        for name, child in sub.choices.items():
            yield from _all_parsers(child, path + (name,))


def test_every_override_hits_an_existing_option():
    """Also our own subcommands: an override never names a missing option."""
    config = Config()
    seen = 0
    for path, parser in _all_parsers():
        for action in parser._actions:
            target = getattr(action, "ocd_override", None)
            if target is not None:
                seen += 1
                assert config.has_option(*target), (path, action.option_strings, target)
    assert seen >= 20


def test_known_differences_from_the_seed():
    assert set(KNOWN) == {"ulrs", "-u bind"}
    parser = subcommand_parser(["run"])
    event_urls = next(a for a in parser._actions if "-u" in a.option_strings)
    assert "connect" in event_urls.help and "bind to" not in event_urls.help
    for _, sub in _all_parsers():
        assert all("[ulrs]" not in (g.title or "") for g in sub._action_groups)


def test_each_config_help_says_what_a_missing_file_does():
    """``ocd run`` refuses a named file that is missing (exit 2), the others skip
    it with a warning; each help says its own (run's said "skipped")."""
    for path, sub in _all_parsers():
        option = next((a for a in sub._actions if "--config" in a.option_strings), None)
        if option is None:
            continue
        if path == ("run",):
            assert "does not exist is an error (exit 2)" in option.help
            assert "Non existing files are skipped" not in option.help
        else:
            assert "Non existing files are skipped" in option.help, path


@pytest.mark.parametrize("path", PATHS, ids=IDS)
def test_help_exits_0(path, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*path, "-h"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert _squash(out).startswith(f"usage: {' '.join(['ocd', *path])}")


@pytest.mark.parametrize("path", [(), ("config", "copy"), ("config", "send")], ids=str)
def test_version(path, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*path, "-V"])
    assert exc.value.code == 0
    assert __version__ in capsys.readouterr().out


def test_overrides_from_the_command_line():
    parser = build_parser()
    args = parser.parse_args(
        ["run", "-u", "tcp://127.0.0.1:1", "tcp://127.0.0.1:2", "-a", "no",
         "--n-ocd-main-loop", "1"]
    )
    assert sorted(overrides_from_args(parser, args)) == [
        ("run", "n_ocd_main_loop", "1"),
        ("topics", "auto_subscribe", "no"),
        ("urls", "event_urls", "tcp://127.0.0.1:1 tcp://127.0.0.1:2"),
    ]
    config = Config.load(None, overrides_from_args(parser, args))
    assert config.get_urls("urls", "event_urls") == ["tcp://127.0.0.1:1", "tcp://127.0.0.1:2"]
    assert config.get_bool("topics", "auto_subscribe") is False
    assert config.origin("run", "n_ocd_main_loop") == "command line"


def test_option_named_otherwise_maps_to_its_option():
    parser = build_parser()
    args = parser.parse_args(["config", "send", "-N", "2", "decision", "max_wind", "12"])
    assert overrides_from_args(parser, args) == [("config", "n_ocd_config", "2")]
    # the positionals are the update, not overrides
    assert (args.section, args.option, args.value) == ("decision", "max_wind", "12")


def test_unused_overrides_are_not_applied():
    parser = build_parser()
    args = parser.parse_args(["db_replay", "night.db"])
    assert overrides_from_args(parser, args) == []


def test_run_ocd_page_shows_every_subcommand_from_the_parser():
    """docs/run_ocd.rst generates each usage block; none is copied by hand."""
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "docs" / "run_ocd.rst").read_text()
    shown = set(re.findall(r"^\.\. ocd-usage:: (.+?)\s*$", text, re.M))
    for path in SEED:
        if path and path != ("config",):
            assert " ".join(path) in shown
    assert "usage: ocd" not in text


OWN_PATHS = sorted(OWN)


@pytest.mark.parametrize("path", OWN_PATHS, ids=[" ".join(p) for p in OWN_PATHS])
def test_our_own_subcommands_keep_their_contract(path):
    """Usage, options, defaults and override groups of ``OWN`` (not on the seed page)."""
    parser = subcommand_parser(path)
    command = OWN[path]
    assert _usage(parser) == _squash(command.usage)
    real = {tuple(a.option_strings): (_args(parser, a), str(a.default)) for a in _optionals(parser)}
    assert real == {o.flags: (o.args, o.default) for o in command.options}
    titles = [g.title for g in parser._action_groups if TITLE.match(g.title or "")]
    assert titles == list(command.groups)
    by_flags = {tuple(a.option_strings): a for a in _optionals(parser)}
    for opt in command.options:
        target = getattr(by_flags[opt.flags], "ocd_override", None)
        assert target == (None if opt.section is None else (opt.section, opt.config_option))


def test_our_own_subcommands_are_in_the_docs_and_their_differences():
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "docs" / "run_ocd.rst").read_text()
    differences = text.split("Differences from the original page", 1)[1]
    for path in OWN:
        assert f".. ocd-usage:: {' '.join(path)}" in text
        assert f"ocd {' '.join(path)}" in differences
