"""The progress line long operations print on stderr."""

from __future__ import annotations

import io

from warroom.progress import ProgressLine, render


def test_a_line_shows_done_rate_and_eta() -> None:
    assert render("replay", 25_000, 100_000, 0.5) == (
        "replay [#######.....................] 25,000/100,000 events  50,000/s  ETA 2s")
    assert render("replay", 10, 10, 1.0).endswith("10/10 events  10/s  done")
    assert render("replay", 0, 10, 0.0).endswith("ETA ?")
    assert "ETA 1h00m" in render("x", 1, 3601, 1.0)


def test_without_a_terminal_lines_are_plain_and_the_last_one_is_always_printed() -> None:
    out = io.StringIO()
    line = ProgressLine("replay", stream=out)
    for done in range(0, 1001, 100):
        line(done, 1000)
    line.close()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert lines[0].startswith("replay [") and "0/1,000" in lines[0]
    assert "1,000/1,000 events" in lines[-1] and lines[-1].endswith("done")
