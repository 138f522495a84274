"""An image build started as the session starts, for tests that come last: it compiles
while the other tests run (their containers mostly wait; CI has 2 cores), and the first
test that needs the image waits for it."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

from .cli import ROOT


class BackgroundBuild:
    """One `invoke` task run in a thread, its output added to `log`."""

    def __init__(self, task: list[str], log: Path) -> None:
        self.task, self.log = task, log
        self.failed = False
        self.seconds = 0.0
        self._proc: subprocess.Popen[bytes] | None = None
        self._thread = threading.Thread(target=self._run, name="background-build", daemon=True)

    def start(self) -> BackgroundBuild:
        self._thread.start()
        return self

    def _run(self) -> None:
        started = time.monotonic()
        with self.log.open("ab") as out:
            self._proc = subprocess.Popen([sys.executable, "-m", "invoke", *self.task], cwd=ROOT,
                                          stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
            self.failed = self._proc.wait() != 0
        self.seconds = time.monotonic() - started

    def wait(self) -> None:
        """Until the task ends; a failed one fails the test with the log's end."""
        self._thread.join()
        if self.failed:
            tail = self.log.read_text(errors="replace")[-6000:]
            raise AssertionError(f"invoke {' '.join(self.task)} failed (in the background; "
                                 f"log {self.log}):\n{tail}")  # fmt: skip

    def stop(self) -> None:
        """The session ends before a test waited (-x, Ctrl-C): the build stops with it."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
        self._thread.join(timeout=60)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()
