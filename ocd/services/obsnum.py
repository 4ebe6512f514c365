"""Observation numbers: reserved in table ``vl_obsnum`` (shots.md section 4).

Every shot gets a new number that is never reused: the largest ``obsnum`` in
the table plus one (``[database] first_obsnum`` for an empty table). Two
OCDs, or OCD and a person, may reserve at the same moment, so the read of
the maximum and the insert of the new row happen in one transaction that no
other reservation can interleave:

- MySQL/MariaDB: a server-wide named lock (``GET_LOCK``) around a READ
  COMMITTED transaction. Reservations queue on the named lock instead of
  taking row or gap locks in InnoDB, so they cannot deadlock each other;
  the UNIQUE index on ``obsnum`` still catches a writer that does not take
  the lock, and a duplicate or deadlock is simply tried again.
- SQLite: ``BEGIN IMMEDIATE`` takes the database's write lock before the
  read, and other connections wait on the busy timeout.

At start, :meth:`ObsnumPool.check` logs in and reads the table (creating
it when missing, as a reservation would): a failure is one line naming the
host, database, user and the server's own message, and OCD keeps running
with the ``obsnum_unavailable`` blocker, whose detail is that message.

Only a connection error (a lost connection, a server that cannot be
reached) is tried once more; an SQL or permission error (unknown database,
access denied, a missing table that cannot be created) fails at once, since
trying again cannot help. Either way the call fails with
:class:`ObsnumUnavailable`, ``available`` turns False and ``last_error``
holds the reason; the main loop re-checks on its timer (:meth:`check`)
until the database can be used again. A change of condition is logged once
(unavailable with its reason, available again), never on every attempt.

The pool is ``twisted.enterprise.adbapi``: blocking DB-API calls in its own
thread pool. It is made in ``startService`` (after twistd's fork) and closed
in ``stopService``; connect, read and write timeouts (``[database]
timeout``) keep a dead server from hanging a shot or the shutdown.
"""

from __future__ import annotations

import re
from typing import Any

from twisted.application.service import Service
from twisted.enterprise import adbapi
from twisted.internet import defer
from twisted.internet.interfaces import IReactorThreads
from twisted.logger import Logger

from ocd.config import Config, ConfigError

log = Logger(namespace="ocd.obsnum")

#: Attempts for a reservation that met a duplicate, a deadlock or a busy lock.
MAX_CONFLICT_RETRIES = 20

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")

# MySQL client errors that mean "no connection" (can't connect, gone away,
# lost during query, commands out of sync on a dead socket, lost in handshake).
_MYSQL_CONNECTION_ERRORS = {2003, 2006, 2013, 2014, 2055}
# Server errors worth an immediate new attempt: lock wait timeout, deadlock,
# duplicate entry.
_MYSQL_CONFLICT_ERRORS = {1205, 1213, 1062}


class ObsnumUnavailable(Exception):
    """The observation-number database could not be used (after one retry)."""


class ObsnumTaken(Exception):
    """The observation number to record is already in the table."""


class _Conflict(Exception):
    """Another reservation won this round: try again at once."""


def check_table_name(table: str) -> str:
    if not _IDENTIFIER.match(table):
        raise ConfigError(
            f"[database] table = {table!r}: expected a plain SQL name (letters, digits, _)"
        )
    return table


def mysql_create_table_sql(table: str) -> str:
    """``CREATE TABLE IF NOT EXISTS`` for the observation-number table (MySQL)."""
    check_table_name(table)
    return (
        f"CREATE TABLE IF NOT EXISTS `{table}` ("
        " id INTEGER PRIMARY KEY AUTO_INCREMENT,"
        " obsnum INTEGER NOT NULL UNIQUE,"
        " shotid VARCHAR(32),"
        " created TIMESTAMP DEFAULT CURRENT_TIMESTAMP"
        ")"
    )


def sqlite_create_table_sql(table: str) -> str:
    check_table_name(table)
    return (
        f'CREATE TABLE IF NOT EXISTS "{table}" ('
        " id INTEGER PRIMARY KEY AUTOINCREMENT,"
        " obsnum INTEGER NOT NULL UNIQUE,"
        " shotid VARCHAR(32),"
        " created TIMESTAMP DEFAULT CURRENT_TIMESTAMP"
        ")"
    )


def _classify(exc: BaseException) -> str:
    """``conflict``, ``connection`` or ``other`` for a database error."""
    import sqlite3

    import pymysql

    if isinstance(exc, _Conflict):
        return "conflict"
    if isinstance(exc, (adbapi.ConnectionLost, pymysql.err.InterfaceError)):
        return "connection"
    if isinstance(exc, pymysql.err.MySQLError):
        code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
        if code in _MYSQL_CONFLICT_ERRORS:
            return "conflict"
        if code in _MYSQL_CONNECTION_ERRORS:
            return "connection"
        return "other"
    if isinstance(exc, sqlite3.IntegrityError):
        return "conflict"
    if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
        return "conflict"
    return "other"


def describe_error(exc: BaseException) -> str:
    """The server's own message in one line, e.g. ``(1049, "Unknown database 'x'")``."""
    import pymysql

    if isinstance(exc, pymysql.err.MySQLError) and len(exc.args) >= 2:
        code, text = exc.args[0], exc.args[1]
        return f"{text} (MySQL error {code})"
    text = str(exc).strip() or type(exc).__name__
    return f"{type(exc).__name__}: {text}"


def _is_duplicate(exc: BaseException) -> bool:
    import sqlite3

    import pymysql

    if isinstance(exc, pymysql.err.IntegrityError):
        return bool(exc.args) and exc.args[0] == 1062
    return isinstance(exc, sqlite3.IntegrityError)


class ObsnumPool(Service):
    """Reserve and record observation numbers through an adbapi pool."""

    name = "obsnum"

    def __init__(self, config: Config, reactor: IReactorThreads):
        self.reactor = reactor
        self.backend = config.get_choice("database", "backend", ("mysql", "sqlite"))
        self.table = check_table_name(config.get_str("database", "table"))
        self.first_obsnum = config.get_int("database", "first_obsnum")
        self.timeout = config.get_float("database", "timeout")
        if self.timeout <= 0:
            where = config.where("database", "timeout", config.raw("database", "timeout"))
            raise ConfigError(f"{where}: expected a value > 0 (seconds)")
        self.host = config.get_str("database", "host")
        self.port = config.get_int("database", "port")
        self.user = config.get_str("database", "user")
        self.password = config.get_str("database", "password")
        self.database = config.get_str("database", "database")
        self.sqlite_file = config.get_path("database", "sqlite_file")
        if self.backend == "sqlite" and self.sqlite_file is None:
            where = config.where("database", "sqlite_file", config.raw("database", "sqlite_file"))
            raise ConfigError(f"{where}: empty, but [database] backend = sqlite needs a file "
                              "for the observation numbers")
        self.lock_name = f"ocd_obsnum.{self.database}.{self.table}"[:64]
        #: Result of the last try (True before the first one).
        self.available = True
        #: Why the last try failed, in plain words (None when it worked).
        self.last_error: str | None = None
        self._pool: adbapi.ConnectionPool | None = None
        self._table_ready = False
        #: Tries made against the database (every retry counts).
        self.attempts = 0
        #: The check made at start (fires True or False).
        self.started_check: defer.Deferred[bool] | None = None

    def where(self) -> str:
        """The database in words, for messages: host, database, user, table."""
        if self.backend == "sqlite":
            return f"SQLite file {self.sqlite_file.absolute()}, table {self.table}"
        return (f"MySQL server {self.host}:{self.port}, database {self.database}, "
                f"user {self.user}, table {self.table}")

    # -- lifecycle ------------------------------------------------------------
    def startService(self) -> None:
        super().startService()
        self._pool = self._make_pool()
        self.started_check = self.check()

        def checked(ok: bool) -> bool:
            if ok:
                log.info("obsnum: observation numbers from {where}: checked", where=self.where())
            return ok

        self.started_check.addCallback(checked)

    def stopService(self) -> Any:
        super().stopService()
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.close()

    def _make_pool(self) -> adbapi.ConnectionPool:
        extra: dict[str, Any] = {"cp_reactor": self.reactor}
        if self.backend == "sqlite":
            assert self.sqlite_file is not None
            folder = self.sqlite_file.parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:  # one line naming the option: OCD stops (exit 2)
                raise ConfigError(f"[database] sqlite_file = {str(self.sqlite_file)!r}: cannot "
                                  f"create its folder {folder}: {exc.strerror or exc}") from None
            return adbapi.ConnectionPool(
                "sqlite3", str(self.sqlite_file), timeout=self.timeout,
                isolation_level=None, check_same_thread=False,
                cp_min=1, cp_max=1, cp_noisy=False, **extra,
            )
        return adbapi.ConnectionPool(
            "pymysql", host=self.host, port=self.port, user=self.user,
            password=self.password, database=self.database, charset="utf8mb4",
            autocommit=False, connect_timeout=self.timeout,
            read_timeout=self.timeout, write_timeout=self.timeout,
            cp_reconnect=True, cp_min=1, cp_max=4, cp_noisy=False,
            cp_openfun=_mysql_session_setup, **extra,
        )

    # -- public -----------------------------------------------------------------
    def reserve(self, shotid: str) -> defer.Deferred[int]:
        """Insert the next number for ``shotid``; fires with it."""
        return self._attempt(self._reserve_in_thread, shotid, what=f"reserve a number for {shotid}")

    def record(self, obsnum: int, shotid: str) -> defer.Deferred[None]:
        """Insert a given number (``ocd run_shot``); :class:`ObsnumTaken` if present."""
        return self._attempt(self._record_in_thread, obsnum, shotid,
                             what=f"record number {obsnum} for {shotid}")

    def check(self) -> defer.Deferred[bool]:
        """Log in and read the table; fires True or False (never fails).

        Called at start and, while the database is unavailable, on the main
        loop's timer: the way back to ``available``.
        """
        def unavailable(failure: Any) -> bool:
            failure.trap(ObsnumUnavailable)
            return False

        d = self._attempt(self._check_in_thread, what="use the observation-number table")
        d.addCallbacks(lambda _: True, unavailable)
        return d

    # -- retries ----------------------------------------------------------------
    @defer.inlineCallbacks
    def _attempt(self, func: Any, *args: Any, what: str) -> Any:
        connection_retries = 1
        conflicts = 0
        while True:
            if self._pool is None:
                self._fail("the database pool is not running (OCD is stopping)", what)
            self.attempts += 1
            try:
                value = yield self._pool.runWithConnection(func, *args)
            except ObsnumTaken:
                self._ok()
                raise
            except Exception as exc:
                kind = _classify(exc)
                if kind == "conflict" and conflicts < MAX_CONFLICT_RETRIES:
                    conflicts += 1
                    log.debug("obsnum: {what}: conflict ({exc}), again", what=what, exc=exc)
                    continue
                if kind == "connection" and connection_retries > 0:
                    connection_retries -= 1
                    log.debug("obsnum: {what}: connection error ({exc}), trying once more",
                              what=what, exc=exc)
                    continue
                self._fail(describe_error(exc), what)
            else:
                self._ok()
                return value

    def _ok(self) -> None:
        if not self.available:
            log.info("obsnum: the observation-number database can be used again ({where})",
                     where=self.where())
        self.available = True
        self.last_error = None

    def _fail(self, reason: str, what: str) -> None:
        """Mark unavailable with ``reason``; log only a change of condition."""
        message = f"{self.where()}: {reason}"
        if self.available or message != self.last_error:
            log.error("obsnum: cannot {what}: {message}; shots are blocked "
                      "(obsnum_unavailable) until it works", what=what, message=message)
        self.available = False
        self.last_error = message
        raise ObsnumUnavailable(f"cannot {what} in {message}")

    # -- in the pool's threads ----------------------------------------------
    def _check_in_thread(self, conn: Any) -> None:
        cur = conn.cursor()
        try:
            self._ensure_table(cur)
            cur.execute(f"SELECT MAX(obsnum) FROM {self._quoted()}")
            cur.fetchall()
        finally:
            cur.close()
        conn.commit()

    def _ensure_table(self, cursor: Any) -> None:
        if self._table_ready:
            return
        if self.backend == "sqlite":
            cursor.execute(sqlite_create_table_sql(self.table))
        else:
            cursor.execute(mysql_create_table_sql(self.table))
        self._table_ready = True

    def _reserve_in_thread(self, conn: Any, shotid: str) -> int:
        if self.backend == "sqlite":
            return self._sqlite_write(conn, lambda cur: self._insert_next(cur, shotid, "?"))
        return self._mysql_locked(conn, lambda cur: self._insert_next(cur, shotid, "%s"))

    def _record_in_thread(self, conn: Any, obsnum: int, shotid: str) -> None:
        def insert(cur: Any) -> None:
            mark = "?" if self.backend == "sqlite" else "%s"
            try:
                cur.execute(
                    f"INSERT INTO {self._quoted()} (obsnum, shotid) VALUES ({mark}, {mark})",
                    (obsnum, shotid),
                )
            except Exception as exc:
                if _is_duplicate(exc):
                    raise ObsnumTaken(
                        f"observation number {obsnum} is already taken in {self.where()}"
                    ) from exc
                raise

        if self.backend == "sqlite":
            self._sqlite_write(conn, insert)
        else:
            self._mysql_locked(conn, insert)

    def _quoted(self) -> str:
        return f'"{self.table}"' if self.backend == "sqlite" else f"`{self.table}`"

    def _insert_next(self, cur: Any, shotid: str, mark: str) -> int:
        cur.execute(f"SELECT MAX(obsnum) FROM {self._quoted()}")
        row = cur.fetchone()
        number = self.first_obsnum if row is None or row[0] is None else int(row[0]) + 1
        cur.execute(
            f"INSERT INTO {self._quoted()} (obsnum, shotid) VALUES ({mark}, {mark})",
            (number, shotid),
        )
        return number

    def _sqlite_write(self, conn: Any, body: Any) -> Any:
        cur = conn.cursor()
        try:
            self._ensure_table(cur)
            cur.execute("BEGIN IMMEDIATE")
            try:
                value = body(cur)
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            return value
        finally:
            cur.close()

    def _mysql_locked(self, conn: Any, body: Any) -> Any:
        cur = conn.cursor()
        try:
            self._ensure_table(cur)
            conn.commit()
            cur.execute("SELECT GET_LOCK(%s, %s)", (self.lock_name, max(self.timeout / 2, 0.5)))
            (got,) = cur.fetchone()
            if got != 1:
                raise _Conflict(f"named lock {self.lock_name!r} is busy")
            try:
                value = body(cur)
                conn.commit()
            except BaseException:
                try:
                    cur.connection.rollback()  # before the lock goes
                except Exception:
                    pass
                raise
            finally:
                try:
                    cur.execute("SELECT RELEASE_LOCK(%s)", (self.lock_name,))
                    cur.fetchall()
                except Exception:  # the connection died: the server released it
                    pass
            return value
        finally:
            cur.close()


def _mysql_session_setup(conn: Any) -> None:
    """Each new MySQL connection reads the latest committed rows."""
    cur = conn.cursor()
    try:
        cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
    finally:
        cur.close()
    conn.commit()
