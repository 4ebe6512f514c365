"""``ocd config copy``: the master configuration where a person can edit it."""

from __future__ import annotations

import pytest

from ocd.cli import main
from ocd.config import Config, master_text

OLD = "[decision]\nmax_wind = 3\n"


def copy(*argv: str) -> int:
    return main(["config", "copy", *argv])


def test_copies_the_master(tmp_path, capsys):
    assert copy("-t", str(tmp_path)) == 0
    target = tmp_path / "ocd.cfg"
    assert target.read_text(encoding="utf-8") == master_text()
    assert str(target) in capsys.readouterr().out
    # the copy is a valid site configuration
    assert Config.load(str(target)).files_read == [str(target)]


def test_default_is_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert copy() == 0
    assert (tmp_path / "ocd.cfg").read_text(encoding="utf-8") == master_text()


def test_refuses_to_overwrite_without_force(tmp_path, capsys):
    target = tmp_path / "ocd.cfg"
    target.write_text(OLD, encoding="utf-8")
    assert copy("--to-dir", str(tmp_path)) == 1
    err = capsys.readouterr().err
    assert str(target) in err and "exists" in err and "-f/--force" in err
    assert target.read_text(encoding="utf-8") == OLD
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ocd.cfg"]


@pytest.mark.parametrize("flag", ["-f", "--force"])
def test_force_overwrites(tmp_path, flag):
    target = tmp_path / "ocd.cfg"
    target.write_text(OLD, encoding="utf-8")
    assert copy("-t", str(tmp_path), flag) == 0
    assert target.read_text(encoding="utf-8") == master_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ocd.cfg"]


@pytest.mark.parametrize("extra", [[], ["-f"]], ids=["backup", "backup-ignores-force"])
def test_backup_keeps_the_old_file(tmp_path, capsys, extra):
    target = tmp_path / "ocd.cfg"
    target.write_text(OLD, encoding="utf-8")
    assert copy("-t", str(tmp_path), "-b", *extra) == 0
    assert target.read_text(encoding="utf-8") == master_text()
    saved = tmp_path / "ocd.cfg.bak"
    assert saved.read_text(encoding="utf-8") == OLD
    assert str(saved) in capsys.readouterr().out


def test_backups_never_overwrite_each_other(tmp_path):
    target = tmp_path / "ocd.cfg"
    for n in range(3):
        target.write_text(f"# version {n}\n", encoding="utf-8")
        assert copy("-t", str(tmp_path), "--backup") == 0
    assert (tmp_path / "ocd.cfg.bak").read_text() == "# version 0\n"
    assert (tmp_path / "ocd.cfg.bak.1").read_text() == "# version 1\n"
    assert (tmp_path / "ocd.cfg.bak.2").read_text() == "# version 2\n"


def test_backup_without_an_old_file_just_copies(tmp_path):
    assert copy("-t", str(tmp_path), "-b") == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ocd.cfg"]


def test_missing_to_dir_is_an_input_error(tmp_path, capsys):
    missing = tmp_path / "nowhere"
    assert copy("-t", str(missing)) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "not a directory" in err
    assert not missing.exists()
