"""Endpoints, socket settings and CURVE: how every link of the pipeline is opened.

Topology (who binds, who connects)::

    capture   ROUTER bind DOGFILTER_FRAMES_ADDR     <- detect DEALER connect   (credits: live drops at source)
    composite PULL   bind DOGFILTER_DETECTIONS_ADDR <- detect PUSH connect
    composite ROUTER bind DOGFILTER_CLASSIFY_ADDR   <- classify DEALER connect (balanced; remote workers join)
    display   PULL   bind DOGFILTER_DISPLAY_ADDR    <- composite PUSH connect
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import zmq
from dogfilter.common.errors import DogfilterError
from dogfilter.common.transport import wire

DEFAULT_ENDPOINTS = {
    "frames": "tcp://127.0.0.1:5551",
    "detections": "tcp://127.0.0.1:5552",
    "classify": "tcp://127.0.0.1:5553",
    "display": "tcp://127.0.0.1:5554",
}
LINK_HWM = 4  # messages queued per link: small, so lag cannot grow


def endpoint(name: str) -> str:
    """The address of a link, from DOGFILTER_<NAME>_ADDR (e.g. DOGFILTER_CLASSIFY_ADDR=tcp://0.0.0.0:5553)."""
    return os.environ.get(f"DOGFILTER_{name.upper()}_ADDR", DEFAULT_ENDPOINTS[name])


def worker_identity(stage: str) -> bytes:
    """A routing id that survives reconnects, unique per process."""
    proc = os.environ.get("HONCHO_PROCESS_NAME", stage)
    return f"{proc}@{socket.gethostname()}:{os.getpid()}".encode()


def make_socket(ctx: zmq.Context, kind: int, *, hwm: int = LINK_HWM, recv_limit: bool = True) -> zmq.Socket:
    s = ctx.socket(kind)
    s.setsockopt(zmq.LINGER, 0)
    s.setsockopt(zmq.SNDHWM, hwm)
    s.setsockopt(zmq.RCVHWM, hwm)
    if recv_limit:  # a peer that sends a frame bigger than this is disconnected by libzmq itself
        s.setsockopt(zmq.MAXMSGSIZE, wire.MAX_PART_BYTES + wire.MAX_HEADER_BYTES)
    if kind in (zmq.PUSH, zmq.DEALER):
        s.setsockopt(zmq.IMMEDIATE, 1)  # queue only to connected peers: a dead peer cannot swallow messages
    if kind == zmq.ROUTER:
        s.setsockopt(zmq.ROUTER_MANDATORY, 1)  # sending to a vanished worker raises instead of dropping silently
    return s


def bind(sock: zmq.Socket, addr: str, what: str) -> None:
    try:
        sock.bind(addr)
    except zmq.ZMQError as e:
        raise DogfilterError(f"cannot listen on {addr} for {what}: {e} (is another pipeline running? "
                             f"set DOGFILTER_{what.upper()}_ADDR to another address)") from None


def curve_server(sock: zmq.Socket, curve_dir: str | None, ctx: zmq.Context) -> Any:
    """Make ``sock`` a CURVE server that admits only clients whose public keys are in ``curve_dir/clients``."""
    if not curve_dir:
        return None
    from zmq.auth import load_certificate
    from zmq.auth.thread import ThreadAuthenticator

    d = Path(curve_dir)
    secret = d / "server.key_secret"
    if not secret.is_file():
        raise DogfilterError(f"no server.key_secret in {d}: create keys with `dogfilter keys {d}`")
    auth = ThreadAuthenticator(ctx)
    auth.start()
    auth.configure_curve(domain="*", location=str(d / "clients"))
    pub, sec = load_certificate(str(secret))
    sock.curve_publickey, sock.curve_secretkey, sock.curve_server = pub, sec, True
    return auth


def curve_client(sock: zmq.Socket, curve_dir: str | None) -> None:
    if not curve_dir:
        return
    from zmq.auth import load_certificate

    d = Path(curve_dir)
    try:
        server_pub, _ = load_certificate(str(d / "server.key"))
        pub, sec = load_certificate(str(d / "client.key_secret"))
    except (OSError, ValueError) as e:
        raise DogfilterError(f"cannot read CURVE keys in {d}: {e}") from None
    sock.curve_serverkey, sock.curve_publickey, sock.curve_secretkey = server_pub, pub, sec
