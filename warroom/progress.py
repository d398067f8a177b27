"""A progress line for long operations (SPEC §9): done, rate and ETA, on stderr.

On a terminal the line is redrawn in place a few times a second; otherwise (a log
file, CI) a plain line is printed every few seconds, so logs stay readable.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

WIDTH = 28


def render(label: str, done: int, total: int, seconds: float, unit: str = "events") -> str:
    """One progress line: `label [####....] done/total unit  rate/s  ETA`."""
    total = max(total, done)
    share = done / total if total else 1.0
    filled = int(share * WIDTH)
    rate = done / seconds if seconds > 0 else 0.0
    if done >= total:
        eta = "done"
    elif rate > 0:
        eta = "ETA " + _duration((total - done) / rate)
    else:
        eta = "ETA ?"
    return (f"{label} [{'#' * filled}{'.' * (WIDTH - filled)}] {done:,}/{total:,} {unit}"
            f"  {rate:,.0f}/s  {eta}")


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


class ProgressLine:
    """Call with (done, total) as work goes on; `close()` prints the final line."""

    def __init__(self, label: str, stream: TextIO | None = None, unit: str = "events") -> None:
        self.label = label
        self.unit = unit
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = 0.2 if self.tty else 5.0
        self.started = time.monotonic()
        self._shown = 0.0
        self._last = (0, 0)

    def __call__(self, done: int, total: int) -> None:
        self._last = (done, total)
        now = time.monotonic()
        if now - self._shown >= self.interval:
            self._shown = now
            self._show(done, total)

    def _show(self, done: int, total: int, final: bool = False) -> None:
        line = render(self.label, done, total, time.monotonic() - self.started, self.unit)
        if self.tty:
            self.stream.write("\r\x1b[2K" + line + ("\n" if final else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        self._show(*self._last, final=True)
