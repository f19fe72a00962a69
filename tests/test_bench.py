"""The benchmark command runs end to end with tiny counts, so it cannot rot (figures are printed, not asserted)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.system


@pytest.mark.timeout(400)
def test_quick_benchmark_prints_every_section_and_writes_json(tmp_path) -> None:
    out = tmp_path / "bench.json"
    r = subprocess.run([sys.executable, "-m", "dogfilter.commands.bench", "--quick", "--json", str(out)], cwd=ROOT,
                       capture_output=True, text=True, timeout=380)
    assert r.returncode == 0, r.stderr[-2000:]
    for heading in ("Each stage alone", "Transport", "Classifier", "End to end", "tutorial's single loop",
                    "One-shot commands", "Faults", "Virtual camera"):
        assert heading in r.stdout
    data = json.loads(out.read_text())
    assert data["machine"]["cores"] >= 1
    for name, runs in data["stages"].items():
        assert runs[0]["msgs_per_s"] > 0, name
    assert all(v[0]["ratio"] > 0 for v in data["transport"].values())
    assert all(v[0]["fps"] > 0 for v in data["e2e"].values())
    assert all(v["median"] > 0 for v in data["oneshot"].values())
    faults = data["faults"]
    assert all(r["recovery_s"] == r["recovery_s"] for r in faults["live"].values())  # not NaN: video came back
    assert faults["huge_image"]["refused"]["code"] == 2 and faults["huge_image"]["processed"]["code"] == 0
    assert all(v["written"] == v["of"] for v in faults["file"].values())
    bombs = next(r for name, r in faults["live"].items() if name.startswith("JPEG bombs"))
    assert bombs["alive"] and bombs["dropped"] >= bombs["sent"]
    assert all(v["code"] == 2 and not v["file"] and not v["left"] for v in faults["full_disk"].values()
               ) or "skipped" in faults["full_disk"]
