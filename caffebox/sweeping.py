"""`caffebox sweep`: write the grid, run it (here, or as a Slurm array), report it."""

from __future__ import annotations

import os
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from caffebox import contract, gpus, grid, launch, plots, runs, slurm, training
from caffebox import solver as solverlib
from caffebox.errors import CaffeboxError
from caffebox.progress import ProgressBar


@dataclass
class SweepOptions:
    """What the user asked `sweep` to do."""

    solver: str
    image: str
    settings: list[str] = field(default_factory=list)
    parallel: int = 0
    resume: bool = False
    layer_dirs: list[str] = field(default_factory=list)
    gpu: str = ""
    slurm: bool = False
    slurm_args: str = ""
    wait: bool = False
    # How to get the image when this engine lacks it (None: it must be here).
    target: launch.Target | None = None


def _prepare(
    options: SweepOptions, cwd: Path
) -> tuple[solverlib.Solver, Path, list[grid.GridPoint], list[int]]:
    """The solver, the sweep folder, every variant, and the indices still to run."""
    if not options.settings:
        raise CaffeboxError(
            "A sweep needs at least one --set NAME=V1,V2, e.g. --set base_lr=0.01,0.05."
        )
    settings = [grid.parse_setting(s) for s in options.settings]
    solver = solverlib.load(options.solver, cwd)
    if solver.max_iter <= 0:
        raise CaffeboxError(f"{solver.path} has no positive max_iter: nothing to sweep.")
    root = grid.sweep_root(solver, settings)
    if (root / grid.SWEEP_FILE).exists() and not options.resume:
        raise CaffeboxError(
            f"A sweep of this grid exists in {root}. Finish it with --resume, show it with "
            f"'caffebox sweep --status {root.relative_to(cwd)}', or move it away to start over."
        )
    root.mkdir(parents=True, exist_ok=True)
    variants = grid.write_variants(solver, settings, root)
    grid.save(root, solver, settings, variants)
    todo = [
        i for i, v in enumerate(variants)
        if not (options.resume and (grid.latest_record(v) or {}).get("exit_code") == 0)
    ]  # fmt: skip
    return solver, root, variants, todo


def _report(root: Path, variants: list[grid.GridPoint], rows: list[grid.Row] | None,
            out: TextIO) -> int:  # fmt: skip
    rows = rows or [grid.Row(v, grid.latest_record(v)) for v in variants]
    out.write(grid.table(rows) + "\n")
    for row in rows:
        if row.error:
            out.write(f"caffebox: {row.variant.name}: {row.error}\n")
    records = [Path(r.meta["record"]) for r in rows if r.meta and r.meta.get("record")]
    if records:
        try:
            target = plots.plot(records, root / "curves.png",
                                labels=[r.variant.name for r in rows if r.meta])  # fmt: skip
            out.write(f"caffebox: plot of all runs: {target}\n")
        except plots.NoMatplotlib as exc:
            out.write(f"caffebox: {exc}\n")
    failed = [r for r in rows if r.error or not r.meta or r.meta.get("exit_code") != 0]
    return 1 if failed else 0


def sweep(options: SweepOptions, out: TextIO = sys.stdout) -> int:
    """Run (or submit) the variants of the grid that are left: as one Slurm job array, or
    here, N at a time."""
    cwd = Path.cwd().resolve()
    solver, root, variants, todo = _prepare(options, cwd)
    out.write(f"caffebox: sweep of {len(variants)} variants in {root.relative_to(cwd)}"
              f" ({len(todo)} to run)\n")  # fmt: skip
    if options.slurm:
        return _sweep_on_slurm(options, root, variants, todo, cwd, out)
    return _sweep_here(options, solver, root, variants, todo, cwd, out)


def _sweep_on_slurm(options: SweepOptions, root: Path, variants: list[grid.GridPoint],
                    todo: list[int], cwd: Path, out: TextIO) -> int:  # fmt: skip
    """One job array, each task a `caffebox train` of one variant; --wait follows it."""
    image = options.image
    if options.target is not None and options.target.project is not None:
        # The project image once, here, before the array: never one build per task.
        image = launch.ready(launch.connect(options.target), options.target, out=out)
    train_args = ["--image", image]
    if options.target is not None and options.target.runtime != "docker":
        train_args += ["--runtime", options.target.runtime]  # an export on shared storage
    if options.target is not None and options.target.memory_limit:
        train_args += ["--memory", options.target.memory_limit]  # --memory, or the setting
    for folder in options.layer_dirs:
        train_args += ["--layers", folder]
    started = frozenset(i for i in todo if _started(variants[i], cwd))
    job = slurm.submit(root, variants, todo, cwd, train_args, options.slurm_args, started)
    grid.add_to_file(root, slurm_job=job)
    out.write(f"caffebox: submitted Slurm job array {job} ({len(todo)} tasks); "
              f"'caffebox sweep --status {root.relative_to(cwd)}' shows it\n")  # fmt: skip
    if not options.wait:
        return 0
    states = slurm.wait(job, len(todo))
    out.write(_states_line(states) + "\n")
    return _report(root, variants, None, out) or int(
        any(s != "COMPLETED" for s in states.values())
    )


def _sweep_here(options: SweepOptions, solver: solverlib.Solver, root: Path,
                variants: list[grid.GridPoint], todo: list[int], cwd: Path,
                out: TextIO) -> int:  # fmt: skip
    """The variants left, N at a time on this engine (a CPU set or a GPU each)."""
    gpu_list = gpus.parse_gpus(options.gpu) if options.gpu else []
    if gpu_list == ["all"]:
        raise CaffeboxError("sweep --gpu: name the GPUs to share out, e.g. --gpu 0,1.")
    target = options.target or launch.Target(options.image)
    client = launch.connect(target)
    image = launch.ready(client, target, gpu_list, solver, out)
    parallel = options.parallel or (len(gpu_list) or max(1, (os.cpu_count() or 2) // 2))
    parallel = max(1, min(parallel, len(todo) or 1))
    local = _LocalRun(options, client, target, image, variants, gpu_list,
                      grid.cpu_slots(parallel), cwd, out)  # fmt: skip
    with runs.caught_signals() as caught:
        rows = grid.Runner(local.run_one, parallel).run([variants[i] for i in todo], caught)
    local.close()
    by_folder = {r.variant.folder: r for r in rows}
    all_rows = [by_folder.get(v.folder) or grid.Row(v, grid.latest_record(v)) for v in variants]
    code = _report(root, variants, all_rows, out)
    if caught:
        again = " ".join(
            ["caffebox sweep", options.solver, *(f"--set {s}" for s in options.settings)]
        )
        out.write(f"caffebox: sweep stopped by a signal; finish it with '{again} --resume'\n")
        return 128 + caught[0]
    return code


class _LocalRun:
    """Trains one variant of a local sweep on its slot (CPU set or GPU), with a progress
    bar of its own and a started/finished line; Caffe's own output goes nowhere."""

    def __init__(self, options: SweepOptions, client: contract.Engine, target: launch.Target,
                 image: str, variants: list[grid.GridPoint], gpu_list: list[str],
                 slots: list[str], cwd: Path, out: TextIO) -> None:  # fmt: skip
        self.options, self.client, self.target, self.image = options, client, target, image
        self.variants, self.gpu_list, self.slots = variants, gpu_list, slots
        self.cwd, self.out = cwd, out
        self.printing = threading.Lock()
        self.devnull = open(os.devnull, "w")  # noqa: SIM115 - closed by close()

    def close(self) -> None:
        self.devnull.close()

    def _say(self, text: str) -> None:
        with self.printing:
            self.out.write(text + "\n")
            self.out.flush()

    def run_one(self, variant: grid.GridPoint, slot: int, index: int, caught: list[int]) -> str:
        started = _started(variant, self.cwd)
        number = f"[{self.variants.index(variant) + 1}/{len(self.variants)}]"  # of all variants
        gpu_list = self.gpu_list
        plan = training.plan(training.TrainOptions(
            solver=str(variant.solver_file.relative_to(self.cwd)), image=self.image,
            layer_dirs=self.options.layer_dirs, resume=started, overwrite=not started,
            gpu=gpu_list[slot % len(gpu_list)] if gpu_list else "",
        ), cwd=self.cwd)  # fmt: skip
        if not gpu_list:
            plan.spec.cpuset = self.slots[slot]
        where = f"GPU {plan.spec.gpus[0]}" if gpu_list else f"CPUs {self.slots[slot]}"
        self._say(f"caffebox: {number} {variant.name} started ({where})")
        bar = ProgressBar(plan.solver.max_iter, stream=sys.stderr, position=index,
                          desc=variant.name[:30])  # fmt: skip
        code, message = launch.train_ready(self.client, self.target, plan, self.devnull,
                                           caught=caught, progress=bar)  # fmt: skip
        bar.finish()
        self._say(f"caffebox: {number} {variant.name} "
                  f"{'finished' if code == 0 else f'failed (exit {code})'}")  # fmt: skip
        return "" if code == 0 else message


def _started(variant: grid.GridPoint, cwd: Path) -> bool:
    """The variant has a .solverstate from an earlier run: continue it, do not restart."""
    return any(".solverstate" in p.name
               for p in solverlib.load(variant.solver_file, cwd).existing_snapshots())  # fmt: skip


def _states_line(states: dict[int, str]) -> str:
    counts: dict[str, int] = {}
    for state in states.values():
        counts[state] = counts.get(state, 0) + 1
    return "caffebox: Slurm tasks: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))


def status(options: SweepOptions, out: TextIO = sys.stdout) -> int:
    """The Slurm array's state (if any) and the table of the finished runs."""
    root = Path(options.solver).resolve()
    meta = grid.load(root)
    variants = [
        grid.GridPoint(
            values=item["values"],
            folder=root / item["folder"],
            solver_file=root / item["folder"] / "solver.prototxt",
        )
        for item in meta["variants"]
    ]
    job = meta.get("slurm_job")
    if job:
        out.write(f"caffebox: Slurm job {job}\n{_states_line(slurm.task_states(job))}\n")
    return _report(root, variants, None, out)
