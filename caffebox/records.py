"""A record of every training run, next to its snapshots: the log, a CSV of every
iteration Caffe reported, what reproduces the run (run.json), and a plot of the curves.

    snapshots/digits.runs/20261126-213100/{train.log, iterations.csv, run.json, curves.png}

Each run gets a folder of its own: a second run of the same solver never overwrites one.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import platform
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import docker

from caffebox import __version__, caffelog, contract
from caffebox.errors import CaffeboxError
from caffebox.solver import Solver

LOG, CSV, META, PNG = "train.log", "iterations.csv", "run.json", "curves.png"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def runs_folder(solver: Solver) -> Path:
    """Where this solver's records go: beside its snapshots, named after the prefix."""
    name = solver.prefix_name or "caffe"
    return solver.snapshot_dir / f"{name}.runs"


@dataclass
class Record:
    """One run's record folder; the log is written as the run goes."""

    folder: Path
    started: float = field(default_factory=time.time)
    log: TextIO | None = None

    @classmethod
    def create(cls, solver: Solver) -> Record:
        base = runs_folder(solver)
        base.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for n in range(1000):
            folder = base / (stamp if n == 0 else f"{stamp}-{n}")
            try:
                folder.mkdir()
                break
            except FileExistsError:
                continue
        record = cls(folder=folder)
        # Line by line: a disk that fills keeps every line written before it did.
        record.log = open(folder / LOG, "w", encoding="utf-8", buffering=1)
        return record

    def close_log(self) -> None:
        if self.log is not None:
            log, self.log = self.log, None
            log.close()  # may raise on a full disk: the caller says so


def image_facts(client: contract.Engine, image: str) -> dict[str, Any]:
    """The image as the record names it: id, digests, Caffe source and commit."""
    try:
        found = client.images.get(image)
    except docker.errors.DockerException:
        return {"name": image}
    labels = found.labels or {}
    return {
        "name": image,
        "id": found.id,
        "digests": found.attrs.get("RepoDigests") or [],
        "caffe_source": labels.get("org.opencontainers.image.source", ""),
        "caffe_commit": labels.get("org.opencontainers.image.revision", ""),
        "variant": labels.get("io.caffebox.variant", ""),
        "caffebox_version": labels.get("org.opencontainers.image.version", ""),
    }


@contextmanager
def whole(path: Path) -> Iterator[Path]:
    """Yields a temporary name beside `path`, renamed to it once written: each file caffebox
    writes is whole or absent (a full disk leaves no half file); the partial one is removed."""
    part = path.with_name(path.name + ".part")
    try:
        yield part
        os.replace(part, path)
    finally:
        with suppress(OSError):
            part.unlink()


def write_csv(path: Path, rows: dict[int, dict[str, float]]) -> None:
    columns = caffelog.columns(rows)
    with whole(path) as part, open(part, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns, restval="")
        writer.writeheader()
        for iteration in sorted(rows):
            writer.writerow({"iteration": iteration, **rows[iteration]})


def read_csv(path: Path) -> list[dict[str, float]]:
    """The rows of an iterations.csv, numbers as floats (empty cells left out)."""
    with open(path, newline="", encoding="utf-8") as f:
        return [{k: float(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]


def finish(
    record: Record,
    *,
    solver: Solver,
    command: list[str],
    container_command: list[str],
    image: dict[str, Any],
    layer_dirs: list[str],
    log: caffelog.TrainingLog,
    exit_code: int,
    outcome: str,
) -> Path:
    """Write the CSV and run.json (training draws curves.png with caffebox.plots)."""
    record.close_log()
    write_csv(record.folder / CSV, log.rows)
    nets = {str(p.relative_to(solver.cwd)): _sha256(p) for p in solver.net_files}
    meta = {
        "command": command,
        "container_command": container_command,
        "cwd": str(solver.cwd),
        "image": image,
        "solver": {
            "path": str(solver.path.relative_to(solver.cwd)),
            "sha256": _sha256(solver.path),
        },
        "nets": nets,
        "layer_dirs": layer_dirs,
        "max_iter": solver.max_iter,
        "iterations": log.iteration,
        "exit_code": exit_code,
        "outcome": outcome or "finished",
        "final": {"loss": log.loss, "test": log.final_test()},
        "snapshots": log.snapshots,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(record.started)),
        "seconds": round(time.time() - record.started, 1),
        "caffebox": __version__,
        "host": {
            "python": platform.python_version(),
            "system": platform.platform(),
            "user": os.getuid(),
        },  # fmt: skip
    }
    with whole(record.folder / META) as part:
        part.write_text(json.dumps(meta, indent=2, allow_nan=True) + "\n")
    return record.folder


def find(path: Path) -> list[Path]:
    """A record folder itself, or every record under a folder (oldest first)."""
    if (path / CSV).is_file():
        return [path]
    found = sorted(p.parent for p in path.glob(f"**/{CSV}"))
    if not found:
        raise CaffeboxError(
            f"{path} holds no run record (no {CSV} in it or below it). Pass a record folder "
            "such as snapshots/digits.runs/20261126-213100, or the folder of a sweep."
        )
    return sorted(found, key=lambda p: p.stat().st_mtime)


def latest_meta(snapshot_dir: Path) -> dict[str, Any] | None:
    """The newest run.json of the records under a snapshot folder (its 'record': where)."""
    found = sorted(snapshot_dir.glob(f"*.runs/*/{META}"))
    if not found:
        return None
    meta: dict[str, Any] = json.loads(found[-1].read_text())
    meta["record"] = str(found[-1].parent)
    return meta


def read_meta(folder: Path) -> dict[str, Any]:
    """A record's run.json, or {} where there is none."""
    path = folder / META
    return json.loads(path.read_text()) if path.is_file() else {}


def argv() -> list[str]:
    """How caffebox was called, for run.json."""
    return [Path(sys.argv[0]).name, *sys.argv[1:]]
