"""A sweep's grid: solver and layer settings, each grid point trained in its own folder.

    caffebox sweep solver.prototxt --set base_lr=0.01,0.05 --set loss.param_str.delta=0.5,1

Variants are written under sweeps/STEM-HASH/ (the user's files are never touched): a
solver per variant, a net where a layer setting changed, and the variant's snapshots and
run record. They run N at a time on the local engine, each pinned to its share of the
CPUs (or its GPU), or as one Slurm job array (caffebox.slurm).
"""

from __future__ import annotations

import ast
import copy
import hashlib
import itertools
import json
import math
import os
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from caffebox import prototxt, records
from caffebox.errors import CaffeboxError
from caffebox.solver import NET_FIELDS, Solver, prefix_name
from caffebox_layers.params import parse_param_str  # the in-image parser: one reading

SWEEP_FILE = "sweep.json"
# Each grid point's snapshots (and their run records) in its own folder under the sweep.
SNAPSHOTS = "snapshots"
_SAFE = re.compile(r"[^A-Za-z0-9.+-]+")


@dataclass(frozen=True)
class Setting:
    """One --set: a solver field (base_lr) or a layer's (loss.param_str.delta, loss.loss_weight)."""

    key: str
    values: tuple[str, ...]

    @property
    def layer(self) -> str:
        return self.key.split(".", 1)[0] if "." in self.key else ""


def parse_setting(text: str) -> Setting:
    key, sep, values = text.partition("=")
    items = tuple(v.strip() for v in values.split(",") if v.strip())
    if not sep or not key.strip() or not items:
        raise CaffeboxError(
            f"--set {text!r}: write NAME=VALUE[,VALUE...], e.g. --set base_lr=0.01,0.1 (a "
            "solver field) or --set loss.param_str.delta=0.5,1 (a Python layer's param_str key)."
        )
    return Setting(key.strip(), items)


@dataclass
class GridPoint:
    """One point of the grid and where it lives."""

    values: dict[str, str]
    folder: Path
    solver_file: Path

    @property
    def name(self) -> str:
        return ",".join(f"{k}={v}" for k, v in self.values.items())


def variant_slug(values: dict[str, str]) -> str:
    return "_".join(f"{_SAFE.sub('-', k)}-{_SAFE.sub('-', v)}" for k, v in values.items())[:120]


def sweep_root(solver: Solver, settings: list[Setting]) -> Path:
    """sweeps/STEM-HASH: the same grid of the same solver is the same folder (--resume)."""
    text = json.dumps([[s.key, list(s.values)] for s in settings]) + str(solver.path)
    digest = hashlib.sha256(text.encode()).hexdigest()[:8]
    return solver.cwd / "sweeps" / f"{solver.path.stem}-{digest}"


def _typed(value: str, like: Any = None) -> Any:
    """A --set value as the field's type: strings stay strings where the field is one."""
    if isinstance(like, str) and not isinstance(like, prototxt.Word):
        return value
    parsed = prototxt.parse(f"v: {value}").first("v") if value else value
    return parsed


def _param_value(value: str) -> Any:
    try:
        return ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return value


def _set_layer(net: prototxt.Message, key: str, value: str) -> bool:
    layer_name, _, rest = key.partition(".")
    changed = False
    for layer in net.all("layer"):
        if str(layer.first("name", "")) != layer_name:
            continue
        if rest.startswith("param_str."):
            param = layer.setdefault("python_param", [prototxt.Message()])[0]
            current = parse_param_str(str(param.first("param_str", "")), layer_name)
            current[rest.split(".", 1)[1]] = _param_value(value)
            param["param_str"] = [repr(current)]
        else:
            layer[rest] = [_typed(value, layer.first(rest))]
        changed = True
    return changed


def write_variants(solver: Solver, settings: list[Setting], root: Path) -> list[GridPoint]:
    """Write every variant's solver (and nets) under `root`; returns them in grid order."""
    base = prototxt.parse_file(solver.path)
    nets = {p: prototxt.parse_file(p) for p in solver.net_files}
    for setting in settings:
        if setting.layer and not any(
            str(layer.first("name", "")) == setting.layer
            for net in nets.values()
            for layer in net.all("layer")
        ):
            raise CaffeboxError(
                f"--set {setting.key}: no layer named {setting.layer!r} in "
                f"{', '.join(str(p) for p in nets)}. Use the layer's name: field."
            )
    keys = [s.key for s in settings]
    variants = []
    for combo in itertools.product(*(s.values for s in settings)):
        values = dict(zip(keys, combo))
        folder = root / variant_slug(values)
        folder.mkdir(parents=True, exist_ok=True)
        params = copy.deepcopy(base)
        changed_nets = {p: copy.deepcopy(m) for p, m in nets.items()}
        touched: set[Path] = set()
        for key, value in values.items():
            if "." in key:
                for path, net in changed_nets.items():
                    if _set_layer(net, key, value):
                        touched.add(path)
            else:
                params[key] = [_typed(value, params.first(key))]
        for path in touched:
            target = folder / path.name
            target.write_text(prototxt.to_text(changed_nets[path]))
            for name in NET_FIELDS:
                params[name] = [
                    str(target.relative_to(solver.cwd)) if (solver.cwd / str(v)).resolve() == path
                    else v
                    for v in params.all(name)
                ]  # fmt: skip
        prefix = prefix_name(base) or "caffe"
        params["snapshot_prefix"] = [str((folder / SNAPSHOTS / prefix).relative_to(solver.cwd))]
        solver_file = folder / "solver.prototxt"
        solver_file.write_text(prototxt.to_text(params))
        variants.append(GridPoint(values=values, folder=folder, solver_file=solver_file))
    return variants


def latest_record(variant: GridPoint) -> dict[str, Any] | None:
    """The newest run.json under the variant's snapshots, or None."""
    return records.latest_meta(variant.folder / SNAPSHOTS)


def cpu_slots(parallel: int, cpus: int | None = None) -> list[str]:
    """Each of `parallel` runs gets its own CPUs: cpuset strings, one per slot."""
    cpus = cpus or os.cpu_count() or 1
    per = max(1, cpus // parallel)
    slots = []
    for i in range(parallel):
        first = (i * per) % cpus
        last = min(first + per, cpus) - 1
        slots.append(f"{first}-{last}" if last > first else str(first))
    return slots


@dataclass
class Row:
    variant: GridPoint
    meta: dict[str, Any] | None
    error: str = ""


def metric_name(rows: list[Row]) -> str:
    """The test output to sort by: accuracy-like outputs first, else the first one."""
    names: list[str] = []
    for row in rows:
        tests = ((row.meta or {}).get("final") or {}).get("test") or {}
        names += [n for n in tests if n not in names]
    for name in names:
        if "loss" not in name:
            return name
    return names[0] if names else ""


def table(rows: list[Row]) -> str:
    """Final outputs of every variant, best first by the test metric."""
    metric = metric_name(rows)
    higher_better = "loss" not in metric

    def score(row: Row) -> float:
        value = (((row.meta or {}).get("final") or {}).get("test") or {}).get(metric)
        if value is None or not isinstance(value, (int, float)) or math.isnan(value):
            return -math.inf
        return value if higher_better else -value

    ordered = sorted(rows, key=score, reverse=True)
    header = ["variant", "exit", "iter", "loss"] + ([f"test {metric}"] if metric else [])
    lines = [header]
    for row in ordered:
        meta = row.meta or {}
        final = meta.get("final") or {}
        loss = final.get("loss")
        cells = [
            row.variant.name,
            str(meta.get("exit_code", "-")) if not row.error else "error",
            str(meta.get("iterations", "-")),
            "-" if loss is None else f"{loss:.4g}",
        ]
        if metric:
            value = (final.get("test") or {}).get(metric)
            cells.append("-" if value is None else f"{value:.4g}")
        lines.append(cells)
    widths = [max(len(r[i]) for r in lines) for i in range(len(header))]
    text = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in lines]
    return "\n".join([text[0], "  ".join("-" * w for w in widths), *text[1:]])


def save(root: Path, solver: Solver, settings: list[Setting], variants: list[GridPoint]) -> None:
    meta = {
        "solver": str(solver.path.relative_to(solver.cwd)),
        "settings": {s.key: list(s.values) for s in settings},
        "variants": [
            {"folder": str(v.folder.relative_to(root)), "values": v.values} for v in variants
        ],
    }
    (root / SWEEP_FILE).write_text(json.dumps(meta, indent=2) + "\n")


def add_to_file(root: Path, **fields: Any) -> None:
    """Record more about a saved sweep (the Slurm job that runs it)."""
    path = root / SWEEP_FILE
    path.write_text(json.dumps({**json.loads(path.read_text()), **fields}, indent=2) + "\n")


def load(root: Path) -> dict[str, Any]:
    path = root / SWEEP_FILE
    if not path.is_file():
        raise CaffeboxError(
            f"{root} is not a sweep folder (no {SWEEP_FILE}). Pass the folder a sweep printed, "
            "e.g. sweeps/solver-1a2b3c4d."
        )
    sweep: dict[str, Any] = json.loads(path.read_text())
    return sweep


class Runner:
    """Runs variants N at a time on one engine; the main thread owns the signals."""

    def __init__(self, run_one: Callable[[GridPoint, int, int, list[int]], str],
                 parallel: int) -> None:  # fmt: skip
        self.run_one = run_one
        self.parallel = parallel
        self.lock = threading.Lock()

    def run(self, variants: list[GridPoint], caught: list[int]) -> list[Row]:
        slots = list(range(self.parallel))
        free = list(slots)
        rows: dict[int, Row] = {}

        def job(index: int, variant: GridPoint) -> None:
            with self.lock:
                slot = free.pop(0)
            try:
                if caught:
                    rows[index] = Row(variant, latest_record(variant), error="not started")
                    return
                error = self.run_one(variant, slot, index, caught)
                rows[index] = Row(variant, latest_record(variant), error=error)
            except CaffeboxError as exc:
                rows[index] = Row(variant, latest_record(variant), error=str(exc))
            finally:
                with self.lock:
                    free.append(slot)

        with ThreadPoolExecutor(max_workers=self.parallel) as pool:
            futures = [pool.submit(job, i, v) for i, v in enumerate(variants)]
            for future in futures:
                while True:
                    try:
                        future.result(timeout=0.2)
                        break
                    except FutureTimeout:
                        continue
        return [rows[i] for i in range(len(variants))]
