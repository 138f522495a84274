"""Which snapshot pairs are whole: read on the host, without Caffe.

A kill during a snapshot, or a full disk, leaves a `.solverstate` or `.caffemodel` cut
short; Caffe then aborts on it at `--resume` (`Check failed: ReadProtoFromBinaryFile`).
Both files are protocol buffers (SolverState, NetParameter), whose wire format says where
every field ends: a file cut short has a field that runs past its end. A pair is whole when
the `.solverstate` parses, and its `learned_net` names a `.caffemodel` that exists and
parses. HDF5 snapshots (snapshot_format: HDF5) are taken as whole when they are not empty.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from caffebox.errors import CaffeboxError
from caffebox.paths import shown


class Truncated(ValueError):
    """The bytes end inside a field."""


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= len(data):
            raise Truncated(f"a number runs past the end at byte {pos}")
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise Truncated(f"a number longer than 10 bytes at byte {pos}")


def fields(data: bytes) -> list[tuple[int, int, int | bytes]]:
    """(field number, wire type, value) of each top-level field; Truncated when the bytes
    end inside one or are not protocol-buffer wire format at all."""
    found: list[tuple[int, int, int | bytes]] = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, kind = key >> 3, key & 7
        if number == 0:
            raise Truncated(f"field number 0 at byte {pos}")
        if kind == 0:
            value, pos = _varint(data, pos)
            found.append((number, kind, value))
        elif kind in (1, 5):
            size = 8 if kind == 1 else 4
            if pos + size > len(data):
                raise Truncated(f"field {number} runs past the end")
            found.append((number, kind, data[pos : pos + size]))
            pos += size
        elif kind == 2:
            size, pos = _varint(data, pos)
            if pos + size > len(data):
                raise Truncated(f"field {number} needs {size} bytes, {len(data) - pos} are left")
            found.append((number, kind, data[pos : pos + size]))
            pos += size
        else:
            raise Truncated(f"wire type {kind} at byte {pos}")
    return found


def _problem(path: Path) -> str:
    """'' when the file is whole, else why not."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    if not data:
        return "is empty"
    if path.suffix == ".h5":
        return _hdf5_problem(data)
    try:
        fields(data)
    except Truncated:
        return f"cut short at {size_text(len(data))}"
    return ""


HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def _hdf5_problem(data: bytes) -> str:
    """An HDF5 file (snapshot_format: HDF5) is cut short when its superblock's end-of-file
    address lies past the bytes there are (HDF5's file format, superblock versions 0 to 3)."""
    if not data.startswith(HDF5_SIGNATURE) or len(data) < 12:
        return "is not an HDF5 file"
    version = data[8]
    if version in (0, 1):
        width, at = data[13], 24 + (4 if version == 1 else 0)
        at += 2 * width  # base address, free-space address: then the end-of-file address
    elif version in (2, 3):
        width, at = data[9], 12 + 2 * data[9]
    else:
        return ""  # a newer superblock: not read here
    if width not in (2, 4, 8) or len(data) < at + width:
        return f"cut short at {size_text(len(data))}"
    end = int.from_bytes(data[at : at + width], "little")
    return f"cut short at {size_text(len(data))}" if end > len(data) else ""


def size_text(n: float) -> str:
    """A size as people read it: 71 KB, 4.2 MB, 1.5 GiB."""
    if n >= 2**30:
        return f"{n / 2**30:.1f} GiB"
    return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{n / 2**10:.0f} KB"


def learned_net(state: Path) -> str:
    """The .caffemodel a .solverstate names (SolverState.learned_net, field 2)."""
    for number, kind, value in fields(state.read_bytes()):
        if number == 2 and kind == 2 and isinstance(value, bytes):
            return value.decode(errors="replace")
    return ""


def iteration(path: Path) -> int:
    digits = path.name.rsplit("_iter_", 1)[-1].split(".")[0]
    return int(digits) if digits.isdigit() else -1


@dataclass
class Pair:
    """One snapshot: the solver state, the model it names, and the damaged file with what
    is wrong with it (None and '' when the pair is whole)."""

    state: Path
    model: Path | None
    bad: Path | None = None
    why: str = ""

    @property
    def whole(self) -> bool:
        return self.bad is None

    @property
    def problem(self) -> str:
        return f"{self.bad.name} {self.why}" if self.bad is not None else ""


def check_pair(state: Path, cwd: Path) -> Pair:
    """The pair a .solverstate makes with its .caffemodel; whole or why not."""
    why = _problem(state)
    if why:
        return Pair(state, None, state, why)
    if state.suffix == ".h5":
        model = state.with_name(state.name.replace(".solverstate.h5", ".caffemodel.h5"))
    else:
        named = learned_net(state)
        if not named:
            return Pair(state, None, state, "names no .caffemodel")
        model = Path(named) if Path(named).is_absolute() else cwd / named
    if not model.is_file():
        return Pair(state, model, model, f"(named by {state.name}) does not exist")
    why = _problem(model)
    return Pair(state, model, model if why else None, why)


# A snapshot prefix's solver states: binary (.solverstate) and HDF5 (.solverstate.h5).
STATES = "_iter_*.solverstate*"


def pairs(folder: Path, prefix_name: str, cwd: Path) -> list[Pair]:
    """Every snapshot pair under a snapshot prefix, oldest first."""
    states = [p for p in folder.glob(prefix_name + STATES) if p.is_file()]
    return [check_pair(p, cwd) for p in sorted(states, key=iteration)]


def newest_whole(folder: Path, prefix_name: str, cwd: Path) -> tuple[Pair | None, list[str]]:
    """The newest whole pair, and one line for each damaged newer one passed over (never
    deleted)."""
    found = pairs(folder, prefix_name, cwd)
    whole = next((p for p in reversed(found) if p.whole), None)
    skipped = []
    for pair in reversed(found):
        if pair is whole:
            break
        assert pair.bad is not None
        line = f"skipped {shown(pair.bad, cwd)}: {pair.why}"
        if whole is not None and "cut short" in pair.why:
            same = whole.model if pair.bad.suffix == ".caffemodel" else whole.state
            if same is not None:
                line += f"; the whole one before it is {size_text(same.stat().st_size)}"
        skipped.append(line)
    return whole, skipped


def resume_point(folder: Path, prefix_name: str, cwd: Path) -> tuple[Path, list[str]]:
    """The .solverstate --resume continues from; CaffeboxError when none is whole."""
    whole, skipped = newest_whole(folder, prefix_name, cwd)
    if whole is None:
        if not skipped:
            raise CaffeboxError(
                f"--resume found no .solverstate matching {folder / (prefix_name + STATES)}. "
                "Train with snapshots "
                "first, or pass --snapshot FILE explicitly."
            )
        raise CaffeboxError(
            f"--resume found no whole snapshot under {folder}: {'; '.join(skipped)}. None was "
            "deleted. Start again with --overwrite (it replaces them), or pass --snapshot "
            "with a whole .solverstate from elsewhere."
        )
    return whole.state, skipped


def check_given(state: Path, cwd: Path) -> None:
    """--snapshot FILE: refuse a damaged pair before Caffe aborts on it."""
    pair = check_pair(state, cwd)
    if pair.whole:
        return
    prefix = state.name.rsplit("_iter_", 1)[0]
    whole, _ = newest_whole(state.parent, prefix, cwd)
    other = (f" The newest whole one is {shown(whole.state, cwd)}." if whole is not None
             else " No whole one is there.")  # fmt: skip
    raise CaffeboxError(
        f"--snapshot {shown(state, cwd)}: {pair.problem}, so Caffe would abort reading it "
        f"(a kill during the snapshot or a full disk leaves that).{other}"
    )
