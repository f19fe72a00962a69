"""Stored messages pin the wire format: every kind decodes to what it said, encodes back to the same bytes, and
every stored hostile message is refused with its fault (``tests/data/wire/make_golden.py`` writes them)."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest

from dogfilter.common.transport import wire

pytestmark = [pytest.mark.unit, pytest.mark.timeout(30)]

DIR = Path(__file__).parent / "data" / "wire"
_spec = importlib.util.spec_from_file_location("make_golden", DIR / "make_golden.py")
assert _spec is not None and _spec.loader is not None
golden = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(golden)
VALID, INVALID = golden.valid(), golden.invalid()


@pytest.fixture(autouse=True)
def _default_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wire, "LIMITS", wire.Limits(max_pixels=50_000_000))


def test_every_kind_and_every_stored_file_is_pinned() -> None:
    assert {m.kind for m in VALID.values()} == wire.KINDS
    assert {p.stem for p in DIR.glob("*.msgpack")} == set(VALID) | set(INVALID)


@pytest.mark.parametrize("name", sorted(VALID))
def test_a_stored_message_decodes_to_its_value_and_encodes_to_its_bytes(name: str) -> None:
    stored = golden.unpack((DIR / f"{name}.msgpack").read_bytes())
    got, want = wire.decode(stored), VALID[name]
    assert (got.kind, got.stream, got.frame, got.epoch) == (want.kind, want.stream, want.frame, want.epoch)
    assert (got.ts, got.faces, got.meta) == (want.ts, want.faces, want.meta)
    for part in ("image", "crops"):
        a, b = getattr(got, part), getattr(want, part)
        assert (a is None and b is None) or np.array_equal(a, b), part
    assert [bytes(memoryview(f)) for f in wire.encode(got)] == stored


@pytest.mark.parametrize("name", sorted(INVALID))
def test_a_stored_hostile_message_is_refused_with_its_fault(name: str) -> None:
    _, fault, why = INVALID[name]
    with pytest.raises(wire.WireError, match=re.escape(why)) as e:
        wire.decode(golden.unpack((DIR / f"{name}.msgpack").read_bytes()))
    assert e.value.fault == fault
