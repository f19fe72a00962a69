"""How every link of the pipeline is opened: socket settings, who binds, and encryption.

Topology (who binds, who connects; addresses are the ``LINKS`` options, ``DOGFILTER_<LINK>_ADDR``, by default
``ipc://`` sockets in the user's private run folder: ``rundir.py``)::

    capture   ROUTER bind frames      <- detect DEALER connect   (credits: live drops at the source)
    composite ROUTER bind detections  <- detect DEALER connect (file mode: composite confirms each frame)
    composite ROUTER bind classify    <- classify DEALER connect (balanced; remote workers join)
    display   PULL   bind display     <- composite PUSH connect

A link is private by default: an ``ipc://`` socket in a 0700 folder, which no other local user can connect to (a
plain ``tcp://`` link on loopback is open to every local user: said in the log when one binds).  A ``tcp://`` address
beyond loopback refuses to bind unless the link is encrypted and
authenticated with CURVE (``--curve-dir``, keys from ``dogfilter keys``) or the user says ``--allow-plaintext``.
With ``--curve-dir`` every TCP link this process opens is a CURVE link (``ipc://`` links are protected by the
permissions of their folder).  Key secrets must be private (0600): a readable one is refused.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import os
import shutil
import socket
from pathlib import Path
from typing import Any

import zmq

from dogfilter.common.errors import DogfilterError
from dogfilter.common.transport import wire
from dogfilter.common.transport.seal import check_private

log = logging.getLogger("links")
LINK_HWM = 4  # messages queued per link: small, so lag cannot grow
HANDSHAKE_S = 5  # a peer that has not finished ZeroMQ's handshake by then is dropped (libzmq's default: 30 s)
LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1", "[::1]"}


def worker_identity(stage: str) -> bytes:
    """A routing id that survives reconnects, unique per process."""
    proc = os.environ.get("HONCHO_PROCESS_NAME", stage)
    return f"{proc}@{socket.gethostname()}:{os.getpid()}".encode()[:160]


def stats_key(stage: str, identity: bytes) -> str:
    """How one of several processes of a stage signs its counters (``stage@worker``, at most 32 characters), so
    the display adds them up instead of showing whichever spoke last."""
    ident = identity.decode(errors="replace")
    key = f"{stage}@{ident}"
    if len(key) > 32:  # a long host name: keep a readable start and make it unique
        key = f"{stage}@{ident[:26 - len(stage)]}~{hashlib.blake2s(identity, digest_size=2).hexdigest()}"
    return key[:32]


def is_local(addr: str) -> bool:
    """ipc/inproc, or TCP on a loopback address."""
    if not addr.startswith("tcp://"):
        return True
    host = addr[len("tcp://"):].rsplit(":", 1)[0]
    if host in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name or an interface: assume it reaches beyond this machine


def _listening(path: str) -> bool:
    """Someone accepts connections on the Unix socket ``path`` (libzmq would silently take an ipc path over)."""
    if not path or path.startswith("@") or not os.path.exists(path):
        return False
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(1.0)
        try:
            s.connect(path)
        except OSError:
            return False  # a socket file left behind by a process that died: libzmq replaces it
    return True


def make_socket(ctx: zmq.Context, kind: int, *, hwm: int = LINK_HWM, recv_limit: bool = True) -> zmq.Socket:
    s = ctx.socket(kind)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.SNDHWM, hwm)
    s.setsockopt(zmq.RCVHWM, hwm)
    s.setsockopt(zmq.HANDSHAKE_IVL, HANDSHAKE_S * 1000)  # not dogfilter (or not ZeroMQ): said soon, by the monitor
    if recv_limit:  # a peer that sends a frame bigger than this is disconnected by libzmq itself
        s.setsockopt(zmq.MAXMSGSIZE, wire.LIMITS.max_message_bytes)
    if kind in (zmq.PUSH, zmq.DEALER):
        s.setsockopt(zmq.IMMEDIATE, 1)  # queue only to connected peers: a dead peer cannot swallow messages
    if kind == zmq.ROUTER:
        s.setsockopt(zmq.ROUTER_MANDATORY, 1)  # sending to a vanished worker raises instead of dropping silently
    return s


class Links:
    """Opens the sockets of one process: binds (checked for exposure) and connects, CURVE where asked."""

    def __init__(self, curve_dir: str | None = None, allow_plaintext: bool = False,
                 ctx: zmq.Context | None = None) -> None:
        self.ctx = ctx or zmq.Context.instance()
        self.curve_dir = Path(curve_dir) if curve_dir else None
        self.allow_plaintext = allow_plaintext
        self.sockets: list[zmq.Socket] = []
        self._auth: Any = None

    def bind(self, kind: int, addr: str, what: str, **opts: Any) -> zmq.Socket:
        encrypted = self.curve_dir is not None and addr.startswith("tcp://")
        if not is_local(addr) and not encrypted and not self.allow_plaintext:
            raise DogfilterError(f"refusing to listen on {addr} ({what}) unencrypted: anyone who can reach it could "
                                 "read and forge frames. Give --curve-dir DIR (keys from `dogfilter keys DIR`), or "
                                 "--allow-plaintext inside a trusted network")
        if addr.startswith("tcp://") and not encrypted:
            log.warning("%s link on %s is open to every local user (no CURVE): the default, ipc:// in the private "
                        "run folder, is not", what, addr)
        if addr.startswith("ipc://") and _listening(addr[len("ipc://"):]):
            raise DogfilterError(f"cannot listen on {addr} for {what}: another pipeline listens there (give this one "
                                 "another --run-dir, or stop the other)")
        sock = self._socket(kind, **opts)
        if encrypted:
            self._curve_server(sock)
        try:
            sock.bind(addr)
        except zmq.ZMQError as e:
            raise DogfilterError(f"cannot listen on {addr} for {what}: {e} (is another pipeline running? "
                                 f"set DOGFILTER_{what.upper()}_ADDR to another address)") from None
        return sock

    def connect(self, kind: int, addr: str, **opts: Any) -> zmq.Socket:
        sock = self._socket(kind, **opts)
        if self.curve_dir is not None and addr.startswith("tcp://"):
            self._curve_client(sock)
        try:
            sock.connect(addr)
        except zmq.ZMQError as e:
            raise DogfilterError(f"cannot connect to {addr}: {e}") from None
        return sock

    def _socket(self, kind: int, routing_id: bytes | None = None, **opts: Any) -> zmq.Socket:
        sock = make_socket(self.ctx, kind, **opts)
        if routing_id is not None:
            sock.setsockopt(zmq.ROUTING_ID, routing_id)
        self.sockets.append(sock)
        return sock

    def _curve_server(self, sock: zmq.Socket) -> None:
        from zmq.auth import load_certificate
        from zmq.auth.thread import ThreadAuthenticator

        d = self.curve_dir
        assert d is not None
        secret = d / "server.key_secret"
        if not secret.is_file():
            raise DogfilterError(f"no server.key_secret in {d}: create keys with `dogfilter keys {d}`")
        check_private(secret, "CURVE key secret")
        if self._auth is None:
            self._auth = ThreadAuthenticator(self.ctx)
            self._auth.start()
            self._auth.configure_curve(domain="*", location=str(d / "clients"))
        pub, sec = load_certificate(str(secret))
        sock.curve_publickey, sock.curve_secretkey, sock.curve_server = pub, sec, True

    def _curve_client(self, sock: zmq.Socket) -> None:
        from zmq.auth import load_certificate

        d = self.curve_dir
        assert d is not None
        try:
            check_private(d / "client.key_secret", "CURVE key secret")
            server_pub, _ = load_certificate(str(d / "server.key"))
            pub, sec = load_certificate(str(d / "client.key_secret"))
        except (OSError, ValueError) as e:
            raise DogfilterError(f"cannot read CURVE keys in {d}: {e}") from None
        sock.curve_serverkey, sock.curve_publickey, sock.curve_secretkey = server_pub, pub, sec

    def discard(self, sock: zmq.Socket) -> None:
        """Close one socket (a link to a host that is gone) before the others."""
        if sock in self.sockets:
            self.sockets.remove(sock)
        sock.close(linger=0)

    def close(self) -> None:
        for s in self.sockets:
            s.close(linger=0)
        self.sockets.clear()
        if self._auth is not None:
            self._auth.stop()
            self._auth = None


def create_keys(folder: str | Path) -> Path:
    """CURVE key pairs for a pipeline host (server) and its remote peers (client), secrets 0600."""
    import zmq.auth

    d = Path(folder)
    old = os.umask(0o077)  # every file private from its first byte
    try:
        (d / "clients").mkdir(parents=True, exist_ok=True)
        for name in ("server", "client"):
            _, secret = zmq.auth.create_certificates(str(d), name)
            os.chmod(secret, 0o600)
        shutil.copy(d / "client.key", d / "clients" / "client.key")
    finally:
        os.umask(old)
    return d
