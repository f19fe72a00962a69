"""Options, declared once.

Each stage declares its options as a tuple of :class:`Option` (``OPTIONS`` in its file in ``services/``); this
module turns declarations into a command line (``--min-face``), reads the same option from the environment
(``DOGFILTER_MIN_FACE``, which honcho fills from ``.env``), writes the help text with the default, and documents
them for ``.env`` (``dogfilter options``).  The launcher (``dogfilter file|image|live``) builds its own command line
from the same declarations, so an option has one name, one default and one help text everywhere.

Options every service shares (``PIPELINE``) and the link addresses (``LINKS``) are declared here too.
"""

from __future__ import annotations

import argparse
import math
import os
import textwrap
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from dogfilter.common.errors import DogfilterError

ENV_PREFIX = "DOGFILTER_"
LIST_SEP = ","  # a list option in the environment: DOGFILTER_MASK=happy=a.png,sad=b.png


@dataclass(frozen=True)
class Option:
    """One option of one stage (or of all of them): ``--name-with-dashes`` and ``DOGFILTER_NAME``.

    ``kind``: ``value`` (one value), ``flag`` (on/off; ``1``/``0`` in the environment) or ``list`` (repeatable;
    comma-separated in the environment).  ``launcher``: also offered by ``dogfilter file|image|live``.  ``const``:
    a value option whose value may be left out (``--virtual-camera`` alone means ``const``).
    """

    name: str
    default: Any
    help: str
    type: Callable[[str], Any] = str
    choices: Sequence[Any] | None = None
    kind: str = "value"
    metavar: str | None = None
    launcher: bool = False
    const: Any = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.name.upper()

    def from_env(self, environ: dict[str, str] | os._Environ) -> Any:
        """The default, or the environment's value (still a string: argparse converts it with ``type``)."""
        raw = environ.get(self.env)
        if raw is None or raw == "":
            return self.default
        if self.kind == "flag":
            return raw.strip().lower() in ("1", "true", "yes", "on")
        if self.kind == "list":
            return [self.type(v.strip()) for v in raw.split(LIST_SEP) if v.strip()]
        return raw

    def to_env(self, value: Any) -> str | None:
        """The environment form of a parsed value (None: leave it unset)."""
        if value is None:
            return None
        if self.kind == "flag":
            return "1" if value else "0"
        if self.kind == "list":
            return LIST_SEP.join(str(v) for v in value)
        return str(value)

    def describe(self) -> str:
        shown = self.default
        if self.kind == "flag":
            shown = "off" if not self.default else "on"
        elif self.kind == "list":
            shown = LIST_SEP.join(map(str, self.default)) if self.default else "none"
        elif shown is None or shown == "":
            shown = "none"
        return f"{self.help} (default: {shown}; env {self.env})"

    def add_to(self, parser: argparse.ArgumentParser | argparse._ArgumentGroup,
               environ: dict[str, str] | os._Environ) -> None:
        default = self.from_env(environ)
        if self.kind == "flag":
            parser.add_argument(self.flag, dest=self.name, action=argparse.BooleanOptionalAction, default=default,
                                help=self.describe())
        elif self.kind == "list":
            parser.add_argument(self.flag, dest=self.name, action=_Append, type=self.type, default=list(default or []),
                                metavar=self.metavar, help=self.describe() + "; repeatable")
        else:
            optional = {"nargs": "?", "const": self.const} if self.const is not None else {}
            parser.add_argument(self.flag, dest=self.name, type=self.type, default=default, choices=self.choices,
                                metavar=self.metavar, help=self.describe(), **optional)


class _Append(argparse.Action):
    """Like argparse's "append", except that the first use replaces the default instead of adding to it."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        current = getattr(namespace, self.dest, None)
        setattr(namespace, self.dest, [*(() if current is self.default or current is None else current), values])


def _finite(v: Any, text: str) -> Any:
    """nan and inf parse as floats but are no setting: a deadline of inf waits for ever, one of nan never waits."""
    if isinstance(v, float) and not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return v


def positive(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    """A type that accepts only values > 0 (argparse shows the error as one line)."""

    def convert(text: str) -> Any:
        v = _finite(kind(text), text)
        if not v > 0:
            raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
        return v

    convert.__name__ = kind.__name__
    return convert


def non_negative(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        v = _finite(kind(text), text)
        if v < 0:
            raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
        return v

    convert.__name__ = kind.__name__
    return convert


# ------------------------------------------------------------------------------------------- shared declarations

PIPELINE: tuple[Option, ...] = (
    Option("mode", "live", "live: the newest frame wins, stale frames are dropped and counted; file: every frame, in "
           "order, with back-pressure", choices=("live", "file")),
    Option("log_level", "INFO", "logging level", choices=("DEBUG", "INFO", "WARNING", "ERROR"), type=str.upper),
    Option("curve_dir", None, "folder of CURVE keys (`dogfilter keys DIR`): encrypts and authenticates every TCP link "
           "this process binds or connects", metavar="DIR"),
    Option("allow_plaintext", False, "let a link bind beyond loopback without CURVE (only inside a trusted network)",
           kind="flag"),
    Option("max_pixels", 50_000_000, "largest frame, in pixels, any stage accepts; bigger inputs are refused with one "
           "line (raise it for huge photos: memory grows with it)", type=positive(int), launcher=True),
    Option("max_age_ms", 200.0, "live: a frame older than this (since capture) is never sent on or shown",
           type=positive(float), launcher=True),
    Option("web_token", None, "the token the browser view and the browser camera ask for when they listen beyond "
           "loopback (default: derived from the pipeline secret, so every stage has the same; logged with the "
           "address)", metavar="TOKEN"),
    Option("web_hosts", [], "names the browser view and the browser camera answer to besides localhost names and IP "
           "addresses (a request whose Host or Origin names another, a DNS rebinding or a page of another site, is "
           "refused)", kind="list", metavar="NAME", launcher=True),
    Option("secret_file", None, "the pipeline's shared secret: capture seals each frame with it, composite and display "
           "accept only sealed frames and end-of-streams (created 0600 if missing; default: secret in the run folder)",
           metavar="FILE"),
    Option("run_dir", None, "the run folder: {run} in a link address, and the secret's default place; made 0700 on "
           "first use, refused if another user owns it or may open it (default $XDG_RUNTIME_DIR/dogfilter, else "
           "/tmp/dogfilter-UID)", metavar="DIR"),
    Option("health_port", 0, "serve /healthz, /readyz and /metrics on this port (0: off), for Kubernetes probes and "
           "Prometheus: alive while the stage's loop turns, ready once it is up (common/health.py)",
           type=non_negative(int), metavar="PORT"),
    Option("health_host", "127.0.0.1", "address the health port listens on (0.0.0.0 in a container, so the kubelet "
           "can reach it; it shows no frames, names or keys)", metavar="HOST"),
)

# private by default: sockets in the user's 0700 run folder (common/transport/rundir.py), which no other local user
# can connect to; links to other machines are tcp:// with CURVE (deploy/README.md)
LINK_DEFAULTS = {name: f"ipc://{{run}}/{name}" for name in ("frames", "detections", "classify", "display", "returns")}
LINK_HELP = {
    "frames": "capture binds it (ROUTER), detect workers connect and ask for frames",
    "detections": "composite binds it (ROUTER), detect workers send frames with their faces",
    "classify": "composite binds it (ROUTER), classify workers connect (here or on other machines) and ask for crops",
    "display": "display binds it (PULL), composite pushes painted frames",
    "returns": "capture binds it (PULL) when the browser camera is on: display sends each browser tab's filtered "
               "frames back",
}
LINKS: dict[str, Option] = {
    name: Option(f"{name}_addr", addr, f"address of the {name} link: {LINK_HELP[name]}", metavar="ADDR")
    for name, addr in LINK_DEFAULTS.items()
}


def links(*names: str) -> tuple[Option, ...]:
    return tuple(LINKS[n] for n in names)


# ------------------------------------------------------------------------------------------- parsing


class Parser(argparse.ArgumentParser):
    """argparse, with its errors as a DogfilterError: one line and exit code 2, like every other user error."""

    def error(self, message: str) -> NoReturn:
        raise DogfilterError(message)


def build_parser(prog: str, description: str, groups: Iterable[tuple[str, Sequence[Option]]],
                 environ: dict[str, str] | os._Environ | None = None) -> argparse.ArgumentParser:
    environ = os.environ if environ is None else environ
    p = Parser(prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    seen: set[str] = set()
    for title, options in groups:
        g = p.add_argument_group(title)
        for opt in options:
            if opt.name not in seen:
                seen.add(opt.name)
                opt.add_to(g, environ)
    return p


def parse(prog: str, description: str, groups: Iterable[tuple[str, Sequence[Option]]],
          argv: Sequence[str] | None = None) -> argparse.Namespace:
    return build_parser(prog, description, groups).parse_args(argv)


def env_file(groups: Iterable[tuple[str, Sequence[Option]]]) -> str:
    """Every option as a commented ``.env`` line with its default: the documentation of the environment."""
    out, seen = [], set()
    for title, options in groups:
        out.append(f"# --- {title}")
        for opt in options:
            if opt.name in seen:
                continue
            seen.add(opt.name)
            out += textwrap.wrap(opt.help, 116, initial_indent="# ", subsequent_indent="#   ")
            value = opt.to_env(opt.default)
            out.append(f"#{opt.env}={'' if value is None else value}")
    return "\n".join(out) + "\n"
