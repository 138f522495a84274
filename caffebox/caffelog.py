"""Reading Caffe's training log: iterations, losses, test outputs, snapshots."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

_ITERATION = re.compile(r"Iteration (\d+)\b[^,]*(?:\([^)]*\))?,? loss = ([-+\w.]+)")
_TESTING = re.compile(r"Iteration (\d+), Testing net \(#(\d+)\)")
_LR = re.compile(r"Iteration (\d+), lr = ([-+\w.]+)")
_TRAIN_OUTPUT = re.compile(r"Train net output #\d+: (\S+) = ([-+\w.]+)")
_TEST_OUTPUT = re.compile(r"Test net output #\d+: (\S+) = ([-+\w.]+)")
# The whole rest of the line: snapshot prefixes may contain spaces.
_SNAPSHOT = re.compile(r"Snapshotting (?:solver state )?to (?:binary proto|HDF5) file ?(.+?)\s*$")
_FINETUNE = re.compile(r"Finetuning from (.+?)\s*$")


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return float("nan")


@dataclass
class TrainingLog:
    """What a training run has reported so far; feed it lines as they arrive."""

    iteration: int = 0
    losses: list[tuple[int, float]] = field(default_factory=list)
    tests: list[tuple[int, dict[str, float]]] = field(default_factory=list)
    snapshots: list[str] = field(default_factory=list)
    done: bool = False
    finetuned_from: list[str] = field(default_factory=list)
    # One row per iteration Caffe reported anything for: seconds, lr, loss, train/NAME,
    # test/NAME (test1/NAME for a second test net); the CSV of a run record.
    rows: dict[int, dict[str, float]] = field(default_factory=dict)
    _test_iter: int | None = None
    _test_net: int = 0

    def _row(self, iteration: int, seconds: float | None) -> dict[str, float]:
        row = self.rows.setdefault(iteration, {})
        if seconds is not None:
            row.setdefault("seconds", round(seconds, 3))
        return row

    def feed(self, line: str, seconds: float | None = None) -> bool:
        """Take one log line (received `seconds` after the start); True when it changed
        the progress (iteration or loss)."""
        if m := _TESTING.search(line):
            self._test_iter, self._test_net = int(m.group(1)), int(m.group(2))
            if self._test_net == 0:
                self.tests.append((self._test_iter, {}))
            self._row(self._test_iter, seconds)
            return False
        if (m := _TEST_OUTPUT.search(line)) and self.tests and self._test_iter is not None:
            value = _number(m.group(2))
            if self._test_net == 0:
                self.tests[-1][1][m.group(1)] = value
            net = "test" if self._test_net == 0 else f"test{self._test_net}"
            self._row(self._test_iter, seconds)[f"{net}/{m.group(1)}"] = value
            return False
        if m := _ITERATION.search(line):
            self.iteration = int(m.group(1))
            loss = _number(m.group(2))
            self.losses.append((self.iteration, loss))
            self._row(self.iteration, seconds)["loss"] = loss
            return True
        if m := _LR.search(line):
            self._row(int(m.group(1)), seconds)["lr"] = _number(m.group(2))
            return False
        if m := _TRAIN_OUTPUT.search(line):
            self._row(self.iteration, seconds)[f"train/{m.group(1)}"] = _number(m.group(2))
            return False
        if m := _SNAPSHOT.search(line):
            self.snapshots.append(m.group(1))
            return False
        if m := _FINETUNE.search(line):
            self.finetuned_from.append(m.group(1))
            return False
        if "Optimization Done." in line:
            self.done = True
            return True
        return False

    @property
    def loss(self) -> float | None:
        return self.losses[-1][1] if self.losses else None

    @property
    def diverged(self) -> bool:
        """The latest loss is NaN or infinite: the run is lost, whatever Caffe exits with."""
        return self.loss is not None and not math.isfinite(self.loss)

    def solverstates(self) -> list[str]:
        return [s for s in self.snapshots if ".solverstate" in s]

    def final_test(self) -> dict[str, float]:
        """The last complete test pass's outputs (empty when none ran)."""
        return dict(self.tests[-1][1]) if self.tests else {}


def columns(rows: dict[int, dict[str, float]]) -> list[str]:
    """CSV columns: iteration, seconds, lr, loss, then train/ and test/ outputs as seen."""
    seen: dict[str, None] = {}
    for row in rows.values():
        seen.update(dict.fromkeys(row))
    fixed = ["iteration", "seconds", "lr", "loss"]
    return fixed + sorted(k for k in seen if k not in fixed)


def parse(text: str) -> TrainingLog:
    """A whole log at once."""
    log = TrainingLog()
    for line in text.splitlines():
        log.feed(line)
    return log
