"""Observation numbers on the real MariaDB and on SQLite."""

from __future__ import annotations

import re

import pytest
import pytest_twisted

from ocd.config import Config
from ocd.services.obsnum import ObsnumPool, ObsnumTaken, ObsnumUnavailable, mysql_create_table_sql
from conftest import MARIADB, NO_TLS, closed_port, mariadb_database, stopped


def _mysql_config(database: str, port: int = 3306, **extra: str) -> Config:
    overrides = [
        ("database", "backend", "mysql"),
        ("database", "host", "127.0.0.1"),
        ("database", "port", str(port)),
        ("database", "user", "root"),
        ("database", "password", ""),
        ("database", "database", database),
        ("database", "timeout", "2"),
    ] + [("database", k, v) for k, v in extra.items()]
    return Config.load(None, overrides)


def _sqlite_config(path, **extra: str) -> Config:
    overrides = [("database", "backend", "sqlite"), ("database", "sqlite_file", str(path))]
    overrides += [("database", k, v) for k, v in extra.items()]
    return Config.load(None, overrides)


@pytest.fixture
def mysql_db():
    """A fresh, uniquely named MariaDB database, dropped afterwards."""
    with mariadb_database() as (_conn, name):
        yield name


def _rows(database: str) -> list[tuple[int, str]]:
    import pymysql

    conn = pymysql.connect(**MARIADB, **NO_TLS, database=database)
    with conn.cursor() as cur:
        cur.execute("SELECT obsnum, shotid FROM vl_obsnum ORDER BY obsnum")
        rows = [tuple(r) for r in cur.fetchall()]
    conn.close()
    return rows


def _pool(config: Config) -> ObsnumPool:
    from twisted.internet import reactor  # pytest-twisted installed it

    return ObsnumPool(config, reactor)


def _started(config: Config) -> ObsnumPool:
    pool = _pool(config)
    pool.startService()
    return pool


def test_create_table_sql_names_the_table():
    sql = mysql_create_table_sql("vl_obsnum")
    assert "CREATE TABLE IF NOT EXISTS `vl_obsnum`" in sql
    assert "AUTO_INCREMENT" in sql and "UNIQUE" in sql
    with pytest.raises(Exception):
        mysql_create_table_sql("bad; DROP TABLE x")


def test_building_the_pool_opens_nothing(tmp_path):
    path = tmp_path / "sub" / "obs.sqlite"
    _pool(_sqlite_config(path))
    assert not path.exists()


@pytest.mark.integration
@pytest.mark.mysql
@pytest_twisted.inlineCallbacks
def test_mysql_two_pools_reserve_200_distinct_consecutive(mysql_db):
    config = _mysql_config(mysql_db, first_obsnum="1000")
    from twisted.internet import defer

    pools = [_started(config), _started(config)]
    calls = [pools[i % 2].reserve(f"DEX{i:05d}") for i in range(200)]
    results = yield defer.gatherResults(calls, consumeErrors=True)
    try:
        assert sorted(results) == list(range(1000, 1200))
        assert [r[0] for r in _rows(mysql_db)] == list(range(1000, 1200))
        assert all(pool.available for pool in pools)
    finally:
        for pool in pools:
            stopped(pool)


@pytest.mark.integration
@pytest.mark.mysql
@pytest_twisted.inlineCallbacks
def test_mysql_record_taken_is_refused(mysql_db):
    pool = _started(_mysql_config(mysql_db))
    try:
        yield pool.record(4321, "DEX00001")
        with pytest.raises(ObsnumTaken) as info:
            yield pool.record(4321, "DEX00002")
        assert "4321" in str(info.value)
        assert pool.available
        number = yield pool.reserve("DEX00003")
        assert number == 4322
        assert _rows(mysql_db) == [(4321, "DEX00001"), (4322, "DEX00003")]
    finally:
        stopped(pool)


@pytest.mark.integration
@pytest.mark.mysql
@pytest_twisted.inlineCallbacks
def test_mysql_unreachable_gives_unavailable_not_a_crash():
    pool = _started(_mysql_config("ocd", port=closed_port()))
    try:
        with pytest.raises(ObsnumUnavailable) as info:
            yield pool.reserve("DEX00001")
        assert not pool.available
        assert "127.0.0.1" in str(info.value)
        assert pool.last_error
    finally:
        stopped(pool)


@pytest.mark.integration
@pytest.mark.mysql
@pytest_twisted.inlineCallbacks
def test_mysql_server_lost_mid_night_then_back(mysql_db):
    """A TCP proxy in front of MariaDB plays the server going away and back."""
    from twisted.internet import reactor
    from twisted.protocols import portforward

    class Proxy(portforward.ProxyFactory):
        def __init__(self):
            super().__init__("127.0.0.1", 3306)
            self.live = set()

        def buildProtocol(self, addr):
            proto = super().buildProtocol(addr)
            factory = self

            made, lost = proto.connectionMade, proto.connectionLost

            def connection_made():
                factory.live.add(proto)
                made()

            def connection_lost(reason):
                factory.live.discard(proto)
                lost(reason)

            proto.connectionMade = connection_made
            proto.connectionLost = connection_lost
            return proto

    proxy = Proxy()
    port = reactor.listenTCP(0, proxy, interface="127.0.0.1")
    number = port.getHost().port
    pool = _started(_mysql_config(mysql_db, port=number))
    try:
        first = yield pool.reserve("DEX00001")
        assert first == 1 and pool.available
        # The server goes away: stop listening and cut the live connections.
        yield port.stopListening()
        for proto in list(proxy.live):
            proto.transport.abortConnection()
        with pytest.raises(ObsnumUnavailable):
            yield pool.reserve("DEX00002")
        assert not pool.available
        # ...and comes back on the same port: the same pool works again.
        port = reactor.listenTCP(number, proxy, interface="127.0.0.1")
        second = yield pool.reserve("DEX00003")
        assert second == 2 and pool.available
    finally:
        stopped(pool)
        yield port.stopListening()
        for proto in list(proxy.live):
            proto.transport.abortConnection()


@pytest.mark.integration
@pytest_twisted.inlineCallbacks
def test_sqlite_two_pools_reserve_200_distinct_consecutive(tmp_path):
    from twisted.internet import defer

    path = tmp_path / "new" / "obsnum.sqlite"
    config = _sqlite_config(path)
    pools = [_started(config), _started(config)]
    try:
        calls = [pools[i % 2].reserve(f"DEX{i:05d}") for i in range(200)]
        results = yield defer.gatherResults(calls, consumeErrors=True)
        assert sorted(results) == list(range(1, 201))
        assert path.exists()
    finally:
        for pool in pools:
            stopped(pool)


@pytest.mark.integration
@pytest_twisted.inlineCallbacks
def test_sqlite_record_and_reserve(tmp_path):
    pool = _started(_sqlite_config(tmp_path / "o.sqlite", first_obsnum="50"))
    try:
        assert (yield pool.reserve("A")) == 50
        yield pool.record(60, "B")
        with pytest.raises(ObsnumTaken):
            yield pool.record(50, "C")
        assert (yield pool.reserve("D")) == 61
    finally:
        stopped(pool)


@pytest.mark.integration
@pytest_twisted.inlineCallbacks
def test_sqlite_unusable_file_gives_unavailable(tmp_path):
    # A directory where the file should be: sqlite cannot open it.
    (tmp_path / "isdir.sqlite").mkdir()
    pool = _started(_sqlite_config(tmp_path / "isdir.sqlite"))
    try:
        with pytest.raises(ObsnumUnavailable):
            yield pool.reserve("A")
        assert not pool.available
    finally:
        stopped(pool)


@pytest_twisted.inlineCallbacks
def test_not_started_is_unavailable(tmp_path):
    pool = _pool(_sqlite_config(tmp_path / "o.sqlite"))
    with pytest.raises(ObsnumUnavailable):
        yield pool.reserve("A")


# -- issue 9 item 2: the check at start, the real reason, logged once ---------

class _LogCapture:
    """Collects the twisted.logger events of one namespace (a real observer)."""

    def __init__(self, namespace: str = "ocd.obsnum"):
        from twisted.logger import globalLogPublisher

        self.namespace = namespace
        self.events: list[dict] = []
        self._publisher = globalLogPublisher
        globalLogPublisher.addObserver(self)

    def __call__(self, event: dict) -> None:
        if event.get("log_namespace") == self.namespace:
            self.events.append(event)

    def lines(self, level: str) -> list[str]:
        from twisted.logger import formatEvent

        return [formatEvent(e) for e in self.events if e["log_level"].name == level]

    def close(self) -> None:
        self._publisher.removeObserver(self)


@pytest.fixture
def obsnum_log():
    capture = _LogCapture()
    yield capture
    capture.close()


@pytest.mark.integration
@pytest.mark.mysql
@pytest_twisted.inlineCallbacks
def test_mysql_unknown_database_at_start_is_one_clear_line(mysql_db, obsnum_log):
    missing = f"{mysql_db}_nosuch"
    pool = _started(_mysql_config(missing))
    try:
        ok = yield pool.started_check
        assert ok is False and not pool.available
        assert f"Unknown database '{missing}'" in pool.last_error
        (line,) = obsnum_log.lines("error")
        for part in ("127.0.0.1:3306", f"database {missing}", "user root",
                     f"Unknown database '{missing}'"):
            assert part in line, (part, line)
        assert pool.attempts == 1  # not a connection error: not tried again
        for _ in range(3):  # the same condition again: no new line
            with pytest.raises(ObsnumUnavailable) as info:
                yield pool.reserve("DEX00001")
            assert "Unknown database" in str(info.value)
        assert len(obsnum_log.lines("error")) == 1
        assert pool.attempts == 4
    finally:
        stopped(pool)


@pytest.mark.integration
@pytest.mark.mysql
@pytest_twisted.inlineCallbacks
def test_mysql_access_denied_is_reported_as_such(mysql_db, obsnum_log):
    pool = _started(_mysql_config(mysql_db, user=f"nobody_{mysql_db[-8:]}", password="wrong"))
    try:
        ok = yield pool.started_check
        assert ok is False
        assert "Access denied" in pool.last_error
        # MariaDB answers a wrong login with 1045, or with 1698 (ER_ACCESS_DENIED_NO_PASSWORD_ERROR)
        # when it has just been refused for the same account; both are "access denied".
        assert re.search(r"\(MySQL error (1045|1698)\)", pool.last_error), pool.last_error
        assert pool.attempts == 1
    finally:
        stopped(pool)


@pytest.mark.integration
@pytest.mark.mysql
@pytest_twisted.inlineCallbacks
def test_mysql_down_is_tried_once_more_then_back_logged_once(mysql_db, obsnum_log):
    pool = _started(_mysql_config(mysql_db, port=str(closed_port())))
    try:
        ok = yield pool.started_check
        assert ok is False and pool.attempts == 2  # a connection error: one retry
        assert "Can't connect" in pool.last_error
        pool.port = 3306  # the server "comes back"
        stopped(pool)
        pool.startService()
        ok = yield pool.started_check
        assert ok is True and pool.available and pool.last_error is None
        assert len(obsnum_log.lines("error")) == 1
        assert any("can be used again" in line for line in obsnum_log.lines("info"))
    finally:
        stopped(pool)


@pytest.mark.integration
@pytest_twisted.inlineCallbacks
def test_pool_closed_during_a_retry_is_unavailable_not_an_attribute_error(tmp_path):
    """The retry after a connection error must see that the pool was closed."""
    from twisted.internet import defer

    pool = _started(_mysql_config("ocd", port=str(closed_port())))
    yield pool.started_check
    d = pool.reserve("DEX00001")
    stopped(pool)  # joins the pool's thread: the refused connect is in
    with pytest.raises(ObsnumUnavailable) as info:
        yield d
    assert "pool is not running" in str(info.value)
    yield defer.succeed(None)
