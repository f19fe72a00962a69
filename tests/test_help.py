"""Every command's ``--help`` is complete: each option (and each sub-command's) has a help text, and the help shows
the option's default where it has one.  The parsers are built in-process from the functions the commands use, and
each console script's ``--help`` is run once as a real process."""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest

from dogfilter.common.stage import NAMES

pytestmark = pytest.mark.timeout(60)

SERVICES = NAMES

# Gaps in files these tests do not own, (prog, option) -> why; each is an xfail until fixed (then delete it here).


def _service_parser(stage: str) -> argparse.ArgumentParser:
    from dogfilter.common import options

    m = importlib.import_module(f"dogfilter.services.{stage}")
    return options.build_parser(f"dogfilter-{m.STAGE}", m.__doc__, m.GROUPS, environ={})


def _launcher() -> argparse.ArgumentParser:
    from dogfilter.commands import run

    return run.build_parser()


def _train() -> argparse.ArgumentParser:
    from dogfilter.commands.train import cli

    return cli.build_parser()


def _bench() -> argparse.ArgumentParser:
    from dogfilter.commands import bench

    return bench.build_parser()


def _bench_detect() -> argparse.ArgumentParser:
    from dogfilter.commands import bench_detect

    return bench_detect.build_parser()


PARSERS: dict[str, Callable[[], argparse.ArgumentParser]] = {
    "dogfilter": _launcher,
    **{f"dogfilter-{s}": (lambda s=s: _service_parser(s)) for s in SERVICES},
    "dogfilter-train": _train,
    "dogfilter-bench": _bench,
    "bench_detect": _bench_detect,
}


def walk(parser: argparse.ArgumentParser) -> Iterator[tuple[argparse.ArgumentParser, argparse.Action]]:
    """Every action of the parser and of its sub-commands (recursively), without -h and the sub-parser actions."""
    seen: set[int] = set()
    todo = [parser]
    while todo:
        p = todo.pop(0)
        if id(p) in seen:
            continue
        seen.add(id(p))
        for action in p._actions:  # argparse has no public list of a parser's actions
            if isinstance(action, argparse._HelpAction):
                continue
            if isinstance(action, argparse._SubParsersAction):
                todo.extend(action.choices.values())
                continue
            yield p, action


def shown_help(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    """The action's help as ``--help`` prints it (the formatter's additions and %(default)s expanded)."""
    return parser._get_formatter()._expand_help(action)


def renderings(default: object) -> set[str]:
    """Ways a help text may write this default."""
    out = {str(default)}
    if isinstance(default, (list, tuple)):
        out |= {",".join(map(str, default)), " ".join(map(str, default))}
    if isinstance(default, float):
        out |= {f"{default:g}", repr(default)}
    if default is True:
        out |= {"on", "true", "True"}
    return out


def is_empty(default: object) -> bool:
    """An empty string or list: shown as "none" or in words, so only the word "default" is looked for."""
    return isinstance(default, (str, list, tuple)) and not default


def has_default(action: argparse.Action) -> bool:
    d = action.default
    return bool(action.option_strings) and not action.required and d is not None and d is not False \
        and d is not argparse.SUPPRESS


def problems(name: str) -> list[tuple[str, str, str]]:
    """(prog, option, what is wrong) for every incomplete help text of one command."""
    out = []
    for p, action in walk(PARSERS[name]()):
        label = "/".join(action.option_strings) or action.dest
        if action.help == argparse.SUPPRESS:
            continue
        if not (action.help or "").strip():
            out.append((p.prog, label, "no help text"))
            continue
        if has_default(action):
            text = " ".join(shown_help(p, action).split())
            shown = "default" in text.lower() and (
                is_empty(action.default) or any(r in text for r in renderings(action.default)))
            if not shown:
                out.append((p.prog, label, f"help does not show its default {action.default!r}: {text!r}"))
    return out


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Declared defaults, not this shell's DOGFILTER_* settings."""
    for k in list(os.environ):
        if k.startswith("DOGFILTER_"):
            monkeypatch.delenv(k)


@pytest.mark.unit
@pytest.mark.parametrize("name", list(PARSERS))
def test_every_option_has_help_and_shows_its_default(name: str) -> None:
    found = problems(name)
    assert not found, "\n".join(f"{prog} {opt}: {why}" for prog, opt, why in found)


@pytest.mark.unit
def test_sub_commands_are_walked() -> None:
    progs = {p.prog for p, _ in walk(_train())}
    assert {f"dogfilter-train {c}" for c in ("ols", "rf-ols", "ridge", "sweep", "cnn", "fernet", "evaluate",
                                             "bench", "table")} <= progs
    progs = {p.prog for p, _ in walk(_launcher())}
    assert {f"dogfilter {c}" for c in ("file", "image", "live", "keys")} <= progs


@pytest.mark.unit
def test_the_check_catches_gaps() -> None:
    p = argparse.ArgumentParser(prog="x")
    p.add_argument("--bare", type=int, default=3)
    p.add_argument("--said", type=int, default=3, help="count (default: %(default)s)")
    p.add_argument("--flag", action="store_true", help="a flag")
    PARSERS["x"] = lambda: p
    try:
        assert [(o, why.split(":")[0]) for _, o, why in problems("x")] == [("--bare", "no help text")]
        p._actions[-3].help = "count"  # --bare, now with a help text but no default shown
        assert [o for _, o, _ in problems("x")] == ["--bare"]
    finally:
        del PARSERS["x"]


# (module, arguments before --help, whether the output must mention a default): `dogfilter` itself has only
# sub-commands, so its options (and their defaults) are checked through `dogfilter file --help`.
COMMANDS = [("dogfilter.commands.run", (), False), ("dogfilter.commands.run", ("file",), True),
            *((f"dogfilter.services.{s}", (), True) for s in SERVICES),
            ("dogfilter.commands.train.cli", (), True), ("dogfilter.commands.train.cli", ("fernet",), True),
            ("dogfilter.commands.bench", (), True), ("dogfilter.commands.bench_detect", (), True)]


@pytest.mark.system
def test_help_runs_as_a_process() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOGFILTER_")}
    procs = {(m, *args, "--help"): (subprocess.Popen([sys.executable, "-m", m, *args, "--help"], text=True, env=env,
                                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT), want)
             for m, args, want in COMMANDS}
    bad = []
    for cmd, (proc, want) in procs.items():
        m = " ".join(cmd)
        try:
            out, _ = proc.communicate(timeout=45)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
            bad.append(f"{m}: --help took over 45 s")
            continue
        if proc.returncode != 0 or "Traceback" in out or (want and "default" not in out):
            bad.append(f"{m}: exit {proc.returncode}\n{out[-2000:]}")
    assert not bad, "\n".join(bad)
