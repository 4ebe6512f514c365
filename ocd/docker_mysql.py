"""A throwaway MySQL server in Docker, for trying OCD away from the HET.

``ocd docker_mysql up`` starts (or reuses) a MySQL container, waits until
the server accepts a login and ``SELECT 1`` (a published port accepts TCP
long before the server inside is ready), creates the observation-number
table with one starting row, and tells the person the ``[database]``
settings to use. ``info`` and ``down`` look at and remove it.

The Docker SDK for Python is an optional extra (``ocd[docker]``), so it is
imported by :func:`load_sdk` only when one of these actions runs. Every
call here blocks: the command runs them synchronously, without a reactor,
because nothing else runs in that process.

Output for the person goes through the ``say`` callable the command gives
(``print``); nothing here prints.
"""

from __future__ import annotations

import importlib
import re
import time
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable

from twisted.logger import Logger

from ocd.config import Config

log = Logger()

#: The server's port inside the container.
MYSQL_PORT = "3306/tcp"
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

Say = Callable[[str], None]


class DockerMysqlError(Exception):
    """A failure to tell the person, with the exit status it means."""

    exit_status = EXIT_FAILED


class SdkMissing(DockerMysqlError):
    exit_status = EXIT_USAGE


class BadSetting(DockerMysqlError):
    exit_status = EXIT_USAGE


_NAME_RE = re.compile(r"^[A-Za-z0-9_$]{1,64}$")


@dataclass(frozen=True)
class Settings:
    """What the actions need, read once from ``[docker_mysql]`` and ``[database]``."""

    container_name: str
    image: str
    port: int
    root_password: str
    database: str
    user: str
    password: str
    start_timeout: float
    table: str
    first_obsnum: int

    @classmethod
    def from_config(cls, config: Config) -> "Settings":
        section = "docker_mysql"
        settings = cls(
            container_name=config.get_str(section, "container_name"),
            image=config.get_str(section, "image"),
            port=config.get_int(section, "port"),
            root_password=config.get_str(section, "root_password"),
            database=config.get_str(section, "database"),
            user=config.get_str(section, "user"),
            password=config.get_str(section, "password"),
            start_timeout=config.get_float(section, "start_timeout"),
            table=config.get_str("database", "table"),
            first_obsnum=config.get_int("database", "first_obsnum"),
        )
        for where, name in (("[docker_mysql] database", settings.database),
                            ("[database] table", settings.table)):
            if not _NAME_RE.match(name):
                raise BadSetting(f"{where} = {name!r}: use 1 to 64 letters, digits, '_' or '$'")
        if not settings.container_name:
            raise BadSetting("[docker_mysql] container_name is empty")
        return settings

    def environment(self) -> dict[str, str]:
        """The MySQL image's variables. Its root user cannot be ``MYSQL_USER``."""
        env = {"MYSQL_ROOT_PASSWORD": self.root_password, "MYSQL_DATABASE": self.database}
        if self.user != "root":
            env.update(MYSQL_USER=self.user, MYSQL_PASSWORD=self.password)
        return env


# -- the SDK and the engine ----------------------------------------------

def load_sdk(importer: Callable[[str], ModuleType] = importlib.import_module) -> ModuleType:
    """The ``docker`` package, or :class:`SdkMissing` saying how to get it."""
    try:
        return importer("docker")
    except ImportError as exc:
        raise SdkMissing(
            f"the Docker SDK for Python is not installed ({exc}); "
            "install it with: pip install 'ocd[docker]'") from exc


def connect(sdk: ModuleType) -> Any:
    """A client of the engine named by ``DOCKER_HOST`` (or the default socket)."""
    try:
        client = sdk.from_env()
        client.ping()
    except sdk.errors.DockerException as exc:
        raise DockerMysqlError(
            f"cannot reach the Docker engine ({exc}); is Docker running, "
            "and does DOCKER_HOST name it?") from exc
    return client


def find_container(sdk: ModuleType, client: Any, name: str) -> Any | None:
    try:
        return client.containers.get(name)
    except sdk.errors.NotFound:
        return None


def ensure_image(sdk: ModuleType, client: Any, image: str, say: Say) -> None:
    """Pull ``image`` unless the engine has it; a failed pull says why."""
    try:
        client.images.get(image)
        return
    except sdk.errors.ImageNotFound:
        pass
    repository, tag = sdk.utils.parse_repository_tag(image)
    say(f"pulling image {image} ...")
    for line in client.api.pull(repository, tag=tag or "latest", stream=True, decode=True):
        if "error" in line:
            raise DockerMysqlError(f"cannot pull image {image}: {line['error']}")
        log.debug("pull {image}: {status}", image=image, status=line.get("status"))
    try:
        client.images.get(image)
    except sdk.errors.ImageNotFound as exc:
        raise DockerMysqlError(f"image {image} is still missing after the pull") from exc


def published_port(container: Any) -> tuple[str, int] | None:
    """``(host, port)`` where the engine publishes the server, or None."""
    bindings = (container.ports or {}).get(MYSQL_PORT) or []
    for binding in bindings:
        if binding.get("HostPort"):
            host = binding.get("HostIp") or ""
            if host in ("", "0.0.0.0", "::"):
                host = "127.0.0.1"
            return host, int(binding["HostPort"])
    return None


def start(sdk: ModuleType, client: Any, settings: Settings, say: Say) -> Any:
    """The running container: reused, restarted or newly created."""
    container = find_container(sdk, client, settings.container_name)
    if container is not None and container.status == "running":
        say(f"container {settings.container_name} is already running: reusing it")
        return container
    if container is not None:
        say(f"container {settings.container_name} exists ({container.status}): starting it")
    else:
        ensure_image(sdk, client, settings.image, say)
        say(f"creating container {settings.container_name} from {settings.image}, "
            f"port {settings.port} -> 3306")
        container = client.containers.create(
            settings.image, name=settings.container_name, detach=True,
            environment=settings.environment(), ports={MYSQL_PORT: settings.port})
    container.start()
    container.reload()
    return container


# -- the server inside -------------------------------------------------

def login(host: str, port: int, settings: Settings, timeout: float) -> Any:
    """A PyMySQL connection that has answered ``SELECT 1``."""
    import pymysql

    timeout = max(timeout, 0.1)
    conn = pymysql.connect(host=host, port=port, user=settings.user, password=settings.password,
                           connect_timeout=timeout, read_timeout=timeout, write_timeout=timeout,
                           autocommit=True)
    try:
        with conn.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchall()
    except Exception:
        conn.close()
        raise
    return conn


def wait_ready(host: str, port: int, settings: Settings,
               clock: Callable[[], float] = time.monotonic,
               sleep: Callable[[float], None] = time.sleep,
               attempt: Callable[..., Any] = login, interval: float = 0.5) -> Any:
    """Log in again and again until it works or ``start_timeout`` has passed."""
    deadline = clock() + settings.start_timeout
    last: Exception | None = None
    while True:
        remaining = deadline - clock()
        if remaining <= 0:
            break
        try:
            return attempt(host, port, settings, min(remaining, 5.0))
        except Exception as exc:  # any failure means "not ready yet"
            last = exc
        remaining = deadline - clock()
        if remaining <= 0:
            break
        sleep(min(interval, remaining))
    raise DockerMysqlError(
        f"the MySQL server at {host}:{port} did not accept a login as {settings.user!r} "
        f"and SELECT 1 within start_timeout = {settings.start_timeout:g} s "
        f"(last error: {last}); it may still be initialising: run 'ocd docker_mysql up' "
        "again, or raise [docker_mysql] start_timeout")


def create_table_sql(table: str) -> str:
    """The table of shots.md section 4, as ``ocd.services.obsnum`` creates it."""
    from ocd.services.obsnum import mysql_create_table_sql

    return mysql_create_table_sql(table)


def prepare_database(conn: Any, settings: Settings) -> bool:
    """Database and table exist, with a starting row; True if that row is new.

    ``CREATE DATABASE IF NOT EXISTS`` is a no-op with the MySQL image (it
    creates ``MYSQL_DATABASE`` itself) and lets any server do as well.
    """
    with conn.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE IF NOT EXISTS `{settings.database}`")
        conn.select_db(settings.database)
        cursor.execute(create_table_sql(settings.table))
        cursor.execute(f"SELECT COUNT(*) FROM `{settings.table}`")
        if cursor.fetchone()[0]:
            return False
        cursor.execute(f"INSERT INTO `{settings.table}` (obsnum) VALUES (%s)", (settings.first_obsnum,))
        return True


def database_settings(host: str, port: int, settings: Settings) -> str:
    """The ``[database]`` section that points OCD at this server."""
    return "\n".join([
        "[database]",
        "backend = mysql",
        f"host = {host}",
        f"port = {port}",
        f"user = {settings.user}",
        f"password = {settings.password}".rstrip(),
        f"database = {settings.database}",
        f"table = {settings.table}",
    ])


def answers(container: Any, settings: Settings) -> str:
    """Whether the database answers a login and ``SELECT 1``, in words."""
    address = published_port(container)
    if address is None:
        return "no (no published port)"
    try:
        login(*address, settings, timeout=2.0).close()
    except Exception as exc:
        return f"no ({exc})"
    return "yes"


# -- the actions -------------------------------------------------------

def up(sdk: ModuleType, client: Any, settings: Settings, say: Say,
       wait: Callable[..., Any] = wait_ready) -> int:
    container = start(sdk, client, settings, say)
    address = published_port(container)
    if address is None:
        raise DockerMysqlError(f"container {settings.container_name} publishes no port for 3306")
    host, port = address
    say(f"waiting up to {settings.start_timeout:g} s for MySQL at {host}:{port} ...")
    conn = wait(host, port, settings)
    try:
        new_row = prepare_database(conn, settings)
    finally:
        conn.close()
    say(f"table {settings.database}.{settings.table} is ready"
        + (f" (starting row obsnum = {settings.first_obsnum})" if new_row else " (rows kept)"))
    say("add this to your ocd.cfg:\n\n" + database_settings(host, port, settings))
    return EXIT_OK


def info(sdk: ModuleType, client: Any, settings: Settings, say: Say) -> int:
    container = find_container(sdk, client, settings.container_name)
    if container is None:
        say(f"container {settings.container_name} does not exist")
        return EXIT_OK
    ports = ", ".join(
        f"{b.get('HostIp') or '0.0.0.0'}:{b.get('HostPort')}->{inner}"
        for inner, bindings in sorted((container.ports or {}).items()) for b in bindings or []
    ) or "none"
    say("\n".join([
        f"name: {container.name}",
        f"image: {container.attrs.get('Config', {}).get('Image', '?')}",
        f"state: {container.status}",
        f"ports: {ports}",
        f"database answers: {answers(container, settings)}",
    ]))
    return EXIT_OK


def down(sdk: ModuleType, client: Any, settings: Settings, say: Say) -> int:
    container = find_container(sdk, client, settings.container_name)
    if container is None:
        say(f"container {settings.container_name} does not exist: nothing to remove")
        return EXIT_OK
    if container.status == "running":
        container.stop()
    container.remove(v=True)
    say(f"container {settings.container_name} stopped and removed, with its volumes")
    return EXIT_OK


ACTIONS: dict[str, Callable[[ModuleType, Any, Settings, Say], int]] = {
    "up": up, "info": info, "down": down,
}
