"""Progress on long ``dogfilter file`` jobs: a tqdm bar on a terminal, a plain line every few seconds elsewhere."""

from __future__ import annotations

import io
import re
import time

import pytest

from tests.conftest import make_clip, read_video, run_cli


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.unit
def test_a_terminal_gets_a_bar_with_frames_rate_and_time_left() -> None:
    from dogfilter.commands.progress import Progress

    out = Terminal()
    p = Progress(200, out)
    for n in (10, 50, 120):
        p.update(n)
        time.sleep(0.05)
    p.close()
    text = out.getvalue()
    assert "120/200" in text and "frame/s" in text and re.search(r"<\d\d:\d\d", text), text  # done, rate, left


@pytest.mark.unit
def test_elsewhere_one_plain_line_every_few_seconds(monkeypatch) -> None:
    from dogfilter.commands import progress

    monkeypatch.setattr(progress, "PLAIN_EVERY_S", 0.2)
    out = io.StringIO()
    p = progress.Progress(200, out)
    p.update(5)
    assert out.getvalue() == ""  # not yet
    time.sleep(0.25)
    p.update(50)
    p.update(51)
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 and re.fullmatch(r"dogfilter file: 50/200 frames \(25%\), [\d.]+ frames/s, \d+ s left",
                                             lines[0]), lines


@pytest.mark.system
@pytest.mark.timeout(180)
def test_a_long_job_says_how_far_it_is(tmp_path) -> None:
    clip = tmp_path / "clip.avi"
    make_clip(clip, n=600, size=(640, 480), fps=30)  # ~10 s here
    out = tmp_path / "out.avi"
    t0 = time.monotonic()
    r = run_cli("file", str(clip), str(out), timeout=170)
    took = time.monotonic() - t0
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(out) and len(read_video(out)) == 600
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("dogfilter file: ")]
    assert all(re.search(r"\d+/600 frames .* frames/s, \d+ s left", ln) for ln in lines), r.stderr
    if took > 7:  # a job that runs long enough has a line every 5 s (a fast machine may finish first)
        assert lines, f"no progress line in a {took:.0f} s job: {r.stderr}"
