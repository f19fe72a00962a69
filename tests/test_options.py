"""Options are declared once: flags, DOGFILTER_* variables, .env and the launcher all come from the declarations."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from dogfilter.commands import run
from dogfilter.common import options
from dogfilter.common.stage import STAGES
from tests.conftest import ROOT

pytestmark = pytest.mark.timeout(60)


def _declared() -> dict[str, options.Option]:
    out: dict[str, options.Option] = {}
    for stage in STAGES:
        for _, group in stage.groups():
            for opt in group:
                assert out.get(opt.name, opt) is opt, f"{opt.name} is declared twice"
                out[opt.name] = opt
    return out


@pytest.mark.unit
def test_each_option_is_declared_in_one_place_and_the_launcher_reuses_it() -> None:
    declared = _declared()
    for stage in STAGES:  # a stage's own options are its own; shared ones live in PIPELINE / LINKS
        own = {o.name for o in stage.options()}
        assert not own & {o.name for o in options.PIPELINE} and not own & {o.name for o in options.LINKS.values()}
    for _, group in run.launcher_options():
        for opt in group:
            assert declared[opt.name] is opt  # the very same declaration: same name, default and help


@pytest.mark.system
def test_env_file_sets_only_declared_options_and_documents_every_one() -> None:
    text = (ROOT / ".env").read_text()
    names = {o.env for o in _declared().values()}
    for key in re.findall(r"^(DOGFILTER_\w+)=", text, flags=re.M):
        assert key in names, f".env sets {key}, which no stage declares"
    generated = subprocess.run([sys.executable, "-m", "dogfilter.commands.run", "options"], capture_output=True,
                               text=True, timeout=50).stdout
    assert generated and text.endswith(generated), "the option reference in .env is not `dogfilter options`' output"
    assert all(f"#{n}=" in generated for n in names)


@pytest.mark.system
def test_values_from_the_environment_are_typed_checked_and_overridden_by_flags(monkeypatch) -> None:
    from dogfilter.services import capture

    monkeypatch.setenv("DOGFILTER_SOURCE", "demo,clip.mp4")
    monkeypatch.setenv("DOGFILTER_LOOP", "1")
    monkeypatch.setenv("DOGFILTER_FRAMES", "7")
    o = options.parse("dogfilter-capture", "", capture.GROUPS, [])
    assert (o.source, o.loop, o.frames) == (["demo", "clip.mp4"], True, 7)
    o = options.parse("dogfilter-capture", "", capture.GROUPS, ["--source", "x.png", "--no-loop", "--frames", "3"])
    assert (o.source, o.loop, o.frames) == (["x.png"], False, 3)  # a flag replaces the variable, lists too
    monkeypatch.setenv("DOGFILTER_MIN_FACE", "-4")
    env = {**os.environ, "DOGFILTER_MIN_FACE": "-4"}
    r = subprocess.run([sys.executable, "-m", "dogfilter.services.detect"], env=env, capture_output=True, text=True,
                       timeout=50)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip() == "dogfilter-detect: error: argument --min-face: must be > 0, got -4"
    for flag, value in (("--reclassify-ms", "nan"), ("--deadline-ms", "inf"), ("--reclassify-ms", "-1")):
        r = subprocess.run([sys.executable, "-m", "dogfilter.services.composite", flag, value], capture_output=True,
                           text=True, timeout=50)
        assert r.returncode == 2 and "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
        assert f"argument {flag}: must be" in r.stderr, r.stderr


@pytest.mark.unit
def test_the_stage_list_is_the_one_the_procfile_and_the_console_scripts_name() -> None:
    """common/stage.py declares the five stages once; the files that cannot import it must agree with it."""
    import tomllib

    procfile = dict(line.split(": ", 1) for line in (ROOT / "Procfile").read_text().splitlines() if line.strip())
    assert procfile == {s.name: f"python -m {s.module_name}" for s in STAGES}
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    for s in STAGES:
        assert scripts[s.script] == f"{s.module_name}:cli"
        assert s.module().STAGE == s.name  # the stage's own name for itself (its counters, its logs)
