"""A one-line progress bar for training, drawn only on a terminal."""

from __future__ import annotations

import math
import sys
from typing import TextIO


class ProgressBar:
    """`iteration/max_iter [#####.....] loss` on one redrawn line of a terminal."""

    def __init__(self, total: int, stream: TextIO = sys.stderr, width: int = 30) -> None:
        self.total = total
        self.stream = stream
        self.width = width
        self.enabled = total > 0 and stream.isatty()
        self.iteration = 0
        self.loss: float | None = None
        self._shown = False

    def update(self, iteration: int, loss: float | None) -> None:
        self.iteration = iteration
        self.loss = loss

    def render(self) -> str:
        done = min(self.iteration, self.total) / self.total if self.total else 0.0
        filled = int(round(done * self.width))
        bar = "#" * filled + "." * (self.width - filled)
        loss = "" if self.loss is None or math.isnan(self.loss) else f" loss {self.loss:.4g}"
        return f"[{bar}] {self.iteration}/{self.total}{loss}"

    def draw(self) -> None:
        if self.enabled:
            self.stream.write("\r" + self.render())
            self.stream.flush()
            self._shown = True

    def clear(self) -> None:
        if self._shown:
            self.stream.write("\r\033[K")
            self._shown = False

    def finish(self) -> None:
        if self._shown:
            self.stream.write("\n")
            self.stream.flush()
            self._shown = False
