"""A stage's health, for orchestrators: ``--health-port`` serves ``/healthz``, ``/readyz`` and ``/metrics``.

Kubernetes (liveness and readiness probes, deploy/k8s/) and compose (healthcheck) ask a stage whether it is alive
and ready without spawning a process per probe.  Every stage's loop calls :func:`beat` on each turn (at least every
heartbeat, 1 s, when idle) and :func:`ready` once it is up (bound or connected, its model loaded):

``/healthz``  200 while the loop turned in the last ``STALE_S`` seconds, else 503 (a hung loop: restart me)
``/readyz``   200 once the stage said it is ready and still alive, else 503
``/metrics``  Prometheus text: ``dogfilter_up``, seconds since the loop last turned, and the gauges the stage
              registers (:func:`gauge`): a classify worker's busy fraction, a composite's jobs waiting for a worker

It shows no frames, no stream names and no keys (so it needs no token; keep it off the public side anyway: the
NetworkPolicies of deploy/k8s/ let only the node and Prometheus reach it).  Hostile clients: at most
``MAX_CLIENTS`` at once (more are refused), a client that stalls is dropped after ``TIMEOUT_S``, only ``GET``.
The options (``--health-port``, ``--health-host``) are every stage's (``options.PIPELINE``).  Off
(``--health-port 0``, the default) it costs one ``time.monotonic()`` a loop turn.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from dogfilter.common.errors import DogfilterError

STALE_S = 15.0  # a loop that has not turned for this long is hung (it turns every heartbeat, 1 s, when idle)
MAX_CLIENTS = 8
TIMEOUT_S = 5.0

_last_beat = time.monotonic()
_ready = False
_gauges: dict[str, tuple[str, str, Callable[[], float]]] = {}


def beat() -> None:
    """The stage's loop turned."""
    global _last_beat
    _last_beat = time.monotonic()


def ready(yes: bool = True) -> None:
    global _ready
    _ready = yes
    beat()


def gauge(name: str, help_text: str, read: Callable[[], float], kind: str = "gauge") -> None:
    """Export ``dogfilter_<name>`` on /metrics, read at each scrape (``kind``: gauge, or counter)."""
    _gauges[f"dogfilter_{name}"] = (help_text, kind, read)


def status() -> tuple[bool, bool, float]:
    """(alive, ready, seconds since the loop last turned)."""
    age = time.monotonic() - _last_beat
    alive = age < STALE_S
    return alive, alive and _ready, age


def metrics_text(stage: str) -> str:
    alive, _, age = status()
    lines = [f"# HELP dogfilter_up 1 while the {stage} loop turns", "# TYPE dogfilter_up gauge",
             f'dogfilter_up{{stage="{stage}"}} {int(alive)}',
             "# HELP dogfilter_loop_age_seconds seconds since the loop last turned",
             "# TYPE dogfilter_loop_age_seconds gauge", f'dogfilter_loop_age_seconds{{stage="{stage}"}} {age:.3f}']
    for name, (help_text, kind, read) in sorted(_gauges.items()):
        try:
            value = float(read())
        except Exception:  # a gauge that cannot be read is left out, never a failed scrape
            continue
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", f'{name}{{stage="{stage}"}} {value:.6g}']
    return "\n".join(lines) + "\n"


class _Handler(BaseHTTPRequestHandler):
    stage = ""
    slots: threading.BoundedSemaphore
    timeout = TIMEOUT_S
    server_version = "dogfilter"
    sys_version = ""

    def do_GET(self) -> None:  # http.server's name
        if not self.slots.acquire(blocking=False):
            self._send(503, "busy\n")
            return
        try:
            alive, is_ready, age = status()
            path = self.path.split("?", 1)[0]
            if path == "/healthz":
                self._send(200 if alive else 503, f"{'ok' if alive else 'stale'} {self.stage} {age:.1f}s\n")
            elif path == "/readyz":
                self._send(200 if is_ready else 503, f"{'ready' if is_ready else 'not ready'} {self.stage}\n")
            elif path == "/metrics":
                self._send(200, metrics_text(self.stage), "text/plain; version=0.0.4; charset=utf-8")
            else:
                self._send(404, "not found\n")
        finally:
            self.slots.release()

    def _send(self, code: int, body: str, kind: str = "text/plain; charset=utf-8") -> None:
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)
        self.close_connection = True

    def log_message(self, *_: Any) -> None:  # probes every few seconds: not worth a log line each
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 16

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that went away or sent junk: never a traceback


def serve(stage: str, port: int, host: str = "127.0.0.1") -> _Server | None:
    """Start the health server in a daemon thread (``port`` 0: none). A port in use is one line, exit 2."""
    if not port:
        return None
    if not 0 < port < 65536:
        raise DogfilterError(f"--health-port must be 1..65535 (0: off), got {port}")
    handler = type("HealthHandler", (_Handler,), {"stage": stage, "slots": threading.BoundedSemaphore(MAX_CLIENTS)})
    try:
        server = _Server((host, port), handler)
    except OSError as e:
        raise DogfilterError(f"cannot serve health on {host}:{port}: {e.strerror}") from None
    threading.Thread(target=server.serve_forever, daemon=True, name="health").start()
    return server
