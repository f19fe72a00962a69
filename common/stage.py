"""What every stage is: one handler shape, and the one list of the five stages.

**The handler shape.**  Each stage's handler (``Capture``, ``Detect``, ``Classify``, ``Composite``, ``Display``) is a
pure object with the same entry points, and the clock is always passed in (a handler never reads it to decide):

* ``on_message(msg, now) -> list[Message]``: a message came in; what goes out because of it (often nothing yet);
* ``tick(now) -> list[Message]``: time passed; what is due now (capture's frames, composite's painted frames once
  their emotions are back or their deadline passed, classify's batch once its wait is over);
* ``wait_s(now) -> float``: how long the loop may sleep before ``tick`` has something to do (at most ``HEARTBEAT_S``).

``now`` is wall-clock seconds (``time.time()``), the clock capture stamps frames with (``ts.capture``, sealed), so a
frame's age is ``now - ts.capture`` in every stage (:func:`too_old`).  Time stamps (``Message.stamp``: capture's,
when a frame was made, and each stage's for the latency tables) are measurements, not decisions: they read the
clock themselves.  A handler that cannot take a message for now
raises :class:`Busy` (composite in file mode: the sender sends it again shortly).  Composite, which hands crops jobs
to classify workers, takes their replies through ``on_reply(peer, job, reply, now)``, a variant with the job the
reply is for.  The socket loops in ``services/`` stay thin around these calls; ``commands/inline.py`` chains them
without sockets; tests drive them with a fake clock (tests/test_handlers.py).

**The stage list.**  :data:`STAGES` declares the five stages once (name, module, console script, processes started
by default, whether a crash restarts it); the launcher (``commands/run.py``), the one-shot path, the benchmarks and
the tests take their lists from it.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from dogfilter.common.options import Option
    from dogfilter.common.transport.wire import Message


class Busy(Exception):
    """Raised by ``on_message``: the message is not taken for now (its sender sends it again shortly)."""


class Handler(Protocol):
    """The shape every stage's handler has (see the module's text)."""

    def on_message(self, msg: Message, now: float) -> list[Message]: ...

    def tick(self, now: float) -> list[Message]: ...

    def wait_s(self, now: float) -> float: ...


def too_old(msg: Message, now: float, max_age_s: float) -> bool:
    """Live means live: a frame captured more than ``max_age_s`` before ``now`` is not worked on, sent on or shown
    (a message without capture's time stamp is not too old)."""
    return now - msg.ts.get("capture", now) > max_age_s


def epoch_order(known: int | None, epoch: int) -> Literal["old", "same", "new"]:
    """A message's epoch (when its capture started) against the one a stage knows for its stream: ``old`` (from
    before capture restarted: dropped), ``same``, or ``new`` (a new stream, or a restarted capture: reset it)."""
    if known is None or epoch > known:
        return "new"
    return "old" if epoch < known else "same"


@dataclass(frozen=True)
class Stage:
    """One stage of the pipeline, as the launcher, the one-shot path, the benchmarks and the tests know it."""

    name: str
    count: int = 1  # processes the launcher starts by default
    worker: bool = False  # stateless: the launcher restarts it when it crashes

    @property
    def module_name(self) -> str:
        return f"dogfilter.services.{self.name}"

    @property
    def script(self) -> str:
        """Its console script (pyproject.toml) and program name."""
        return f"dogfilter-{self.name}"

    def module(self) -> ModuleType:
        return importlib.import_module(self.module_name)

    def options(self) -> Sequence[Option]:
        """The options declared in the stage's file."""
        opts: Sequence[Option] = self.module().OPTIONS
        return opts

    def groups(self) -> list[tuple[str, Sequence[Option]]]:
        """Its options with those of every stage and its links, in groups (its parser, the launcher's arguments)."""
        groups: list[tuple[str, Sequence[Option]]] = self.module().GROUPS
        return groups


#: the five stages, in pipeline order (frames flow capture → display)
STAGES: tuple[Stage, ...] = (
    Stage("capture"),
    Stage("detect", worker=True),
    Stage("classify", worker=True),
    Stage("composite"),
    Stage("display"),
)
NAMES: tuple[str, ...] = tuple(s.name for s in STAGES)
BY_NAME: dict[str, Stage] = {s.name: s for s in STAGES}
WORKERS: tuple[str, ...] = tuple(s.name for s in STAGES if s.worker)


def stage(name: str) -> Stage:
    return BY_NAME[name]
