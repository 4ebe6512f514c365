"""Fixtures of the fault scenarios (helpers live in ``faults_helpers``)."""

from __future__ import annotations

import subprocess
import uuid

import pytest

from faults_helpers import TinyFs, mount_tmpfs


@pytest.fixture
def tiny_fs(tmp_path):
    """A 256 KiB tmpfs under ``tmp_path`` (or a plain folder: ``real`` False)."""
    path = tmp_path / f"tiny-{uuid.uuid4().hex[:6]}"
    path.mkdir()
    real = mount_tmpfs(path, "256k")
    if not real:
        print("tiny_fs: cannot mount a tmpfs here; the test fakes a full disk at the "
              "sqlite3 layer instead")
    yield TinyFs(path, real)
    if real:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


