"""Progress lines for long work, on stderr, only for a person watching.

`progress_for(command)` returns a reporter when the command's stderr is a
terminal and its output is not JSON, else None, so callers pass it along as
an optional callback and scripts and CI logs never see carriage returns.
"""
from __future__ import annotations

import time
from typing import TextIO


class Progress:
    """Rewrites one stderr line at most every `interval` seconds: `label: done/total (pct%)`."""

    def __init__(self, stream: TextIO, label: str, interval: float = 0.2):
        self.stream = stream
        self.label = label
        self.interval = interval
        self.last_shown = float("-inf")
        self.latest: tuple[int, int | None] | None = None
        self.shown: tuple[int, int | None] | None = None  # the last values written

    def __call__(self, done: int, total: int | None = None) -> None:
        self.latest = (done, total)
        now = time.monotonic()
        finished = total is not None and done >= total
        if not finished and now - self.last_shown < self.interval:
            return
        self.last_shown = now
        self._show(done, total)

    def _show(self, done: int, total: int | None) -> None:
        if total:
            text = f"{self.label}: {done:,}/{total:,} ({done * 100 // total}%)"
        else:
            text = f"{self.label}: {done:,}"
        self.stream.write(f"\r{text}\x1b[K")
        self.stream.flush()
        self.shown = self.latest

    def finish(self) -> None:
        """Show the final count, and end the line so that what follows starts on a fresh one."""
        if self.latest is not None and self.shown != self.latest:
            self._show(*self.latest)
        if self.shown is not None:
            self.stream.write("\n")
            self.stream.flush()
        self.latest = self.shown = None


def progress_for(command, label: str) -> Progress | None:
    """A Progress on the command's stderr when that is a terminal and the output is text."""
    if getattr(command, "format", "text") == "json" or getattr(command, "verbosity", 1) < 1:
        return None
    stderr = command.stderr
    if not stderr.isatty():
        return None
    return Progress(stderr._out if hasattr(stderr, "_out") else stderr, label)
