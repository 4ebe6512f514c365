"""CurveZMQ on the URLs where OCD takes orders (events.md 3.7).

Who may talk to OCD: with ``[security] curve = yes``, OCD's SUB sockets on
the control URLs (``ocd_allow_hetdex``, ``ocd_config``, ``ocd_run_shot``)
and on ``ocd_db_replay`` are CurveZMQ *servers* (they hold OCD's secret key;
the role does not depend on who binds), and every subcommand's PUB on those
URLs is a CurveZMQ *client* with its own key pair and OCD's public key.
libzmq asks a ZAP handler about every client key during the handshake; ours
(:class:`ZapHandler`) accepts only the keys of ``allowed_client_keys``. A
refused key never completes the handshake, so none of its messages reaches
a socket, let alone the main loop; the refusal is counted (``on_refused``)
and warned about (rate-limited).

Why a ZAP handler on the reactor and not pyzmq's ``ThreadAuthenticator``:
pyzmq ships the ZAP logic (:class:`zmq.auth.Authenticator`) and three ways to
run it (a thread, asyncio, tornado's IOLoop), none on Twisted. A thread would
call our refusal counter from outside the reactor (locks, or
``callFromThread``), and the asyncio one needs the asyncio reactor. The ZAP
socket is a ZeroMQ socket like the others: :class:`ZapHandler` is a txZMQ
connection on the :class:`~ocd.protocols.zmq.Bus` that reads its REP socket
on the reactor (bounded, like the subscribers) and hands each request to
pyzmq's ``Authenticator.handle_zap_message``; counting happens on the reactor
thread, under any reactor, and the socket closes with the bus.

The TCS URLs (``event_urls``) are never protected: the TCS does not speak
CurveZMQ. The main loop's answers (``ocd_main_loop``) are not secret and
carry no orders.
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass
from typing import Callable, Sequence

import zmq
import zmq.auth
from twisted.internet.defer import Deferred
from twisted.logger import Logger
from txzmq import ZmqConnection, ZmqEndpoint, ZmqEndpointType
from zmq.utils import z85

from ocd.config import Config, ConfigError
from ocd.protocols.zmq import MAX_BATCH, Bus, _OcdConnection

SECTION = "security"
ZAP_URL = "inproc://zeromq.zap.01"
#: At most one warning per refused key in this many seconds.
REFUSAL_WARN_EVERY = 60.0

log = Logger(namespace="ocd.curve")


def new_key_pair() -> tuple[bytes, bytes]:
    """A fresh CurveZMQ key pair, ``(public, secret)``, each 40 Z85 characters."""
    return zmq.curve_keypair()


def config_text(key: bytes) -> str:
    """A Z85 key as written in a configuration file (``$`` doubled: ``$$``)."""
    return key.decode("ascii").replace("$", "$$")


def check_key(text: str, where: str) -> bytes:
    """A Z85 key from the configuration, or ConfigError naming ``where`` and why."""
    key = text.strip().encode("ascii", "replace")
    if len(key) != 40:
        raise ConfigError(f"{where}: a CurveZMQ key is 40 Z85 characters (from `ocd keys`), "
                          f"got {len(key)}")
    try:
        raw = z85.decode(key)
    except (ValueError, KeyError, IndexError, binascii.Error):
        raise ConfigError(f"{where}: {text.strip()!r} is not a Z85 key (from `ocd keys`)") from None
    if len(raw) != 32:
        raise ConfigError(f"{where}: not a 32-byte CurveZMQ key")
    return key


def _pair(config: Config, public_option: str, secret_option: str) -> tuple[bytes, bytes]:
    public = check_key(config.get_str(SECTION, public_option), f"[{SECTION}] {public_option}")
    secret = check_key(config.get_str(SECTION, secret_option), f"[{SECTION}] {secret_option}")
    if zmq.curve_public(secret) != public:
        raise ConfigError(f"[{SECTION}] {public_option} is not the public key of "
                          f"{secret_option}: copy both from the same `ocd keys` output")
    return public, secret


def curve_enabled(config: Config) -> bool:
    return config.get_bool(SECTION, "curve")


@dataclass(frozen=True)
class CurveServer:
    """OCD's side: its key pair and the client keys it accepts."""

    public: bytes
    secret: bytes
    allowed: frozenset[bytes]

    def apply(self, socket: zmq.Socket, domain: str) -> None:
        """Make ``socket`` a CurveZMQ server; ``domain`` names its kind of URL in ZAP."""
        socket.curve_server = True
        socket.curve_publickey = self.public
        socket.curve_secretkey = self.secret
        socket.zap_domain = domain.encode("utf-8")


@dataclass(frozen=True)
class CurveClient:
    """A subcommand's side: its own key pair and OCD's public key."""

    public: bytes
    secret: bytes
    server_public: bytes

    def apply(self, socket: zmq.Socket, domain: str = "") -> None:
        socket.curve_serverkey = self.server_public
        socket.curve_publickey = self.public
        socket.curve_secretkey = self.secret


def server_settings(config: Config) -> CurveServer | None:
    """OCD's CurveZMQ settings, None when ``curve = no``; ConfigError when incomplete."""
    if not curve_enabled(config):
        return None
    public, secret = _pair(config, "ocd_public_key", "ocd_secret_key")
    allowed = [check_key(k, f"[{SECTION}] allowed_client_keys")
               for k in config.get_list(SECTION, "allowed_client_keys")]
    if not allowed:
        raise ConfigError(f"[{SECTION}] curve = yes but allowed_client_keys is empty: nobody "
                          "could talk to OCD (add the public keys from `ocd keys`)")
    return CurveServer(public, secret, frozenset(allowed))


def client_settings(config: Config) -> CurveClient | None:
    """A subcommand's CurveZMQ settings, None when ``curve = no``."""
    if not curve_enabled(config):
        return None
    server = check_key(config.get_str(SECTION, "ocd_public_key"), f"[{SECTION}] ocd_public_key")
    public, secret = _pair(config, "client_public_key", "client_secret_key")
    return CurveClient(public, secret, server)


class KeyListAuthenticator(zmq.auth.Authenticator):
    """pyzmq's ZAP logic with a fixed list of allowed CURVE client keys."""

    def __init__(self, context: zmq.Context, allowed: frozenset[bytes], domains: Sequence[str],
                 on_refused: Callable[[str, bytes], None]) -> None:
        super().__init__(context)
        self._keys = allowed
        self._on_refused = on_refused
        # pyzmq looks the provider up by the socket's ZAP domain ("*" only for none)
        for domain in ("*", *domains):
            self.configure_curve_callback(domain, self)

    def callback(self, domain: str, key: bytes) -> bool:
        """pyzmq's credentials-provider hook: ``key`` is the client's Z85 key."""
        if key in self._keys:
            return True
        self._on_refused(domain, key)
        return False


class ZapHandler(_OcdConnection, ZmqConnection):
    """The ZAP REP socket of the bus, read on the reactor.

    Bound on ``inproc://zeromq.zap.01`` in the bus's context before any
    CurveZMQ server socket connects: libzmq sends every handshake there.
    """

    socketType = zmq.REP
    closeLinger = 0

    def __init__(self, factory: Bus, allowed: frozenset[bytes], domains: Sequence[str] = (),
                 on_refused: Callable[[str, bytes], None] | None = None) -> None:
        """``domains``: the ZAP domains of the server sockets (their kinds of URL);
        ``on_refused(domain, key)`` counts a refusal (without it, this warns)."""
        factory._require_open()
        self.urls = [ZAP_URL]
        self.refused = 0
        self._on_refused = on_refused
        self._warned: dict[bytes, float] = {}
        self.authenticator = KeyListAuthenticator(factory.context, allowed, domains,
                                                  self._refuse)
        ZmqConnection.__init__(self, factory)
        self.authenticator.zap_socket = self.socket
        self.addEndpoints([ZmqEndpoint(ZmqEndpointType.bind, ZAP_URL)])
        self._schedule()

    def _refuse(self, domain: str, key: bytes) -> None:
        self.refused += 1
        if self._on_refused is not None:
            try:
                self._on_refused(domain, key)
            except Exception:
                log.failure("counting a refused CurveZMQ key failed")
            return
        now = self.factory.reactor.seconds()
        last = self._warned.get(key)
        if last is None or now - last >= REFUSAL_WARN_EVERY:
            if len(self._warned) > 1000:
                self._warned.clear()  # bounded: a flood of fresh keys cannot grow it
            self._warned[key] = now
            log.warn("CurveZMQ: refused a client on {domain} whose public key {key} is not in "
                     "[security] allowed_client_keys ({refused} refusals so far)",
                     domain=domain or "-", key=key.decode("ascii", "replace"),
                     refused=self.refused, ocd_event="refused.curve")

    def _schedule(self) -> None:
        if self.socket is not None and (self.read_scheduled is None
                                        or not self.read_scheduled.active()):
            self.read_scheduled = self.factory.reactor.callLater(0, self.doRead)

    def doRead(self) -> None:
        """Answer at most a batch of ZAP requests, then reschedule (edge-triggered FD)."""
        if self.read_scheduled is not None:
            if self.read_scheduled.active():
                self.read_scheduled.cancel()
            self.read_scheduled = None
        for _ in range(MAX_BATCH):
            if self.socket is None:
                return
            try:
                request = self.socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            d = Deferred.fromCoroutine(self.authenticator.handle_zap_message(request))
            d.addErrback(lambda f: log.failure("ZAP request failed", f))
        self._schedule()

    def messageReceived(self, message: list[bytes]) -> None:  # pragma: no cover - unused
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<ZapHandler {len(self.authenticator._keys)} keys>"


__all__ = ["CurveClient", "CurveServer", "ZapHandler", "check_key", "client_settings",
           "config_text", "curve_enabled", "new_key_pair", "server_settings"]

