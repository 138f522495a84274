"""`train`: check everything on the host, then run caffe train and follow its log.

`plan` does every check that needs no engine; `run_recorded` runs the plan (the image is
made ready by caffebox.launch) with a watch that parses Caffe's log, draws the progress
bar and writes the run record; `outcome` turns what happened into an exit status.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from caffebox import contract, gpus, layer_sources, locks, plots, records, runs, snapshots
from caffebox import solver as solverlib
from caffebox.caffelog import TrainingLog
from caffebox.errors import CaffeboxError
from caffebox.paths import shown
from caffebox.progress import ProgressBar, format_value
from caffebox.snapshots import size_text

_IMPORT_ERRORS = ("ModuleNotFoundError", "ImportError", "No module named")
_BAD_WEIGHTS = ("Failed to parse NetParameter file", "Check failed: ReadProtoFromBinaryFile")
# What Caffe and Python print when a write fails for lack of space, or no process can start.
_NO_SPACE = ("SerializeToOstream", "No space left on device", "Failed to write")
_NO_PROCESS = ("Resource temporarily unavailable", "can't start new thread")


@dataclass
class TrainOptions:
    """What the user asked `train` to do (paths as given, relative to cwd)."""

    solver: str
    image: str
    layer_dirs: Sequence[str] = ()
    weights: str = ""
    snapshot: str = ""
    resume: bool = False
    gpu: str = ""
    overwrite: bool = False


# What the first stop signal does to a Caffe run (runs.run sends SIGINT).
ASKING = "asking Caffe to snapshot and stop"


@dataclass
class TrainedRun(runs.RunResult):
    """A finished container run plus what Caffe's log said."""

    log: TrainingLog = field(default_factory=TrainingLog)


class LogWatch:
    """Follows Caffe's output: the log parsed, the progress bar, the record's train.log."""

    def __init__(self, bar: ProgressBar, record: TextIO | None = None,
                 space: DiskCheck | None = None, out: TextIO = sys.stdout) -> None:  # fmt: skip
        self.log, self.bar, self.record = TrainingLog(), bar, record
        self.record_error = ""
        self.space, self.out = space, out

    def line(self, text: str, seconds: float) -> None:
        if self.record is not None:
            try:
                self.record.write(text + "\n")
            except OSError as exc:  # a full disk: training goes on, the record stops here
                self.record_error = exc.strerror or str(exc)
                self.record = None
        if self.log.feed(text, seconds):
            self.bar.update(self.log.iteration, self.log.loss, self.log.final_test())
        # Caffe logs a snapshot before writing it: look once a later line says it is done.
        if self.space is not None and self.log.solverstates() and "Snapshotting" not in text:
            warning = self.space.after_first(self.log)
            if warning is not None:
                self.space = None
            if warning:
                self.bar.clear()
                self.out.write(f"caffebox: {warning}\n")
        self.bar.draw()

    def clear(self) -> None:
        self.bar.clear()

    def finish(self) -> None:
        self.bar.finish()


def mount_point(path: Path) -> Path:
    path = path.resolve()
    while not path.is_mount() and path != path.parent:
        path = path.parent
    return path


@dataclass
class DiskCheck:
    """After the first snapshot: is there room for the snapshots still to come?"""

    cwd: Path
    folder: Path
    max_iter: int
    interval: int  # solver `snapshot` (0: only the one at the end)

    def after_first(self, log: TrainingLog) -> str | None:
        """One warning line when the free space is less than what is still to come; ''
        when it fits; None while the first snapshot's files are not there to measure."""
        state = self.cwd / log.solverstates()[0]
        models = [self.cwd / s for s in log.snapshots if ".solverstate" not in s]
        try:
            written = state.stat().st_size
            size = written + (models[0].stat().st_size if models else 0)
            free = shutil.disk_usage(self.folder).free
        except OSError:
            return None
        if not written:
            return None
        done = log.iteration
        left = (self.max_iter // self.interval - done // self.interval) if self.interval else 0
        if not self.interval or self.max_iter % self.interval:
            left += 1  # the snapshot after the last iteration
        if left * size <= free:
            return ""
        return (f"{left} more snapshot(s) of {size_text(size)} each ({size_text(left * size)}) "
                f"will not fit: {mount_point(self.folder)} has {size_text(free)} free. Free "
                "space, or snapshot less often (solver 'snapshot').")  # fmt: skip


@dataclass
class TrainPlan:
    """A checked run: the solver (max_iter, snapshot_prefix), the container spec, the
    weights to fine-tune from."""

    solver: solverlib.Solver
    spec: runs.RunSpec
    weights: list[str] = field(default_factory=list)
    # Said before the run: the damaged snapshots --resume passed over.
    notes: list[str] = field(default_factory=list)

    @contextmanager
    def lock(self) -> Iterator[Path]:
        """Held while the run writes under the solver's snapshot_prefix.

        Makes a missing snapshot folder, and removes it again if the run wrote nothing
        there (a run that failed before Caffe started leaves the user's tree as it was).
        """
        folder = self.solver.snapshot_dir
        made = not folder.exists()
        solverlib.check_snapshot_dir(self.solver, create=True)
        name = self.solver.prefix_name
        try:
            with locks.held(
                locks.lock_path(folder, name), f"snapshots under {self.solver.snapshot_prefix}"
            ) as path:
                yield path
        finally:
            if made:
                try:
                    folder.rmdir()  # only when empty
                except OSError:
                    pass


def _existing(name: str, cwd: Path, option: str) -> Path:
    path = (cwd / name).resolve()
    if not path.is_file():
        raise CaffeboxError(
            f"{option} {name}: {path} does not exist. Give the path relative to the current "
            f"directory ({cwd})."
        )
    try:
        path.relative_to(cwd)
    except ValueError:
        raise CaffeboxError(
            f"{option} {name}: {path} is outside the current directory {cwd}, the only folder "
            "the container sees. Copy it inside, or run from a folder that contains it."
        ) from None
    return path


def plan(options: TrainOptions, cwd: Path | None = None) -> TrainPlan:
    """Every check that needs no engine; the result says exactly what will run."""
    cwd = (cwd or Path.cwd()).resolve()
    solver = solverlib.load(options.solver, cwd)
    if solver.max_iter <= 0:
        given = solver.params.first("max_iter")
        said = f"sets max_iter: {given}" if given is not None else "has no max_iter"
        raise CaffeboxError(
            f"{solver.path} {said}, so Caffe would train no iteration at all. Set max_iter to "
            "the number of iterations to train, e.g. 'max_iter: 10000'."
        )
    layer_dirs = runs.check_layer_dirs(options.layer_dirs, cwd)
    gpu_list = gpus.parse_gpus(options.gpu) if options.gpu else []
    for net, module, _cls in solver.python_layers():
        if not module:
            raise CaffeboxError(
                f"{net} has a Python layer without python_param {{ module: ... }}. Name the "
                "module that defines the layer class."
            )
    layer_sources.check_python3([m for _, m, _ in solver.python_layers()], layer_dirs, cwd)
    weights, state, notes = _starting_point(options, solver, cwd)
    command = train_command(solver, gpu_list, weights, state)
    spec = runs.RunSpec(
        image=options.image, command=command, cwd=cwd, layer_dirs=layer_dirs, gpus=gpu_list
    )
    return TrainPlan(solver=solver, spec=spec, weights=weights.split(",") if weights else [],
                     notes=notes)


def _starting_point(options: TrainOptions, solver: solverlib.Solver,
                    cwd: Path) -> tuple[str, str, list[str]]:  # fmt: skip
    """Where training starts: fine-tune weights, or the solverstate to continue from (with
    --resume's lines about damaged snapshots it skipped); refuses to overwrite an earlier
    run's snapshots unasked."""
    if options.weights and (options.snapshot or options.resume):
        raise CaffeboxError(
            "Give --weights (fine-tune) or --snapshot/--resume (continue training), not both: "
            "Caffe refuses the pair."
        )
    weights = ""
    if options.weights:
        weights = ",".join(str(_existing(w, cwd, "--weights")) for w in options.weights.split(","))
    state, notes = "", list[str]()
    if options.snapshot:
        state = str(_existing(options.snapshot, cwd, "--snapshot"))
        snapshots.check_given(Path(state), cwd)
    elif options.resume:
        found, notes = snapshots.resume_point(solver.snapshot_dir, solver.prefix_name, cwd)
        state = str(found)
    solverlib.check_snapshot_dir(solver, create=False)
    earlier = solver.existing_snapshots()
    if earlier and not (state or options.overwrite):
        raise CaffeboxError(
            f"{len(earlier)} snapshot file(s) from an earlier run (e.g. {earlier[-1].name}) are "
            f"under snapshot_prefix {solver.snapshot_prefix} (from {solver.path}); this run "
            "would overwrite them. Continue that run with --resume, keep it by giving this "
            "run another snapshot_prefix, or pass --overwrite to replace them."
        )
    return weights, state, notes


def train_command(solver: solverlib.Solver, gpu_list: list[str], weights: str,
                  state: str) -> list[str]:  # fmt: skip
    """What runs in the container: Caffe's own tool, or pycaffe where the tool cannot
    (Python layers on several GPUs; fine-tuning, which some forks' tool ignores)."""
    several = gpu_list == ["all"] or len(gpu_list) > 1
    if several and solver.python_layers():
        # The caffe binary refuses Python layers on several GPUs: one process per GPU.
        command = ["python3", "-m", "caffebox_layers.parallel", "--solver", str(solver.path)]
        command += ["--gpus", gpus.caffe_gpu_flag(gpu_list)]
        command += ["--weights", weights] if weights else []
        command += ["--snapshot", state] if state else []
        return command
    if weights and not several:
        # Some forks' caffe tool ignores -weights: fine-tune through pycaffe everywhere.
        command = ["python3", "-m", "caffebox_layers.solve", "--solver", str(solver.path)]
        command += ["--weights", weights]
        return command + (["--gpu", "0"] if gpu_list else [])
    command = ["caffe", "train", "-solver", str(solver.path)]
    command += ["-weights", weights] if weights else []
    command += ["-snapshot", state] if state else []
    return command + (["-gpu", gpus.caffe_gpu_flag(gpu_list)] if gpu_list else [])


def explain_failure(result: TrainedRun, train_plan: TrainPlan) -> str:
    """One paragraph after a failed run, pointing at the likely cause."""
    missing = runs.missing_command(result, train_plan.spec)
    if missing:
        return missing
    memory = runs.out_of_memory(result, train_plan.spec)
    if memory:
        return f"caffe was stopped: {memory}"
    text = "\n".join(result.tail)
    full = _disk_full(text, train_plan.solver)
    if full:
        return f"caffe exited with {result.exit_code}: {full}"
    if train_plan.spec.pids_limit and any(m in text for m in _NO_PROCESS):
        return (
            f"caffe exited with {result.exit_code}: a layer could not start another process "
            f"or thread: the container may have at most {train_plan.spec.pids_limit} (the "
            "pids_limit setting), which a layer that forks in a loop reaches. Fix the layer, "
            "or raise pids_limit if the run really needs more."
        )
    if "AttributeError: module" in text and "has no attribute" in text:
        return (
            f"caffe exited with {result.exit_code}: a Python layer's module imported, but it "
            "has no class of the name the net gives (see the AttributeError above). Check "
            "python_param { layer: ... } against the class names in that module."
        )
    if any(marker in text for marker in _IMPORT_ERRORS):
        own = [m for _, m, _ in train_plan.solver.python_layers()]
        lacking = layer_sources.missing_module(text, train_plan.spec.layer_dirs, own)
        if lacking:
            return f"caffe exited with {result.exit_code}: {lacking}"
        dirs = ", ".join(str(d) for d in train_plan.spec.layer_dirs) or "none"
        return (
            f"caffe exited with {result.exit_code}: a Python layer module did not import (see "
            f"the traceback above). caffebox puts these folders on PYTHONPATH: {dirs}, plus "
            "caffebox's own caffebox_layers. Pass --layers DIR for the folder that holds "
            "your module file, and check python_param { module: ... } in the net."
        )
    if "Traceback" in text:
        return (
            f"caffe exited with {result.exit_code}: a Python layer raised an error (traceback "
            "above). Fix the layer, or check it alone with a gradient check."
        )
    if result.log.diverged:
        return (
            f"caffe exited with {result.exit_code} after the loss became NaN: training "
            "diverged. Lower base_lr (try a tenth), or clip gradients (clip_gradients: 10)."
        )
    if train_plan.weights and any(marker in text for marker in _BAD_WEIGHTS):
        return (
            f"caffe exited with {result.exit_code}: --weights {','.join(train_plan.weights)} "
            "is not a Caffe model Caffe can read. Pass a .caffemodel (or .caffemodel.h5) "
            "written by Caffe, e.g. a snapshot of an earlier run."
        )
    if "shares no layer with this net" in text:
        return (
            f"caffe exited with {result.exit_code}: --weights {','.join(train_plan.weights)} "
            "has no layer of this net's names, so nothing would be fine-tuned. Pass weights "
            "trained for this net, or give the layers you want copied the same names."
        )
    if "Cannot copy param" in text:
        return (
            f"caffe exited with {result.exit_code}: the --weights come from a net whose layer "
            "of the same name has other shapes (see 'Cannot copy param' above). Rename the "
            "layers you changed, so that Caffe initialises them instead of copying."
        )
    if any(marker in text for marker in runs.NO_GPU_ERRORS):
        gpu = (
            "it was given --gpu, but the container sees no usable GPU: check nvidia-smi on "
            "this host and that the driver is new enough for the image's CUDA"
            if train_plan.spec.gpus
            else "a gpu image needs a GPU even for solver_mode: CPU, because its convolution "
            "and pooling layers default to cuDNN. Pass --gpu 0 on a GPU host, or train on the "
            "cpu image (caffebox build-cpu; --image caffebox:cpu)"
        )
        return f"caffe exited with {result.exit_code}: {gpu}."
    return f"caffe exited with {result.exit_code}; the log above shows why."


def _disk_full(text: str, solver: solverlib.Solver) -> str:
    """The paragraph for a snapshot the disk had no room for, or ''."""
    if not any(marker in text for marker in _NO_SPACE):
        return ""
    try:
        free = shutil.disk_usage(solver.snapshot_dir).free
    except OSError:
        return ""
    pair, _ = snapshots.newest_whole(solver.snapshot_dir, solver.prefix_name, solver.cwd)
    kept = "No whole snapshot was written before it: free space and start again."
    if pair is not None:
        kept = (f"The whole snapshots before it are untouched (newest: "
                f"{shown(pair.state, solver.cwd)}): free space, then resume with --resume.")
    return (f"the disk is full: Caffe could not write its snapshot under "
            f"{solver.snapshot_prefix} ({mount_point(solver.snapshot_dir)} has {size_text(free)} "
            f"free). {kept}")


def whole_snapshot(log: TrainingLog, cwd: Path) -> snapshots.Pair | None:
    """The newest pair this run's log reports that is whole on disk."""
    for state in reversed(log.solverstates()):
        pair = snapshots.check_pair(cwd / state, cwd)
        if pair.whole:
            return pair
    return None


def _resume_hint(result: TrainedRun, train_plan: TrainPlan) -> str:
    cwd = train_plan.solver.cwd
    pair = whole_snapshot(result.log, cwd)
    solver = train_plan.solver.path.relative_to(cwd)
    if pair is None:
        written = "No whole snapshot was written" if result.log.solverstates() else \
            "No snapshot was written"  # fmt: skip
        return f"{written}: a new run starts from the beginning."
    state = shown(pair.state, cwd)
    return f"Resume it with: caffebox train {solver} --snapshot '{state}' (or --resume)."


def outcome(result: TrainedRun, train_plan: TrainPlan) -> tuple[int, str]:
    """The exit status and the closing paragraph: a run that did not finish never exits 0."""
    log, max_iter = result.log, train_plan.solver.max_iter
    where = f"at iteration {log.iteration} of {max_iter}"
    if result.interrupted:
        return 128 + result.stop_signal, (
            f"stopped by {runs.signal_name(result.stop_signal)} {where}, before max_iter. "
            + _resume_hint(result, train_plan)
        )
    if result.exit_code != 0:
        return result.exit_code, explain_failure(result, train_plan)
    if not log.done:
        return 1, (
            f"caffe exited with 0 {where} without reporting 'Optimization Done.': training did "
            "not finish (the log above shows where it ended). " + _resume_hint(result, train_plan)
        )
    if train_plan.weights and not log.finetuned_from:
        return 1, (
            f"--weights {','.join(train_plan.weights)} were given, but the log shows no "
            "'Finetuning from': this image's Caffe trained from scratch without loading them. "
            "Use a caffebox image (its 'caffebox train' fine-tunes through pycaffe)."
        )
    if log.diverged:
        return 1, (
            "loss is NaN at the end of training: it diverged. Lower base_lr (try a tenth), "
            "or clip gradients (clip_gradients: 10)."
        )
    return 0, ""


def summary(result: TrainedRun, max_iter: int = 0, cwd: Path | None = None) -> str:
    """The outcome in two lines: final loss, test outputs, snapshots (with `cwd`: the
    newest whole pair on disk, never a pair cut short)."""
    log = result.log
    finished = log.done and not result.interrupted and result.exit_code == 0
    of = f" of {max_iter}" if max_iter else ""
    verb = "finished" if finished else "stopped"
    parts = [f"caffebox: {verb} at iteration {log.iteration}{of}"]
    if log.loss is not None:
        parts.append("loss is NaN" if log.diverged else f"loss {format_value(log.loss)}")
    tests = log.final_test()
    if tests:
        parts.append("test " + ", ".join(f"{k} {format_value(v)}" for k, v in tests.items()))
    line = "; ".join(parts)
    if cwd is not None and log.snapshots:
        pair = whole_snapshot(log, cwd)
        if pair is None or pair.model is None:
            line += ("\ncaffebox: no whole snapshot pair was written (a snapshot cut short: a "
                     "full disk, or a kill while writing)")  # fmt: skip
        else:
            line += "\ncaffebox: snapshots: " + ", ".join(
                f"'{shown(p, cwd)}'" for p in (pair.model, pair.state))
    elif log.snapshots:
        line += "\ncaffebox: snapshots: " + ", ".join(f"'{s}'" for s in log.snapshots[-2:])
    return line


def run_recorded(
    client: contract.Engine,
    train_plan: TrainPlan,
    out: TextIO = sys.stdout,
    caught: list[int] | None = None,
    progress: ProgressBar | None = None,
) -> tuple[int, str]:
    """Run the plan with a run record beside its snapshots; the exit status and message."""
    for note in train_plan.notes:
        out.write(f"caffebox: {note}\n")
    record = records.Record.create(train_plan.solver)
    code, message = 1, "caffebox ended before the run did"
    result = None
    bar = progress or ProgressBar(train_plan.solver.max_iter, stream=sys.stderr)
    solver = train_plan.solver
    space = DiskCheck(solver.cwd, solver.snapshot_dir, solver.max_iter, solver.snapshot_interval)
    watch = LogWatch(bar, record.log, space, out)
    try:
        ran = runs.run(
            client, train_plan.spec, watch=watch, out=out, caught=caught, asking=ASKING
        )
        result = TrainedRun(ran.exit_code, ran.tail, ran.stop_signal, ran.oom_killed,
                            log=watch.log)
        code, message = outcome(result, train_plan)
        out.write(summary(result, train_plan.solver.max_iter, train_plan.solver.cwd) + "\n")
    finally:
        if result is None:  # the engine refused: nothing ran, keep no record
            record.close_log()
            shutil.rmtree(record.folder, ignore_errors=True)
            with contextlib.suppress(OSError):
                record.folder.parent.rmdir()
        else:
            _finish_record(record, train_plan, client, result, code, message, watch, out)
    return code, message


def _finish_record(record: records.Record, train_plan: TrainPlan, client: contract.Engine,
                   result: TrainedRun, code: int, message: str, watch: LogWatch,
                   out: TextIO) -> None:  # fmt: skip
    """The run's CSV, run.json and curves; on a full disk one line that says the record is
    incomplete, never a traceback (the training itself ended as said above)."""
    problem = watch.record_error
    try:
        records.finish(
            record,
            solver=train_plan.solver,
            command=records.argv(),
            container_command=train_plan.spec.command,
            image=records.image_facts(client, train_plan.spec.image),
            layer_dirs=[str(d) for d in train_plan.spec.layer_dirs],
            log=result.log,
            exit_code=code,
            outcome=message,
        )
        plots.plot_record(record.folder)
    except OSError as exc:
        problem = exc.strerror or str(exc)
        with contextlib.suppress(OSError):
            record.close_log()
    if problem:
        out.write(f"caffebox: the run record in {record.folder} is incomplete ({problem}): "
                  "free space there; the run itself ended as said above\n")  # fmt: skip
    else:
        out.write(f"caffebox: run record: {record.folder}\n")
