"""``ocd docker_mysql``: the whole cycle against the fake Docker engine.

There is no Docker engine here, so ``ocd.sim.fake_docker`` serves the Engine
API on a unix socket (``DOCKER_HOST``); its container reports host port 3306,
where the real MariaDB listens, so ``up`` really creates the table there.
"""

from __future__ import annotations

import contextlib
import io
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

import pymysql
import pytest

from conftest import NO_TLS
from ocd import docker_mysql
from ocd.config import Config
from ocd.sim.fake_docker import FakeDockerEngine

MARIADB_PORT = 3306


def mariadb(database: str | None = None) -> pymysql.connections.Connection:
    return pymysql.connect(host="127.0.0.1", port=MARIADB_PORT, user="root", password="",
                           database=database, autocommit=True, connect_timeout=5, **NO_TLS)


@pytest.fixture
def socket_dir():
    """A short directory: unix socket paths are limited to about 100 bytes."""
    path = tempfile.mkdtemp(prefix="ocd-fd-", dir="/tmp")
    yield Path(path)
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def engine(socket_dir):
    engine = FakeDockerEngine(str(socket_dir / "docker.sock"), publish_port=MARIADB_PORT).start()
    yield engine
    engine.stop()


@pytest.fixture
def test_database():
    name = f"ocd_dm_{uuid.uuid4().hex[:12]}"
    yield name
    try:
        with mariadb() as conn, conn.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
    except pymysql.err.OperationalError:
        pass


@pytest.fixture
def config_file(tmp_path, test_database):
    """``[docker_mysql]`` for the real MariaDB: root, empty password, own database.

    The port asked for is not 3306: ``up`` must use the one the engine reports.
    """
    path = tmp_path / "ocd.cfg"
    path.write_text(
        "[docker_mysql]\n"
        "container_name = ocd_mysql_test\n"
        "port = 45999\n"
        "user = root\n"
        "password =\n"
        f"database = {test_database}\n"
        "start_timeout = 10\n"
        "[database]\n"
        "first_obsnum = 100\n"
    )
    return path


@pytest.fixture
def run(ocd_command, child_env, config_file, engine, monkeypatch):
    """Run ``ocd docker_mysql ACTION`` against the fake engine.

    In this process (the command is synchronous: no reactor, only prints),
    or as a child process like a user runs it with ``child=True``; each
    child costs half a second of CPU for its imports, in-process calls
    almost nothing once the SDK is imported.
    """
    def run(action: str, *extra: str, env_update: dict[str, str] | None = None,
            child: bool = False) -> subprocess.CompletedProcess:
        env_update = {"DOCKER_HOST": engine.url, **(env_update or {})}
        argv = ["docker_mysql", action, "--config", str(config_file), *extra]
        if child:
            return subprocess.run([*ocd_command, *argv], env={**child_env, **env_update},
                                  capture_output=True, text=True, timeout=60)
        from ocd.cli import main

        out, err = io.StringIO(), io.StringIO()
        with monkeypatch.context() as env:
            for name, value in env_update.items():
                env.setenv(name, value)
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                code = main(argv)
        return subprocess.CompletedProcess(argv, code, out.getvalue(), err.getvalue())
    return run


def rows(database: str, table: str = "vl_obsnum") -> list[tuple]:
    with mariadb(database) as conn, conn.cursor() as cursor:
        cursor.execute(f"SELECT obsnum, shotid FROM `{table}`")
        return list(cursor.fetchall())


@pytest.mark.integration
@pytest.mark.mysql
def test_up_up_info_down_down(run, engine, test_database):
    first = run("up", child=True)  # the command as a user runs it
    assert first.returncode == 0, first.stderr
    assert engine.pulls == ["mysql:8.0"]
    assert "port = 3306" in first.stdout and "backend = mysql" in first.stdout
    assert f"database = {test_database}" in first.stdout
    assert rows(test_database) == [(100, None)]
    (container,) = engine.containers.values()
    assert container["Name"] == "/ocd_mysql_test" and container["State"]["Running"]
    env = dict(item.split("=", 1) for item in container["Config"]["Env"])
    assert env["MYSQL_DATABASE"] == test_database and "MYSQL_ROOT_PASSWORD" in env
    assert "MYSQL_USER" not in env  # the image refuses MYSQL_USER=root
    assert container["HostConfig"]["PortBindings"]["3306/tcp"][0]["HostPort"] == "45999"

    again = run("up")
    assert again.returncode == 0, again.stderr
    assert "reusing" in again.stdout
    assert len(engine.containers) == 1 and engine.pulls == ["mysql:8.0"]
    assert rows(test_database) == [(100, None)]

    info = run("info")
    assert info.returncode == 0, info.stderr
    for line in ("name: ocd_mysql_test", "image: mysql:8.0", "state: running",
                 "ports: 0.0.0.0:3306->3306/tcp", "database answers: yes"):
        assert line in info.stdout

    down = run("down")
    assert down.returncode == 0, down.stderr
    assert engine.containers == {} and engine.volumes == set()

    gone = run("down")
    assert gone.returncode == 0, gone.stderr
    assert "does not exist" in gone.stdout


@pytest.mark.integration
def test_container_name_option_and_info_of_missing(run, engine):
    result = run("info", "-c", "no_such_box")
    assert result.returncode == 0, result.stderr
    assert "container no_such_box does not exist" in result.stdout


@pytest.mark.integration
def test_without_the_sdk_says_install_the_extra(ocd_command, child_env, config_file):
    shim = ("import sys; sys.modules['docker'] = None; from ocd.cli import main; "
            f"sys.exit(main(['docker_mysql', 'up', '--config', {str(config_file)!r}]))")
    result = subprocess.run([ocd_command[0], "-c", shim], env=child_env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "ocd[docker]" in result.stderr


@pytest.mark.integration
def test_without_an_engine_fails_clearly(run, socket_dir):
    missing = f"unix://{socket_dir / 'missing.sock'}"
    result = run("up", env_update={"DOCKER_HOST": missing})
    assert result.returncode == 1
    assert "cannot reach the Docker engine" in result.stderr


# -- in process: the parts a child process would make slow ---------------

def settings_from(config_file: Path, **overrides: str) -> docker_mysql.Settings:
    config = Config.load(str(config_file), [("docker_mysql", k, v) for k, v in overrides.items()])
    return docker_mysql.Settings.from_config(config)


@pytest.mark.integration
@pytest.mark.mysql
def test_up_restarts_a_stopped_container_and_keeps_rows(engine, config_file, test_database):
    sdk = docker_mysql.load_sdk()
    client = sdk.DockerClient(base_url=engine.url)
    settings = settings_from(config_file)
    said: list[str] = []
    engine._add_image("mysql:8.0")
    assert docker_mysql.up(sdk, client, settings, said.append) == 0
    assert engine.pulls == []  # present images are not pulled
    client.containers.get(settings.container_name).stop()
    assert docker_mysql.up(sdk, client, settings, said.append) == 0
    assert any("exists (exited): starting it" in line for line in said)
    assert client.containers.get(settings.container_name).status == "running"
    assert rows(test_database) == [(100, None)]
    client.close()


@pytest.mark.integration
def test_up_gives_up_on_a_port_that_accepts_but_never_answers(socket_dir, config_file):
    """A published port accepts TCP before the server inside is ready."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        engine = FakeDockerEngine(str(socket_dir / "d.sock"), publish_port=silent.getsockname()[1],
                                  images=("mysql:8.0",)).start()
        try:
            sdk = docker_mysql.load_sdk()
            client = sdk.DockerClient(base_url=engine.url)
            settings = settings_from(config_file, start_timeout="0.6")
            with pytest.raises(docker_mysql.DockerMysqlError, match="did not accept a login"):
                docker_mysql.up(sdk, client, settings, lambda text: None)
            client.close()
        finally:
            engine.stop()


def test_wait_ready_is_bounded_by_start_timeout(config_file):
    now = [0.0]
    attempts: list[float] = []

    def attempt(host, port, settings, timeout):
        attempts.append(timeout)
        now[0] += timeout / 2
        raise ConnectionRefusedError("refused")

    settings = settings_from(config_file, start_timeout="3")
    with pytest.raises(docker_mysql.DockerMysqlError, match=r"within start_timeout = 3 s .*refused"):
        docker_mysql.wait_ready("127.0.0.1", 1, settings, clock=lambda: now[0],
                                sleep=lambda s: now.__setitem__(0, now[0] + s), attempt=attempt)
    assert now[0] == pytest.approx(3.0) and all(t <= 3 for t in attempts) and len(attempts) >= 2


def test_wait_ready_returns_the_first_good_login(config_file):
    now = [0.0]
    outcomes = [OSError("not yet"), OSError("not yet"), "conn"]

    def attempt(host, port, settings, timeout):
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    settings = settings_from(config_file)
    assert docker_mysql.wait_ready("h", 1, settings, clock=lambda: now[0],
                                   sleep=lambda s: now.__setitem__(0, now[0] + s),
                                   attempt=attempt) == "conn"
    assert now[0] == pytest.approx(1.0)


def test_bad_database_name_is_a_usage_error(config_file):
    with pytest.raises(docker_mysql.BadSetting, match=r"\[docker_mysql\] database = 'a-b'") as info:
        settings_from(config_file, database="a-b")
    assert info.value.exit_status == 2


def test_missing_sdk_is_exit_2():
    def importer(name):
        raise ImportError(f"No module named {name!r}")

    with pytest.raises(docker_mysql.SdkMissing, match=r"ocd\[docker\]") as info:
        docker_mysql.load_sdk(importer)
    assert info.value.exit_status == 2
