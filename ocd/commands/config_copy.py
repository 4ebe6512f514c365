"""``ocd config copy``: put the master configuration where a person can edit it."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from ocd.config import MASTER_NAME, Config, master_path


def backup_name(path: Path) -> Path:
    """A free name for the old file: ``ocd.cfg.bak``, then ``ocd.cfg.bak.1``..."""
    candidate = path.with_name(path.name + ".bak")
    n = 1
    while candidate.exists():
        candidate = path.with_name(f"{path.name}.bak.{n}")
        n += 1
    return candidate


def main(args: argparse.Namespace, config: Config) -> int:
    to_dir = Path(args.to_dir)
    if not to_dir.is_dir():
        print(f"ocd config copy: {str(to_dir)!r} is not a directory", file=sys.stderr)
        return 2
    target = to_dir / MASTER_NAME
    if target.exists():
        if args.backup:
            saved = backup_name(target)
            target.rename(saved)
            print(f"kept the old {target} as {saved}")
        elif not args.force:
            print(
                f"ocd config copy: {target} exists; use -f/--force to overwrite it "
                "or -b/--backup to keep a copy",
                file=sys.stderr,
            )
            return 1
    try:
        shutil.copyfile(master_path(), target)
    except OSError as exc:
        print(f"ocd config copy: cannot write {target.absolute()}: {exc.strerror or exc}; give "
              "with -t/--to-dir a folder you can write to", file=sys.stderr)
        return 2
    print(f"copied the master configuration to {target}")
    return 0
