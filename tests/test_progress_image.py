"""The progress bar as a user sees it: `caffebox train` on a terminal (a real pty) draws
iteration of max_iter, rate, ETA and the loss, NaN shown as NaN; in a pipe there is none."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import struct
import termios
import time

import pytest

from .support.cli import CAFFEBOX, caffebox, digits_project

pytestmark = pytest.mark.image
SOLVER = "examples/digits/solver.prototxt"


def _on_a_terminal(args: list[str], cwd, timeout: float = 300) -> tuple[int, str]:
    """Run the caffebox command with a pty as its terminal; its exit status and screen."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: caffebox, with the pty as stdin, stdout and stderr
        # A terminal of 40 rows, 160 columns (a new pty has none: tqdm would draw nothing).
        fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
        os.chdir(cwd)
        os.execv(CAFFEBOX[0], [*CAFFEBOX, *args])
    chunks, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 1.0)
        if ready:
            try:
                data = os.read(fd, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
    _, status = os.waitpid(pid, 0)
    os.close(fd)
    return os.waitstatus_to_exitcode(status), b"".join(chunks).decode(errors="replace")


def test_the_bar_on_a_terminal_and_none_in_a_pipe(tmp_path, image):
    project = digits_project(tmp_path)
    code, screen = _on_a_terminal(["train", SOLVER, "--image", image], project)
    assert code == 0, screen[-3000:]
    bars = re.findall(r"\d+%\|[^|]*\| *(\d+)/1500 \[[\d:]+<[\d:?]+, *[\d.?]+ ?it/s, loss ([^,\]]+)",
                      screen)  # fmt: skip
    assert bars, screen[-3000:]
    assert int(bars[-1][0]) == 1500 and bars[-1][1] != "-", bars[-3:]
    piped = caffebox("train", SOLVER, "--image", image, "--overwrite", cwd=project, timeout=300)
    assert piped.returncode == 0 and "it/s" not in piped.stderr + piped.stdout


def test_a_nan_loss_is_shown_as_nan_on_the_bar(tmp_path, image):
    project = digits_project(tmp_path)
    solver = project / SOLVER
    solver.write_text(solver.read_text().replace("base_lr: 0.05", "base_lr: 1000000")
                      .replace("max_iter: 1500", "max_iter: 300"))  # fmt: skip
    code, screen = _on_a_terminal(["train", SOLVER, "--image", image], project)
    assert code in (1, 134), screen[-3000:]
    assert re.search(r"it/s, loss NaN", screen), screen[-3000:]
