"""Progress lines on the console for long steps (training, generation, judging) whose output goes to the
job's log: a rule's shell opens file descriptor 3 on the console (``3>&2``, before ``> {log} 2>&1``) and
names it in ``MLIT_PROGRESS_FD``; a line goes there at the start, every ``every_s`` seconds and at the end.
Without the variable (a command run by hand, a test, a child process) nothing is written: the variable is
taken out of the environment on first use, so a launched child never writes to a descriptor number it
did not inherit."""

from __future__ import annotations

import os
import time

ENV = "MLIT_PROGRESS_FD"
EVERY_S = 30.0
_stream = None
_checked = False


def console():
    """The console stream the rule opened for progress lines, or None."""
    global _stream, _checked
    if not _checked:
        _checked = True
        fd = os.environ.pop(ENV, None)
        if fd is not None and fd.isdigit():
            try:
                os.fstat(int(fd))
                _stream = os.fdopen(os.dup(int(fd)), "w", buffering=1, encoding="utf-8", errors="replace")
            except OSError:
                _stream = None
    return _stream


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


class Progress:
    """``[label] done/total unit (pct), elapsed, ~eta left`` on the console, at most every ``every_s``."""

    def __init__(self, label: str, total: int, unit: str, every_s: float = EVERY_S, clock=time.monotonic,
                 stream=None):
        self.label, self.total, self.unit, self.every_s, self.clock = label, total, unit, every_s, clock
        self.stream = stream if stream is not None else console()
        self.started = self.last = clock()
        self.done = 0
        self._write(f"started: {total} {unit}")

    def _write(self, text: str) -> None:
        if self.stream is not None:
            self.stream.write(f"[{self.label}] {text}\n")
            self.stream.flush()

    def update(self, done: int, note: str = "") -> None:
        self.done = done
        now = self.clock()
        if now - self.last < self.every_s and done < self.total:
            return
        self.last = now
        elapsed = now - self.started
        eta = f", ~{_duration(elapsed / done * (self.total - done))} left" if 0 < done < self.total else ""
        percent = f" ({100 * done / self.total:.0f}%)" if self.total else ""
        self._write(f"{done}/{self.total} {self.unit}{percent}, {_duration(elapsed)}{eta}" + (f", {note}" if note else ""))
