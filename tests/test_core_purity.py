"""ocd.core is pure: importing any of it pulls in no reactor, socket or database.

Each module is imported in a fresh interpreter, so what another test (or
another core module) imported first cannot hide a dependency.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import pytest

import ocd.core

FORBIDDEN = ("twisted.internet", "zmq", "txzmq", "sqlite3", "pymysql", "docker")

CORE_MODULES = sorted(
    f"ocd.core.{info.name}" for info in pkgutil.iter_modules(ocd.core.__path__)
)

PROBE = """
import importlib, json, sys
importlib.import_module(sys.argv[1])
forbidden = json.loads(sys.argv[2])
print(json.dumps(sorted(name for name in sys.modules
                        if any(name == f or name.startswith(f + ".") for f in forbidden))))
"""


def test_the_core_has_the_modules_of_the_layout():
    expected = {"events", "state", "decide", "scheduler", "shots", "clock", "machines",
                "alerts", "shot_tracker"}
    assert expected <= {name.rsplit(".", 1)[1] for name in CORE_MODULES}


@pytest.mark.parametrize("module", CORE_MODULES)
def test_core_module_imports_no_io(module):
    result = subprocess.run(
        [sys.executable, "-c", PROBE, module, json.dumps(FORBIDDEN)],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.strip().splitlines()[-1]) == [], (
        f"{module} imports I/O modules")


def test_the_probe_sees_a_forbidden_import():
    """The check can fail: a module that imports the reactor is caught."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE, "twisted.internet.task", json.dumps(FORBIDDEN)],
        capture_output=True, text=True, timeout=120,
    )
    assert "twisted.internet" in json.loads(result.stdout.strip().splitlines()[-1])
