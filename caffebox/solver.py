"""Reading a solver file and checking what it names, before any container starts.

Caffe resolves relative paths in solver and net files against its working
directory. `caffebox train` runs Caffe in the current directory, mounted at the same
absolute path, so the host can check every path exactly as Caffe will see it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from caffebox import prototxt
from caffebox.errors import CaffeboxError

NET_FIELDS = ("net", "train_net", "test_net")
# The solver fields caffebox reads itself, with the kind of value Caffe's proto gives them.
INT_FIELDS = ("max_iter", "test_iter", "test_interval", "display", "snapshot", "iter_size",
              "average_loss", "random_seed")  # fmt: skip
NUMBER_FIELDS = ("base_lr", "momentum", "weight_decay", "gamma", "power", "clip_gradients")
STRING_FIELDS = (*NET_FIELDS, "snapshot_prefix")
ENUM_FIELDS = {"solver_mode": ("CPU", "GPU")}


@dataclass
class Solver:
    """What the host needs to know about one solver file."""

    path: Path
    cwd: Path
    params: prototxt.Message
    net_files: list[Path] = field(default_factory=list)

    @property
    def max_iter(self) -> int:
        return int(self.params.first("max_iter", 0))

    @property
    def snapshot_interval(self) -> int:
        """Caffe's `snapshot`: iterations between snapshots (0: only the final one)."""
        return int(self.params.first("snapshot", 0))

    @property
    def snapshot_prefix(self) -> Path:
        """Where Caffe's snapshot names start: PREFIX_iter_N.caffemodel."""
        prefix = str(self.params.first("snapshot_prefix", ""))
        return self.cwd / prefix if prefix else self.cwd / ""

    @property
    def prefix_name(self) -> str:
        """The snapshot files' name part ('digits' for snapshots/digits_iter_N...)."""
        return prefix_name(self.params)

    def existing_snapshots(self) -> list[Path]:
        """Snapshots an earlier run left under this solver's prefix, oldest name first."""
        pattern = self.prefix_name + "_iter_*"
        found = [
            p
            for p in self.snapshot_dir.glob(pattern)
            if p.is_file() and (".caffemodel" in p.name or ".solverstate" in p.name)
        ]
        return sorted(found)

    @property
    def snapshot_dir(self) -> Path:
        prefix = str(self.params.first("snapshot_prefix", ""))
        if not prefix or prefix.endswith("/"):
            return self.cwd / prefix
        return (self.cwd / prefix).parent

    def python_layers(self) -> list[tuple[Path, str, str]]:
        """(net file, module, class) for every Python layer in the solver's nets."""
        return [(net, module, cls) for net in self.net_files
                for module, cls in net_python_layers(prototxt.parse_file(net))]  # fmt: skip


def net_python_layers(net: prototxt.Message) -> list[tuple[str, str]]:
    """(module, class) of every Python layer in a parsed net."""
    found = []
    for layer in net.all("layer"):
        if layer.first("type") == "Python":
            param = layer.first("python_param") or prototxt.Message()
            found.append((str(param.first("module", "")), str(param.first("layer", ""))))
    return found


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def _parse(path: Path, what: str) -> prototxt.Message:
    try:
        return prototxt.parse_file(path)
    except prototxt.ParseError as exc:
        raise CaffeboxError(
            f"{path} is not a valid {what} file ({exc}). Fix the protobuf text syntax there: "
            "each field is 'name: value' and every '{' needs its '}'."
        ) from None
    except UnicodeDecodeError:
        raise CaffeboxError(
            f"{path} is not a text file. Pass the {what}'s .prototxt file, not a binary "
            "(.caffemodel or .solverstate)."
        ) from None


def _visible(path: Path, cwd: Path, named_by: str) -> None:
    if not _inside(path, cwd):
        raise CaffeboxError(
            f"{path}, named by {named_by}, is outside the current directory {cwd}, the only "
            "folder the container sees. Run caffebox from a folder that contains all your "
            "solver, net and data files, or move the file inside it."
        )


def prefix_name(params: prototxt.Message) -> str:
    """The basename of a solver's snapshot_prefix: the one place that computes it."""
    return str(params.first("snapshot_prefix", "")).rsplit("/", 1)[-1]


def _line_of(path: Path, name: str) -> str:
    """'line N' of the first 'name:' in the file, for messages."""
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        if line.split("#", 1)[0].strip().startswith(f"{name}:"):
            return f"line {number}"
    return "a line"


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_values(path: Path, params: prototxt.Message) -> None:
    """Every solver value caffebox reads has the kind Caffe expects: one paragraph naming
    the field, the line and the file otherwise (not a ValueError from int('twenty'))."""
    for name in (*INT_FIELDS, *NUMBER_FIELDS, *STRING_FIELDS, *ENUM_FIELDS):
        for value in params.all(name):
            if name in INT_FIELDS:
                ok, want = _is_number(value) and float(value).is_integer(), "a whole number"
            elif name in NUMBER_FIELDS:
                ok, want = _is_number(value), "a number"
            elif name in STRING_FIELDS:
                ok, want = isinstance(value, str) and not isinstance(value, prototxt.Word), (
                    'a quoted string, e.g. "snapshots/net"'
                )
            else:
                choices = ENUM_FIELDS[name]
                ok, want = value in choices, " or ".join(choices)
            if not ok:
                shown = value if not isinstance(value, prototxt.Message) else "{ ... }"
                raise CaffeboxError(
                    f"{path}, {_line_of(path, name)}: {name} is {shown!r}, but Caffe expects "
                    f"{want} there. Fix that line, e.g. '{_example(name)}'."
                )


def _example(name: str) -> str:
    if name in INT_FIELDS:
        return f"{name}: 1000"
    if name in NUMBER_FIELDS:
        return f"{name}: 0.01"
    if name in ENUM_FIELDS:
        return f"{name}: CPU"
    return f'{name}: "examples/digits/{"net.prototxt" if name in NET_FIELDS else "digits"}"'


def load(solver_file: str | os.PathLike[str], cwd: Path | None = None) -> Solver:
    """Read and check a solver: it parses, names a net, and every named file exists."""
    cwd = (cwd or Path.cwd()).resolve()
    path = (cwd / solver_file).resolve()
    if not path.is_file():
        hint = " (it is a folder)" if path.is_dir() else ""
        raise CaffeboxError(
            f"The solver file {path} does not exist{hint}. Give the path of your "
            "solver.prototxt relative to the current directory, e.g. 'caffebox train "
            "examples/digits/solver.prototxt'."
        )
    _visible(path, cwd, "the command line")
    params = _parse(path, "solver")
    check_values(path, params)
    solver = Solver(path=path, cwd=cwd, params=params)
    names = [(f, str(v)) for f in NET_FIELDS for v in params.all(f)]
    inline = any(params.all(f) for f in ("net_param", "train_net_param", "test_net_param"))
    if not names and not inline:
        raise CaffeboxError(
            f"{path} names no network. Add a line such as 'net: \"train_val.prototxt\"' "
            "(or train_net / test_net) with the path relative to the current directory."
        )
    for field_name, name in names:
        net = (cwd / name).resolve()
        if not net.is_file():
            raise CaffeboxError(
                f'{path} names {field_name}: "{name}", but {net} does not exist. Caffe reads '
                f"it relative to the current directory ({cwd}): fix the path in {path.name} or "
                "run caffebox from the folder it is relative to."
            )
        _visible(net, cwd, str(path))
        _parse(net, "net")
        solver.net_files.append(net)
    return solver


def check_snapshot_dir(solver: Solver, create: bool = True) -> Path:
    """Make sure Caffe can write its snapshots. Returns the folder.

    With create=False nothing on disk changes: a missing folder must be creatable
    (its nearest existing parent writable). With create=True a missing folder is made.
    """
    folder = solver.snapshot_dir
    _visible(folder, solver.cwd, str(solver.path))
    where = f"The snapshot folder {folder} (from snapshot_prefix in {solver.path})"
    if not folder.exists():
        parent = next(p for p in folder.parents if p.exists())
        if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
            raise CaffeboxError(
                f"{where} does not exist and cannot be created ({parent} is not a writable "
                "folder). Create it or change snapshot_prefix."
            )
        if not create:
            return folder
        try:
            folder.mkdir(parents=True)
        except OSError as exc:
            raise CaffeboxError(
                f"{where} does not exist and cannot be created ({exc.strerror}). Create it or "
                "change snapshot_prefix."
            ) from None
    if not folder.is_dir():
        raise CaffeboxError(
            f"{where} is a file, not a folder. Move the file away or change snapshot_prefix."
        )
    if not os.access(folder, os.W_OK | os.X_OK):
        raise CaffeboxError(
            f"{where} is not writable by you (uid {os.getuid()}), and Caffe runs as you. Fix "
            "its permissions (e.g. 'sudo chown -R $(id -u):$(id -g) <folder>') or change "
            "snapshot_prefix."
        )
    return folder
