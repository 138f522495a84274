"""One caffebox run per snapshot prefix: an advisory lock file beside the snapshots.

Two runs writing the same PREFIX_iter_N files overwrite each other without a word;
the lock makes the second refuse to start. flock ends with the process that holds
it, so a killed run never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from caffebox.errors import CaffeboxError


def lock_path(snapshot_dir: Path, prefix_name: str) -> Path:
    return snapshot_dir / f"{prefix_name}.caffebox-lock"


@contextmanager
def held(path: Path, what: str) -> Iterator[Path]:
    """Hold the lock at `path` for the block; refuse at once when another run holds it."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 100).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise CaffeboxError(
                f"Another caffebox run ({holder}) is writing {what} now (lock {path}). Wait "
                "for it to finish, or give this run its own snapshot_prefix in the solver.",
                exit_code=2,
            ) from None
        # The file may have been removed by the run that just ended: lock the one on disk.
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}\n".encode())
        yield path
    finally:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        os.close(fd)
