"""Bad inputs caught before any container starts: one paragraph, exit 2, nothing touched.

Each row is a row of the bad-inputs table (docs/errors.md). The engine is
pointed at a socket that does not exist: none of these may need it (the last row is
the engine being down).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from caffebox import locks

from .support.cli import assert_one_paragraph, caffebox, digits_project, fingerprint

SOLVER = "examples/digits/solver.prototxt"
NET = "examples/digits/net.prototxt"


def _edit(project: Path, name: str, old: str, new: str) -> None:
    path = project / name
    text = path.read_text()
    assert old in text, f"{old!r} not in {name}"
    path.write_text(text.replace(old, new, 1))


def _write(project: Path, name: str, text: str | bytes) -> None:
    path = project / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode())


# (id, how to break the project, command, exit status, what stderr must say)
ROWS = [
    ("solver-missing", None, ["train", "nope/solver.prototxt"], 2,
     r"The solver file \S+nope/solver.prototxt does not exist"),
    ("solver-is-a-folder", None, ["train", "examples/digits"], 2, r"\(it is a folder\)"),
    ("solver-syntax", lambda p: _write(p, "s.prototxt", 'net: "x" layer {'), ["train",
     "s.prototxt"], 2, r"is not a valid solver file \(line 1: the block opened here"),
    ("solver-open-list", lambda p: _write(p, "s.prototxt", "test_iter: [1, 2\n"),
     ["train", "s.prototxt"], 2, r"line 1: the list of 'test_iter' has no closing"),
    ("solver-binary", lambda p: _write(p, "s.prototxt", b"\x08\x96\x01\xff\xfe"),
     ["train", "s.prototxt"], 2, r"is not a text file"),
    ("solver-no-net", lambda p: _write(p, "s.prototxt", "max_iter: 10\n"),
     ["train", "s.prototxt"], 2, r"names no network"),
    ("net-missing", lambda p: _edit(p, SOLVER, "examples/digits/net", "examples/digits/nett"),
     ["train", SOLVER], 2, r'names net: "examples/digits/nett.prototxt", but \S+ does not'),
    ("net-outside", lambda p: _edit(p, SOLVER, '"examples/digits/net.prototxt"',
     '"/etc/hostname"'), ["train", SOLVER], 2, r"outside the current directory"),
    ("net-mismatched-brace", lambda p: _edit(p, NET, "include { phase: TRAIN }",
     "include { phase: TRAIN >"), ["train", SOLVER], 2,
     r"is not a valid net file \(line \d+: '>' closes a block opened with"),
    ("max-iter-zero", lambda p: _edit(p, SOLVER, "max_iter: 1500", "max_iter: 0"),
     ["train", SOLVER], 2, r"sets max_iter: 0, so Caffe would train no iteration"),
    ("max-iter-not-a-number", lambda p: _edit(p, SOLVER, "max_iter: 1500", "max_iter: twenty"),
     ["train", SOLVER], 2, r"solver.prototxt, line \d+: max_iter is 'twenty', but Caffe "
     r"expects a whole number"),
    ("base-lr-not-a-number", lambda p: _edit(p, SOLVER, "base_lr: ", "base_lr: fast #"),
     ["train", SOLVER], 2, r"line \d+: base_lr is 'fast', but Caffe expects a number"),
    ("run-without-dashes", None, ["run", "caffe", "test"], 2,
     r"the program goes after '--'.*'caffebox run -- caffe test'"),
    ("run-without-program", None, ["run"], 2, r"needs the program and its arguments after '--'"),
    ("max-iter-missing", lambda p: _edit(p, SOLVER, "max_iter: 1500", ""),
     ["train", SOLVER], 2, r"has no max_iter"),
    ("python-layer-no-module", lambda p: _edit(p, NET, 'module: "caffebox_layers.data" ', ""),
     ["train", SOLVER], 2, r"has a Python layer without python_param \{ module"),
    ("layers-not-a-folder", None, ["train", SOLVER, "--layers", "mine"], 2,
     r"--layers mine: \S+ is not a folder"),
    ("weights-missing", None, ["train", SOLVER, "--weights", "w.caffemodel"], 2,
     r"--weights w.caffemodel: \S+ does not exist"),
    ("weights-and-resume", lambda p: _write(p, "w.caffemodel", b"x"),
     ["train", SOLVER, "--weights", "w.caffemodel", "--resume"], 2, r"not both"),
    ("resume-without-snapshots", None, ["train", SOLVER, "--resume"], 2,
     r"--resume found no .solverstate"),
    ("snapshot-missing", None, ["train", SOLVER, "--snapshot", "s.solverstate"], 2,
     r"--snapshot s.solverstate: \S+ does not exist"),
    ("earlier-snapshots", lambda p: _write(p, "snapshots/digits_iter_500.caffemodel", b"x"),
     ["train", SOLVER], 2, r"from an earlier run .*--resume.*--overwrite"),
    ("snapshot-prefix-outside", lambda p: _edit(p, SOLVER, '"snapshots/digits"',
     '"/tmp/elsewhere/digits"'), ["train", SOLVER], 2, r"outside the current directory"),
    ("snapshot-folder-is-a-file", lambda p: _write(p, "snapshots", b"x"), ["train", SOLVER],
     2, r"The snapshot folder \S+ .* is a file, not a folder"),
    ("gpu-value", None, ["train", SOLVER, "--gpu", "first"], 2, r"--gpu 'first': give GPU"),
    ("settings-not-yaml", lambda p: _write(p, "invoke.yaml", "caffebox:\n  image: [x\n"),
     ["train", SOLVER], 2, r"settings file \S+invoke.yaml is not valid YAML \(line 3"),
    ("settings-not-a-mapping", lambda p: _write(p, "invoke.yaml", "- image\n"),
     ["config"], 2, r"holds a list, not a mapping"),
    ("python-unbalanced-quote", None, ["python", "s.py 'x"], 2,
     r"Cannot split the script and its arguments into words \(No closing quotation\)"),
    ("test-layers-missing-folder", None, ["test-layers", "my_tests"], 2,
     r"my_tests does not exist"),
    ("test-layers-pytest-args-quote", lambda p: _write(p, "tests/test_x.py", ""),
     ["test-layers", "tests", "--pytest-args", "-k 'a"], 2, r"Cannot split --pytest-args"),
    ("gradcheck-no-input", None, ["gradcheck", "m.L"], 2, r"needs the layer's bottoms"),
    ("gradcheck-several-gpus", None, ["gradcheck", "m.L", "--input", "x=2", "--gpu", "0,1"],
     2, r"gradcheck --gpu '0,1': name one GPU"),
    ("config-unknown-variant", None, ["config", "--variant", "tpu"], 2,
     r"Unknown variant 'tpu': caffebox builds cpu, gpu"),
    ("distro-unknown", None, ["build-cpu", "--distro", "bullseye"], 2,
     r"--distro 'bullseye': caffebox builds on Debian trixie and bookworm"),
    ("cuda-arch-typo", None, ["build-gpu", "--cuda-arch", "hopper"], 2,
     r"--cuda-arch: 'hopper' is not a compute capability"),
    ("caffe-src-missing", None, ["build-cpu", "--caffe-src", "no/caffe"], 2,
     r"The Caffe source \S+no/caffe does not exist"),
    ("caffe-src-and-repo", None, ["build-cpu", "--caffe-src", ".", "--caffe-repo", "x"], 2,
     r"not both"),
    ("engine-down", None, ["train", SOLVER], 2, r"Cannot reach the Docker engine"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "breaks", "args", "code", "message"), ROWS, ids=[r[0] for r in ROWS]
)
def test_bad_input(tmp_path, name, breaks, args, code, message):
    project = digits_project(tmp_path)
    if breaks:
        breaks(project)
    before = fingerprint(project)
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock", "HOME": str(tmp_path)}
    done = caffebox(*args, cwd=project, env=env, timeout=120)
    assert_one_paragraph(done, code, message)
    assert fingerprint(project) == before, "a bad input changed the user's files"


def test_second_run_on_the_same_snapshot_prefix(tmp_path):
    """Two runs with one snapshot_prefix overwrote each other silently."""
    project = digits_project(tmp_path)
    (project / "snapshots").mkdir()
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"}
    with locks.held(locks.lock_path(project / "snapshots", "digits"), "snapshots"):
        before = fingerprint(project)
        done = caffebox("train", SOLVER, cwd=project, env=env, timeout=120)
        assert fingerprint(project) == before
    assert_one_paragraph(done, 2, r"Another caffebox run \(pid \d+\) is writing snapshots under")
