"""``ocd docker_mysql up|down|info``: a throwaway MySQL server in Docker.

The work is in :mod:`ocd.docker_mysql`; this maps its failures to exit
statuses: 2 without the Docker SDK (or with a bad setting), 1 when the
engine or the server fails, 0 otherwise. It runs synchronously, with no
reactor: every SDK and database call blocks, and nothing else runs here.
"""

from __future__ import annotations

import argparse
import sys

from ocd import docker_mysql
from ocd.config import Config


def main(args: argparse.Namespace, config: Config) -> int:
    action = args.docker_action
    prefix = f"ocd docker_mysql {action}"
    try:
        settings = docker_mysql.Settings.from_config(config)
        sdk = docker_mysql.load_sdk()
        client = docker_mysql.connect(sdk)
        try:
            return docker_mysql.ACTIONS[action](sdk, client, settings, _say)
        except sdk.errors.DockerException as exc:
            raise docker_mysql.DockerMysqlError(f"the Docker engine refused: {exc}") from exc
        finally:
            client.close()
    except docker_mysql.DockerMysqlError as exc:
        print(f"{prefix}: {exc}", file=sys.stderr)
        return exc.exit_status


def _say(text: str) -> None:
    print(text, flush=True)
