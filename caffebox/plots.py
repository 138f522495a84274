"""Curves of one or several run records on one figure: train loss and test outputs
against iteration. matplotlib is an optional extra: pip install 'caffebox[plots]'."""

from __future__ import annotations

import math
from pathlib import Path

from caffebox import records
from caffebox.errors import CaffeboxError

INSTALL = "pip install 'caffebox[plots]'"


class NoMatplotlib(CaffeboxError):
    """Plots need matplotlib, which caffebox installs only with its [plots] extra."""


def _label(folder: Path) -> str:
    solver = records.read_meta(folder).get("solver", {}).get("path", "")
    if solver:
        return f"{Path(solver).parent.name or Path(solver).stem}/{folder.name}"
    return folder.name


def plot(folders: list[Path], out: Path, labels: list[str] | None = None) -> Path:
    """Draw the records' curves into `out` (PNG): loss on the left, test outputs right."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise NoMatplotlib(
            f"Plots need matplotlib: {INSTALL}. The numbers are in each record's "
            f"{records.CSV} meanwhile."
        ) from None
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4), dpi=100)
    styles = ["-", "--", ":", "-."]
    tests_seen = False
    for n, folder in enumerate(folders):
        rows = records.read_csv(folder / records.CSV)
        label = labels[n] if labels else _label(folder)
        color = f"C{n % 10}"
        points = [(r["iteration"], r["loss"]) for r in rows if "loss" in r]
        if points:
            left.plot(*zip(*points), color=color, label=label)
        names = sorted({k for r in rows for k in r if k.startswith("test")})
        for m, name in enumerate(names):
            points = [(r["iteration"], r[name]) for r in rows if name in r]
            if points:
                tests_seen = True
                right.plot(*zip(*points), color=color, linestyle=styles[m % 4], marker="o",
                           markersize=3, label=f"{label} {name}")  # fmt: skip
    left.set(title="train loss", xlabel="iteration", ylabel="loss")
    losses = [v for line in left.get_lines() for v in line.get_ydata() if math.isfinite(v)]
    if losses and min(losses) > 0 and max(losses) / min(losses) > 20:
        left.set_yscale("log")
    right.set(title="test outputs", xlabel="iteration")
    for axes in (left, right):
        axes.grid(alpha=0.3)
        if axes.get_lines():
            axes.legend(fontsize=7)
    if not tests_seen:
        right.text(0.5, 0.5, "no test pass in the log", ha="center", transform=right.transAxes)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with records.whole(out) as part:
            fig.savefig(part, format=out.suffix.lstrip(".") or "png")
    finally:
        plt.close(fig)
    return out


def plot_record(folder: Path) -> None:
    """curves.png in a finished record, where matplotlib is installed; never fails the run."""
    try:
        plot([folder], folder / records.PNG)
    except NoMatplotlib:
        pass  # the CSV has the numbers; `caffebox plot` says how to get plots
    except OSError:
        raise  # a full disk: training says so for the whole record
    except Exception as exc:  # noqa: BLE001 - a plot must never cost the record
        (folder / "curves.error.txt").write_text(f"{type(exc).__name__}: {exc}\n")


def plot_runs(runs: list[str], out: Path) -> tuple[list[Path], Path]:
    """`caffebox plot`: record folders (or folders of records) as given; what was drawn."""
    folders = []
    for run in runs:
        path = Path(run).resolve()
        if not path.is_dir():
            raise CaffeboxError(
                f"{run}: {path} is not a folder. Pass run record folders (each run prints its "
                "record folder when it ends), e.g. snapshots/digits.runs/20261126-213100."
            )
        folders += records.find(path)
    return folders, plot(folders, out)
