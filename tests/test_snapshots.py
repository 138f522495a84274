"""Whole snapshot pairs, read from the protobuf wire format without Caffe."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from caffebox import snapshots, training
from caffebox import solver as solverlib
from caffebox.errors import CaffeboxError


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def _field(number: int, value: int | bytes) -> bytes:
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value)
    return _varint(number << 3 | 2) + _varint(len(value)) + value


def solverstate(iteration: int, model: str) -> bytes:
    """SolverState: iter (1), learned_net (2), history (3: a BlobProto), current_step (4)."""
    history = _field(5, b"\x00" * 40)  # BlobProto.data, packed floats
    return _field(1, iteration) + _field(2, model.encode()) + _field(3, history) + _field(4, 0)


def caffemodel(size: int = 3000) -> bytes:
    """NetParameter: name (1), then one layer (100) holding a blob of `size` bytes."""
    return _field(1, b"net") + _field(100, _field(1, b"ip") + _field(7, b"\x01" * size))


message = st.lists(st.tuples(st.integers(1, 536870911),
                             st.one_of(st.integers(0, 2**63), st.binary(max_size=300))),
                   min_size=1, max_size=8)  # fmt: skip


@given(message)
def test_a_message_parses_and_any_cut_inside_its_last_field_does_not(items):
    data = b"".join(_field(n, v) for n, v in items)
    assert [(n, v) for n, _, v in snapshots.fields(data)] == items
    last = _field(*items[-1])
    for cut in range(len(data) - len(last) + 1, len(data)):
        with pytest.raises(snapshots.Truncated):
            snapshots.fields(data[:cut])


@pytest.fixture
def project(tmp_path):
    (tmp_path / "net.prototxt").write_text("")
    (tmp_path / "solver.prototxt").write_text(
        'net: "net.prototxt"\nmax_iter: 400\nsnapshot_prefix: "snaps/run"\n'
    )
    snaps = tmp_path / "snaps"
    snaps.mkdir()
    for it in (100, 200, 300):
        (snaps / f"run_iter_{it}.caffemodel").write_bytes(caffemodel())
        (snaps / f"run_iter_{it}.solverstate").write_bytes(
            solverstate(it, f"snaps/run_iter_{it}.caffemodel"))
    return tmp_path


def _plan(project, **options):
    return training.plan(training.TrainOptions(solver="solver.prototxt", image="i", **options),
                         cwd=project)  # fmt: skip


def test_resume_takes_the_newest_whole_pair_and_names_what_it_skipped(project):
    snaps = project / "snaps"
    model = snaps / "run_iter_300.caffemodel"
    model.write_bytes(model.read_bytes()[:1500])  # a kill during the write
    state = snaps / "run_iter_200.solverstate"
    plan = _plan(project, resume=True)
    assert plan.spec.command[-2:] == ["-snapshot", str(state)]
    assert plan.notes == ["skipped snaps/run_iter_300.caffemodel: cut short at 1 KB; the whole "
                          "one before it is 3 KB"]  # fmt: skip
    assert model.exists()  # never deleted


def test_a_state_naming_a_missing_model_is_passed_over(project):
    (project / "snaps" / "run_iter_300.caffemodel").unlink()
    plan = _plan(project, resume=True)
    assert plan.spec.command[-1].endswith("run_iter_200.solverstate")
    assert "run_iter_300.caffemodel: (named by run_iter_300.solverstate) does not exist" in \
        plan.notes[0]  # fmt: skip


def test_no_whole_pair_is_one_paragraph(project):
    for f in (project / "snaps").glob("*.solverstate"):
        f.write_bytes(f.read_bytes()[:5])
    with pytest.raises(CaffeboxError, match="found no whole snapshot .* None was deleted"):
        _plan(project, resume=True)


def test_a_damaged_snapshot_given_is_refused_naming_the_newest_whole_one(project):
    state = project / "snaps" / "run_iter_300.solverstate"
    state.write_bytes(state.read_bytes()[:-3])
    with pytest.raises(CaffeboxError) as caught:
        _plan(project, snapshot="snaps/run_iter_300.solverstate")
    said = str(caught.value)
    assert "run_iter_300.solverstate cut short" in said
    assert "The newest whole one is snaps/run_iter_200.solverstate" in said


def test_the_summary_names_only_a_whole_pair(project):
    (project / "snaps" / "run_iter_300.caffemodel").write_bytes(b"\x0a\x03ne")
    lines = ["Iteration 300, loss = 0.5", "Optimization Done."]
    for it in (200, 300):
        lines += [f"Snapshotting to binary proto file snaps/run_iter_{it}.caffemodel",
                  f"Snapshotting solver state to binary proto file snaps/run_iter_{it}"
                  ".solverstate"]  # fmt: skip
    log = training.TrainingLog()
    for line in lines:
        log.feed(line, 0.0)
    result = training.TrainedRun(0, [], log=log)
    text = training.summary(result, 400, project)
    assert "'snaps/run_iter_200.caffemodel', 'snaps/run_iter_200.solverstate'" in text
    plan = _plan(project, overwrite=True)
    assert "--snapshot 'snaps/run_iter_200.solverstate'" in training._resume_hint(result, plan)
    solverlib.load("solver.prototxt", project)


def _hdf5(version: int, end: int, size: int) -> bytes:
    """A file starting with an HDF5 superblock whose end-of-file address is `end`."""
    if version == 0:
        head = snapshots.HDF5_SIGNATURE + bytes([0, 0, 0, 0, 0, 8, 8, 0]) + b"\x00" * 8
        head += (0).to_bytes(8, "little") + (2**64 - 1).to_bytes(8, "little")
    else:
        head = snapshots.HDF5_SIGNATURE + bytes([2, 8, 8, 0]) + (0).to_bytes(8, "little")
        head += (2**64 - 1).to_bytes(8, "little")
    head += end.to_bytes(8, "little")
    return head + b"\x00" * (size - len(head))


@pytest.mark.parametrize("version", [0, 2])
def test_hdf5_snapshots_cut_short_are_seen(tmp_path, version):
    state = tmp_path / "run_iter_100.solverstate.h5"
    model = tmp_path / "run_iter_100.caffemodel.h5"
    state.write_bytes(_hdf5(version, 4000, 4000))
    model.write_bytes(_hdf5(version, 9000, 9000))
    assert snapshots.check_pair(state, tmp_path).whole
    model.write_bytes(_hdf5(version, 9000, 9000)[:5000])
    pair = snapshots.check_pair(state, tmp_path)
    assert pair.bad == model and pair.why == "cut short at 5 KB"
    state.write_bytes(b"not hdf5")
    assert snapshots.check_pair(state, tmp_path).why == "is not an HDF5 file"
