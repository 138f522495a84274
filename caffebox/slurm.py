"""A sweep as one Slurm job array: one task per variant, each running `caffebox train`
on its node the way it runs here (the node's Docker engine, Podman's socket, or
Charliecloud's ch-run on an unpacked export where a node has no engine).

The cluster needs a folder shared by the nodes (the project, where the sweep and its
records live), caffebox installed where the nodes see it, and the image on every node
(pulled from the registry setting, or built).
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import time
from pathlib import Path

from caffebox import templates
from caffebox.errors import CaffeboxError
from caffebox.grid import GridPoint

SCRIPT = "array.sbatch"
# States in which a task still holds or waits for a node.
ACTIVE = {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "SUSPENDED", "REQUEUED", "RESIZING"}


def _tool(name: str, args: list[str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run([name, *args], capture_output=True, text=True)
    except FileNotFoundError:
        raise CaffeboxError(
            f"{name} is not on PATH: --slurm needs a Slurm client on this machine (the login "
            "node of your cluster)."
        ) from None


def script(
    root: Path,
    variants: list[GridPoint],
    indices: list[int],
    cwd: Path,
    train_args: list[str],
    python: str = sys.executable,
    started: frozenset[int] = frozenset(),
) -> str:
    """The sbatch script: task N trains variant N with `python -m caffebox train`, resuming
    the variants in `started` (those with a .solverstate) from their newest whole one."""
    solvers = " ".join(shlex.quote(str(v.solver_file.relative_to(cwd))) for v in variants)
    modes = " ".join("--resume" if i in started else "--overwrite" for i in range(len(variants)))
    args = " ".join(shlex.quote(a) for a in train_args)
    return templates.render(
        SCRIPT, name=root.name, indices=",".join(map(str, indices)), root=str(root),
        cwd=str(cwd), solvers=solvers, python=shlex.quote(python), train_args=args,
        modes=modes,
    )  # fmt: skip


def submit(
    root: Path,
    variants: list[GridPoint],
    indices: list[int],
    cwd: Path,
    train_args: list[str],
    slurm_args: str,
    started: frozenset[int] = frozenset(),
) -> str:
    """Write the script and sbatch it; returns the job id."""
    path = root / SCRIPT
    path.write_text(script(root, variants, indices, cwd, train_args, started=started))
    done = _tool("sbatch", ["--parsable", *shlex.split(slurm_args), str(path)])
    if done.returncode != 0:
        raise CaffeboxError(
            f"sbatch refused the sweep's job array ({done.stderr.strip() or done.stdout.strip()}). "
            f"Check --slurm-args and the cluster (sinfo); the script is {path}.",
            exit_code=1,
        )
    return str(done.stdout).strip().split(";")[0]


def task_states(job: str) -> dict[int, str]:
    """Array task -> state: sacct where the cluster keeps accounting (every task, finished
    ones included), then scontrol over it (queued and running tasks, and finished ones for
    MinJobAge), whose state is the newer one where both answer."""
    states: dict[int, str] = {}
    done = _tool("sacct", ["-j", job, "-n", "-P", "-X", "-o", "JobID,State"])
    if done.returncode == 0:
        for line in done.stdout.splitlines():
            ident, _, state = line.partition("|")
            if "_" in ident and ident.split("_", 1)[1].isdigit():
                states[int(ident.split("_", 1)[1])] = state.split()[0] if state else "?"
    shown = _tool("scontrol", ["-o", "show", "job", job])
    for line in shown.stdout.splitlines():
        fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
        if fields.get("ArrayTaskId", "").isdigit():
            states[int(fields["ArrayTaskId"])] = fields.get("JobState", "?")
    return states


def wait(job: str, tasks: int, poll: float = 2.0, timeout: float = 24 * 3600) -> dict[int, str]:
    """Poll until no task of the array is queued or running; the last states seen."""
    deadline = time.monotonic() + timeout
    seen: dict[int, str] = {}
    while True:
        states = task_states(job)
        seen.update(states)
        if len(seen) >= tasks and not (set(states.values()) & ACTIVE):
            return seen
        if not states and seen:  # purged from the controller: all ended
            return seen
        if time.monotonic() > deadline:
            raise CaffeboxError(f"Slurm job {job} did not finish in {timeout:.0f} s.", exit_code=1)
        time.sleep(poll)
