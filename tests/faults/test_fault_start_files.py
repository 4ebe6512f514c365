"""Faults in the files OCD reads at start (issue 12, section 5).

A command template with an unknown placeholder used to fail every shot in
the middle of the night; a shot id such as ``../../etc/x`` went into file
names and command lines. Both are refused up front, naming where.
"""

from __future__ import annotations

import subprocess

import pytest

from faults_helpers import REPO
from ocd.core.shots import ShotListError, parse_shot_text

GOOD = ("DEX00001 12.401733 56.1464 2 1 1 -1 89 HET18-2-100 HS0015_E 000 10:55:31.00 "
        "+51:07:40.44 2000 0.0 0.0 2000")


@pytest.mark.parametrize("shotid", ["../../etc/x", "a/b", ".hidden", "-rf", "x;reboot", "ab'c"])
def test_a_shot_id_that_is_not_a_plain_name_is_rejected(shotid):
    text = "# header\n" + GOOD.replace("DEX00001", shotid, 1) + "\n"
    with pytest.raises(ShotListError) as caught:
        parse_shot_text(text, "night.txt")
    error = caught.value
    assert (error.name, error.line, error.column) == ("night.txt", 2, 1)
    assert str(error).startswith("night.txt, line 2, column 1 (shotid")
    assert "not a plain name" in str(error)


def test_plain_names_still_pass():
    for shotid in ("DEX00001", "dex_1.2", "20250220v021", "A+B-c"):
        assert parse_shot_text(GOOD.replace("DEX00001", shotid, 1))[0].shotid == shotid


@pytest.mark.integration
@pytest.mark.parametrize("option, template", [
    ("dither_command", "hetdex-dither.py --exptime {seconds} --id {nosuch}"),
    ("syscmd_command", "syscmd {switch} {command} {nosuch}"),
])
def test_unknown_placeholder_is_a_configuration_error_at_start(
        tmp_path, ocd_command, child_env, option, template):
    cfg = tmp_path / "site.cfg"
    cfg.write_text(f"[run_shot]\n{option} = {template}\n[shots]\n"
                   f"state_db = {tmp_path / 'state.sqlite'}\n")
    run = subprocess.run(ocd_command + ["run", "--config", str(cfg)], env=child_env,
                         cwd=REPO, capture_output=True, text=True, timeout=60)
    assert run.returncode == 2, run.stderr
    assert f"[run_shot] {option}" in run.stderr
    assert "unknown placeholder {nosuch}" in run.stderr
    assert "Traceback" not in run.stderr
