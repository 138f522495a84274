"""`caffebox time NET`: Caffe's own `caffe time`, read back as a table per layer.

The tutorial warns that a Python layer can dominate a step; this says how much of
*your* step your Python layers take. `caffe time` runs forward and backward passes of
the net in its TRAIN phase and prints the average per layer; we sort them, mark the
Python layers and state their share in one line.
"""

from __future__ import annotations

import csv
import io
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from caffebox import gpus, launch, layer_sources, prototxt, runs
from caffebox import solver as solverlib
from caffebox.errors import CaffeboxError

_LAYER = re.compile(r"\]\s*(\S+)\s+(forward|backward): ([0-9.eE+-]+) ms\.")
_TOTAL = re.compile(r"Average Forward-Backward: ([0-9.eE+-]+) ms\.")


@dataclass
class LayerTime:
    name: str
    kind: str
    forward_ms: float = 0.0
    backward_ms: float = 0.0

    @property
    def total_ms(self) -> float:
        return self.forward_ms + self.backward_ms


def train_layers(net: prototxt.Message) -> dict[str, str]:
    """Layer name -> type for the layers of the TRAIN phase (what `caffe time` builds)."""
    found = {}
    for layer in net.all("layer"):
        phases = [str(rule.first("phase", "")) for rule in layer.all("include")]
        if phases and "TRAIN" not in phases:
            continue
        found[str(layer.first("name", ""))] = str(layer.first("type", ""))
    return found


def parse(lines: list[str], kinds: dict[str, str]) -> tuple[list[LayerTime], float]:
    """The per-layer times and the forward-backward total from `caffe time`'s log."""
    rows: dict[str, LayerTime] = {}
    total = 0.0
    for line in lines:
        match = _LAYER.search(line)
        if match:
            name, which, ms = match.group(1), match.group(2), float(match.group(3))
            row = rows.setdefault(name, LayerTime(name, kinds.get(name, "?")))
            setattr(row, f"{which}_ms", ms)
        elif found := _TOTAL.search(line):
            total = float(found.group(1))
    ordered = sorted(rows.values(), key=lambda r: r.total_ms, reverse=True)
    return ordered, total or sum(r.total_ms for r in ordered)


def table(rows: list[LayerTime], total: float, on_gpu: bool) -> str:
    """The sorted table, Python layers marked, and their share in one line."""
    width = max([len("layer"), *(len(r.name) for r in rows)])
    lines = [f"{'layer':<{width}}  {'type':<18} {'forward ms':>10} {'backward ms':>11} "
             f"{'share':>6}"]  # fmt: skip
    for r in rows:
        mark = " *" if r.kind == "Python" else ""
        share = 100 * r.total_ms / total if total else 0.0
        lines.append(f"{r.name:<{width}}  {r.kind:<18} {r.forward_ms:>10.4f} "
                     f"{r.backward_ms:>11.4f} {share:>5.1f}%{mark}")  # fmt: skip
    python = [r for r in rows if r.kind == "Python"]
    share = 100 * sum(r.total_ms for r in python) / total if total else 0.0
    names = ", ".join(r.name for r in python)
    lines.append(f"forward-backward: {total:.4f} ms per iteration")
    if python:
        lines.append(f"Python layers: {share:.0f}% of the step (* above: {names})")
        if on_gpu:
            lines.append("On a GPU net a Python layer's blobs are copied to the host and back: "
                         "its own rows hold the copies it causes, the next layer's row the copy "
                         "back to the GPU.")  # fmt: skip
    else:
        lines.append("Python layers: none in this net's TRAIN phase")
    return "\n".join(lines)


def write_csv(rows: list[LayerTime], total: float, path: Path) -> None:
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["layer", "type", "forward_ms", "backward_ms", "share"])
        for r in rows:
            writer.writerow([r.name, r.kind, r.forward_ms, r.backward_ms,
                             r.total_ms / total if total else 0.0])  # fmt: skip


class _Lines:
    """Keeps the log (runs.Watch)."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def line(self, text: str, seconds: float) -> None:
        self.lines.append(text)

    def clear(self) -> None:
        pass

    def finish(self) -> None:
        pass


def time_net(
    target: launch.Target,
    net_file: str,
    *,
    iterations: int = 50,
    gpu: str = "",
    layer_dirs: list[str] | None = None,
    csv_file: str = "",
    out: TextIO = sys.stdout,
) -> int:
    """Run `caffe time` on NET and print the table; the exit status."""
    cwd = Path.cwd().resolve()
    path = (cwd / net_file).resolve()
    if not path.is_file():
        raise CaffeboxError(
            f"The net file {path} does not exist. Give the net's .prototxt relative to the "
            "current directory, e.g. 'caffebox time examples/digits/net.prototxt'."
        )
    solverlib._visible(path, cwd, "the command line")
    net = solverlib._parse(path, "net")
    kinds = train_layers(net)
    if iterations <= 0:
        raise CaffeboxError(f"--iterations {iterations}: give a positive number, e.g. 50.")
    gpu_list = gpus.parse_gpus(gpu) if gpu else []
    if len(gpu_list) > 1 or gpu_list == ["all"]:
        raise CaffeboxError(f"time --gpu {gpu!r}: name one GPU, e.g. --gpu 0.")
    command = ["caffe", "time", "-model", str(path), "-iterations", str(iterations)]
    command += ["-gpu", "0"] if gpu_list else []
    dirs = runs.check_layer_dirs(layer_dirs or [], cwd)
    layer_sources.check_python3([m for m, _ in solverlib.net_python_layers(net)], dirs, cwd)
    spec = runs.RunSpec(image=target.image, command=command, cwd=cwd, layer_dirs=dirs,
                        gpus=gpu_list)  # fmt: skip
    log, seen = io.StringIO(), _Lines()
    code = launch.run_program(target, spec, out=log, watch=seen)
    rows, total = parse(seen.lines, kinds)
    if code != 0 or not rows:
        out.write(log.getvalue())
        raise CaffeboxError(
            f"caffe time on {net_file} exited with {code} and timed no layer (its log is "
            "above). Check that the net builds: its data sources exist, and --layers names "
            "the folder of its Python layers.",
            exit_code=code or 1,
        )
    out.write(table(rows, total, bool(gpu_list)) + "\n")
    if csv_file:
        write_csv(rows, total, (cwd / csv_file).resolve())
        out.write(f"caffebox: per-layer times in {csv_file}\n")
    return 0
