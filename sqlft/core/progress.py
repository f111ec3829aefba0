"""Progress bars for long work (generation, scoring, synthesis, merge check): done, rate and ETA on stderr.

On a terminal a tqdm bar redraws in place; elsewhere (a log file, CI) it writes a plain line at most every 30 s,
so that logs show progress without carriage-return noise.
"""

import sys

from tqdm import tqdm


class _Lines:
    """A stream for tqdm off a terminal: every redraw becomes its own line."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text: str) -> None:
        text = text.replace("\r", "")
        if text.strip():
            self.stream.write(text.rstrip("\n") + "\n")

    def flush(self) -> None:
        self.stream.flush()


def progress(total: int, desc: str, unit: str = "it", stream=None) -> tqdm:
    """A bar over `total` units; `with progress(n, "scoring", "pred") as bar: ... bar.update(k)`."""
    stream = stream or sys.stderr
    tty = hasattr(stream, "isatty") and stream.isatty()
    return tqdm(total=total, desc=desc, unit=unit, file=stream if tty else _Lines(stream), dynamic_ncols=tty,
                mininterval=0.5 if tty else 30.0, ncols=None if tty else 100, smoothing=0.1)
