"""--connect names: every address a name gives, looked up again; failures logged once, never raised (the fleet
tests in test_fleet.py show the same with real processes in network namespaces)."""

from __future__ import annotations

import logging
import socket

import pytest

from dogfilter.common.transport import discovery
from dogfilter.common.transport.discovery import Hosts, Resolver
from dogfilter.common.transport.metrics import Counters

pytestmark = [pytest.mark.system, pytest.mark.timeout(30)]


class FakeDNS:
    def __init__(self) -> None:
        self.answer: list[str] | int = []

    def __call__(self, host: str, port: int) -> list[str]:
        if isinstance(self.answer, int):
            raise socket.gaierror(self.answer, "fake failure")
        return list(self.answer)


def test_which_addresses_are_names() -> None:
    assert discovery.name_of("tcp://pipelines:5553") == ("pipelines", 5553)
    assert discovery.name_of("tcp://10.0.0.1:5553") is None and discovery.name_of("tcp://[::1]:5553") is None
    assert discovery.name_of("ipc:///tmp/x") is None and discovery.name_of("tcp://*:5553") is None
    assert discovery.with_port("tcp://10.0.0.1:5551", 5552) == "tcp://10.0.0.1:5552"
    assert discovery.endpoint("fd00::1", 5553) == "tcp://[fd00::1]:5553"


def test_a_name_is_every_address_it_gives_and_changes_are_followed(caplog) -> None:
    log = logging.getLogger("t")
    dns = FakeDNS()
    dns.answer = ["10.0.0.1", "10.0.0.2"]
    counters = Counters("t", log)
    r = Resolver(["tcp://pipelines:5553", "tcp://10.9.9.9:5553"], 1.0, log, counters, lookup=dns)
    opened, closed = [], []
    hosts = Hosts(r, lambda a: opened.append(a) or a, closed.append, lambda a, link: [], log, counters)
    assert hosts.refresh() and opened == ["tcp://10.0.0.1:5553", "tcp://10.0.0.2:5553", "tcp://10.9.9.9:5553"]
    assert not hosts.refresh()  # nothing new
    dns.answer = ["10.0.0.2", "10.0.0.3"]
    r.resolve_all()
    assert hosts.refresh() and closed == ["tcp://10.0.0.1:5553"] and opened[-1] == "tcp://10.0.0.3:5553"
    with caplog.at_level(logging.INFO):
        dns.answer = socket.EAI_AGAIN  # the DNS is down for a while: keep what we know
        for _ in range(5):
            r.resolve_all()
        assert sorted(hosts.links) == ["tcp://10.0.0.2:5553", "tcp://10.0.0.3:5553", "tcp://10.9.9.9:5553"]
        dns.answer = socket.EAI_NONAME  # the name is gone: so are its hosts
        for _ in range(5):
            r.resolve_all()
        hosts.refresh()
        assert list(hosts.links) == ["tcp://10.9.9.9:5553"]
        dns.answer = ["10.0.0.4"]
        r.resolve_all()
        hosts.refresh()
    said = [rec.getMessage() for rec in caplog.records]
    assert sum("cannot resolve pipelines" in m for m in said) == 2, said  # once per kind of failure, not per look-up
    assert any("pipelines resolves again" in m for m in said)
    assert "tcp://10.0.0.4:5553" in hosts.links and counters["unresolved_names"] == 10


def test_a_name_that_never_resolves_is_no_crash() -> None:
    log = logging.getLogger("t")
    r = Resolver(["tcp://no-such-host.invalid:5553"], 0.05, log, Counters("t", log)).start()
    try:
        assert r.endpoints() == []
    finally:
        r.stop()


def test_detect_connect_wants_tcp_host_and_port_in_one_line() -> None:
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "dogfilter.services.detect", "--connect", "ipc:///tmp/frames"],
                       capture_output=True, text=True, timeout=25)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--connect takes tcp://HOST:PORT" in r.stderr, r.stderr
