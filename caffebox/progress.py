"""Training progress on one terminal line (tqdm): iteration of max_iter, rate, ETA, loss.

Drawn only on a terminal; in CI logs and pipes the log lines alone are printed.
"""

from __future__ import annotations

import math
import sys
from typing import TextIO

from tqdm import tqdm


def format_value(value: float | None) -> str:
    """A loss or test output for people: NaN and inf are shown, never hidden."""
    if value is None:
        return "-"
    if math.isnan(value):
        return "NaN"
    return f"{value:.4g}"


class ProgressBar:
    """A tqdm bar fed from Caffe's log; log lines are printed above it."""

    def __init__(
        self, total: int, stream: TextIO = sys.stderr, position: int | None = None, desc: str = ""
    ) -> None:
        self.enabled = total > 0 and stream.isatty()
        self._bar = (
            tqdm(
                total=total,
                file=stream,
                unit="it",
                dynamic_ncols=True,
                desc=desc or None,
                position=position,
                leave=position is not None,
            )  # fmt: skip
            if self.enabled
            else None
        )

    def postfix(self, loss: float | None, tests: dict[str, float] | None = None) -> str:
        parts = [f"loss {format_value(loss)}"]
        parts += [f"{k} {format_value(v)}" for k, v in (tests or {}).items()]
        return ", ".join(parts)

    def update(
        self, iteration: int, loss: float | None, tests: dict[str, float] | None = None
    ) -> None:
        if self._bar is not None:
            self._bar.n = min(iteration, self._bar.total or iteration)
            self._bar.set_postfix_str(self.postfix(loss, tests), refresh=False)

    def draw(self) -> None:
        if self._bar is not None:
            self._bar.refresh()

    def clear(self) -> None:
        if self._bar is not None:
            self._bar.clear()

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
