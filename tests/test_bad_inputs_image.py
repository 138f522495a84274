"""Bad inputs that only Caffe itself can find, on the real image: the exit status, one
paragraph, no container left, no user file changed (snapshots aside, where Caffe wrote).

Each row is a row of the bad-inputs table (docs/errors.md).
"""

from __future__ import annotations

import re
import shlex
import signal
import subprocess
import time
from pathlib import Path

import pytest

from caffebox import caffelog
from caffebox.runs import RUN_LABEL
from caffebox.variants import CPU

from .support.cli import (
    CAFFEBOX,
    assert_one_paragraph,
    assert_untouched,
    caffebox,
    digits_project,
    fingerprint,
)

pytestmark = pytest.mark.image
SOLVER = "examples/digits/solver.prototxt"
NET = "examples/digits/net.prototxt"


def _edit(project: Path, name: str, old: str, new: str) -> None:
    path = project / name
    assert old in path.read_text(), f"{old!r} not in {name}"
    path.write_text(path.read_text().replace(old, new, 1))


def _short(project: Path, iters: int = 200) -> None:
    """A short run: fewer iterations, a test and a snapshot only at the end."""
    _edit(project, SOLVER, "max_iter: 1500", f"max_iter: {iters}")
    _edit(project, SOLVER, "test_interval: 500", f"test_interval: {iters}")
    _edit(project, SOLVER, "snapshot: 500", "snapshot: 0")


def _no_containers(engine) -> None:
    assert not engine.containers.list(all=True, filters={"label": RUN_LABEL})


def _wrong_class(p: Path, image: str) -> None:
    _edit(p, NET, 'layer: "ArrayData"', 'layer: "ArrayDat"')


def _unknown_bottom(p: Path, image: str) -> None:
    _edit(p, NET, 'bottom: "data"', 'bottom: "dataa"')


def _random_weights(p: Path, image: str) -> None:
    # Not os.urandom: random bytes sometimes parse as a protobuf with no layers (seen).
    (p / "w.caffemodel").write_bytes(b"\xff" * 4096)


def _foreign_weights(p: Path, image: str) -> None:
    """A real .caffemodel, of a net whose layer names the digits net does not have."""
    (p / "make_foreign.py").write_text(
        "import caffe\n"
        'open(\'f.prototxt\', \'w\').write(\'layer { name: "x" type: "Input" top: "x" '
        'input_param { shape { dim: 1 dim: 4 } } } layer { name: "other" '
        'type: "InnerProduct" bottom: "x" top: "y" inner_product_param { '
        "num_output: 2 } }')\n"
        "caffe.Net('f.prototxt', caffe.TEST).save('foreign.caffemodel')\n"
    )
    done = caffebox("python", "make_foreign.py", "--image", image, cwd=p)
    assert done.returncode == 0, done.stdout + done.stderr


def _gpu_solver(p: Path, image: str) -> None:
    _edit(p, SOLVER, "solver_mode: CPU", "solver_mode: GPU")


# (id, how to break the project, extra arguments, exit status, what stderr must say)
ROWS = [
    ("python-layer-wrong-class", _wrong_class, [], 1,
     r"has no class of the name the net gives"),
    ("caffe-check-fails", _unknown_bottom, [], 134,
     r"caffe exited with 134; the log above shows why"),
    ("weights-random-bytes", _random_weights, ["--weights", "w.caffemodel"], 134,
     r"--weights \S+w.caffemodel is not a Caffe model"),
    ("weights-of-another-net", _foreign_weights, ["--weights", "foreign.caffemodel"], 2,
     r"has no layer of this net's names"),
    ("gpu-solver-on-cpu-image", _gpu_solver, [], 2, r"sets solver_mode: GPU, but \S+ is the CPU"),
    ("image-missing", None, ["--image", "caffebox-no-such:image"], 2,
     r"The image caffebox-no-such:image does not exist"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "breaks", "extra", "code", "message"), ROWS,
                         ids=[r[0] for r in ROWS])  # fmt: skip
def test_bad_input_in_caffe(tmp_path, engine, image, name, breaks, extra, code, message):
    project = digits_project(tmp_path)
    _short(project)
    if breaks:
        breaks(project, image)
    before = fingerprint(project)
    args = ["train", SOLVER, *extra] if "--image" in extra else ["train", SOLVER, *extra,
                                                                  "--image", image]  # fmt: skip
    done = caffebox(*args, cwd=project, timeout=300)
    assert_one_paragraph(done, code, message)
    assert_untouched(before, fingerprint(project), outputs="snapshots/")
    _no_containers(engine)


def test_nan_loss_ends_instead_of_hanging(tmp_path, engine, image):
    """base_lr 1e6: Caffe once double-freed as PID 1 and the command never returned."""
    project = digits_project(tmp_path)
    _short(project)
    _edit(project, SOLVER, "base_lr: 0.05", "base_lr: 1000000")
    done = caffebox("train", SOLVER, "--image", image, cwd=project, timeout=300)
    assert done.returncode in (1, 134), done.stderr[-3000:]
    assert "loss is NaN" in done.stdout, done.stdout[-2000:]
    assert re.search(r"(loss became NaN|loss is NaN at the end)", done.stderr), done.stderr
    _no_containers(engine)


def test_image_without_the_command_is_one_paragraph(tmp_path, engine, image):
    """An image without python3: once an engine APIError traceback at start; under the init
    the exec fails inside, and caffebox names the cause."""
    base = CPU.base_image  # the test image's base: on the engine, no python3
    (tmp_path / "s.py").write_text("print('hi')\n")
    before = fingerprint(tmp_path)
    done = caffebox("python", "s.py", "--image", base, cwd=tmp_path, timeout=120)
    assert_one_paragraph(done, 127, rf"The image {base} has no 'python3' to run")
    assert fingerprint(tmp_path) == before
    _no_containers(engine)


def test_layers_dot_keeps_the_project_writable(tmp_path, engine, image):
    """`--layers .` once mounted the whole project read-only: no snapshot could be written."""
    project = digits_project(tmp_path)
    _short(project)
    done = caffebox("train", SOLVER, "--layers", ".", "--image", image, cwd=project, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert (project / "snapshots" / "digits_iter_200.caffemodel").is_file()
    _no_containers(engine)


def _train_until(project: Path, image: str, iteration: int) -> tuple[subprocess.Popen, list[str]]:
    _edit(project, SOLVER, "max_iter: 1500", "max_iter: 1000000")
    _edit(project, SOLVER, "snapshot: 500", "snapshot: 0")
    proc = subprocess.Popen(
        [*CAFFEBOX, "train", SOLVER, "--image", image], cwd=project, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        # A shell starts background jobs with SIGINT ignored, and Python keeps it ignored:
        # give the child the default, as an interactive terminal would.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    seen = []
    deadline = time.monotonic() + 120
    for line in proc.stdout:
        seen.append(line)
        if f"Iteration {iteration}," in line or time.monotonic() > deadline:
            break
    return proc, seen


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143),
                                           (signal.SIGHUP, 129)])  # fmt: skip
def test_stop_signals_snapshot_exit_non_zero_and_remove_the_container(
    tmp_path, engine, image, sig, code
):
    """SIGTERM/SIGHUP once left Caffe training in its container; Ctrl-C once exited 0."""
    project = digits_project(tmp_path)
    proc, seen = _train_until(project, image, 300)
    try:
        proc.send_signal(sig)
        rest, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:  # the test failed: leave no training behind
            proc.kill()
            for container in engine.containers.list(all=True, filters={"label": RUN_LABEL}):
                container.remove(force=True)
    output = "".join(seen) + rest
    assert proc.returncode == code, output[-3000:]
    assert "asking Caffe to snapshot and stop" in output
    assert "Optimization stopped early" in output
    states = list((project / "snapshots").glob("digits_iter_*.solverstate"))
    assert len(states) == 1, output[-3000:]
    assert f"--snapshot 'snapshots/{states[0].name}'" in output
    assert len(re.findall(r"Optimization stopped early", output)) == 1, "lines printed twice"
    _no_containers(engine)


def test_fine_tuning_loads_the_weights(tmp_path, engine, image):
    """The test image's caffe tool ignores -weights; caffebox's fine-tuning must not."""
    project = digits_project(tmp_path)
    trained = caffebox("train", SOLVER, "--image", image, cwd=project, timeout=300)
    assert trained.returncode == 0, trained.stderr[-3000:]
    final = [loss for _, loss in caffelog.parse(trained.stdout).losses[-3:]]
    tune = project / "examples" / "digits" / "tune.prototxt"
    tune.write_text(
        (project / SOLVER).read_text()
        .replace('snapshot_prefix: "snapshots/digits"', 'snapshot_prefix: "snapshots/tuned"')
        .replace("max_iter: 1500", "max_iter: 100")
        .replace("test_interval: 500", "test_interval: 100")
        .replace("base_lr: 0.05", "base_lr: 0.001")
    )  # fmt: skip
    done = caffebox(
        "train", "examples/digits/tune.prototxt", "--weights",
        "snapshots/digits_iter_1500.caffemodel", "--image", image, cwd=project, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "Finetuning from" in done.stdout + done.stderr
    log = caffelog.parse(done.stdout)
    start = log.losses[0]
    assert start[0] == 0
    # From scratch the digits net starts at ln(10) = 2.3; with the weights, where it ended.
    assert start[1] < max(final) * 2 + 0.05, (start, final)
    assert log.final_test()["accuracy"] >= 0.95
    assert (project / "snapshots" / "tuned_iter_100.caffemodel").is_file()
    _no_containers(engine)


def test_the_printed_resume_command_finishes_the_run(tmp_path, engine, image):
    """Ctrl-C prints 'Resume it with: caffebox train ... --snapshot ...': that very command
    continues from the snapshot (the loss where it stopped, not ln 10) to max_iter."""
    project = digits_project(tmp_path)
    proc, seen = _train_until(project, image, 300)
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, rest[-2000:]
    stopped = caffelog.parse("".join(seen) + rest)
    found = re.search(r"Resume it with: (caffebox train .*?) \(or --resume\)", rest)
    assert found, rest[-2000:]
    _edit(project, SOLVER, "max_iter: 1000000", f"max_iter: {stopped.iteration + 200}")
    args = shlex.split(found.group(1))[1:] + ["--image", image]
    done = caffebox(*args, cwd=project, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    log = caffelog.parse(done.stdout)
    assert log.done and log.iteration == stopped.iteration + 200
    first_iteration, first_loss = log.losses[0]
    assert first_iteration >= stopped.iteration and first_loss < 1.0, log.losses[:3]
    # --resume takes the newest .solverstate by itself.
    _edit(project, SOLVER, f"max_iter: {stopped.iteration + 200}",
          f"max_iter: {stopped.iteration + 300}")  # fmt: skip
    again = caffebox("train", SOLVER, "--resume", "--image", image, cwd=project, timeout=300)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-2000:]
    assert caffelog.parse(again.stdout).losses[0][0] >= stopped.iteration + 200
    _no_containers(engine)
