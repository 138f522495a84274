"""Sweeps on the real image: two variants side by side here, and a 3-variant job array
on a real one-node Slurm cluster (slurmctld, slurmd, munge on localhost)."""

from __future__ import annotations

import json
import os
import time
import types
from pathlib import Path

import docker
import pytest

from .support.cli import caffebox, digits_project

pytestmark = pytest.mark.image
SOLVER = "examples/digits/solver.prototxt"


def _short(project: Path, iters: int = 300) -> Path:
    path = project / SOLVER
    text = path.read_text().replace("max_iter: 1500", f"max_iter: {iters}")
    path.write_text(text.replace("test_interval: 500", "test_interval: 100")
                    .replace("snapshot: 500", "snapshot: 0"))  # fmt: skip
    return project


def _records(root: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(root.glob("*/snapshots/*.runs/*/run.json"))]


def _sweep_watching_cpusets(project: Path, engine, *args: str) -> tuple[object, set[str]]:
    """The sweep, while the engine is asked which CPUs each running container may use."""
    import subprocess

    from .support.cli import CAFFEBOX

    proc = subprocess.Popen([*CAFFEBOX, "sweep", *args], cwd=project, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    cpusets = set()
    while proc.poll() is None:
        try:
            for c in engine.containers.list(filters={"label": "io.caffebox.run"}):
                cpusets.add(c.attrs["HostConfig"].get("CpusetCpus", ""))
        except docker.errors.NotFound:  # one ended between the listing and its inspect
            pass
        time.sleep(0.2)
    out, err = proc.communicate()
    return types.SimpleNamespace(returncode=proc.returncode, stdout=out, stderr=err), cpusets


def test_local_sweep_two_at_a_time(tmp_path, engine, image):
    project = _short(digits_project(tmp_path))
    started = time.monotonic()
    done, cpusets = _sweep_watching_cpusets(
        project, engine, SOLVER, "--set", "base_lr=0.01,0.05", "--parallel", "2", "--image",
        image,
    )  # fmt: skip
    took = time.monotonic() - started
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert cpusets == {"0", "1"}, f"the containers' own CPU sets: {cpusets}"
    (root,) = (project / "sweeps").iterdir()
    records = _records(root)
    assert len(records) == 2 and all(r["exit_code"] == 0 for r in records)
    lines = done.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("variant "))
    rows = [line.split() for line in lines[header + 2 : header + 4]]
    accuracies = [float(r[-1]) for r in rows]
    assert accuracies == sorted(accuracies, reverse=True), done.stdout[-2000:]
    assert (root / "curves.png").stat().st_size > 10_000
    assert "CPUs 0)" in done.stdout and "CPUs 1)" in done.stdout
    print(f"\nsweep of 2 digits variants, --parallel 2: {took:.1f}s")
    again = caffebox("sweep", SOLVER, "--set", "base_lr=0.01,0.05", "--resume", "--image", image,
                     cwd=project)  # fmt: skip
    assert again.returncode == 0 and "(0 to run)" in again.stdout, again.stdout[-2000:]


def test_slurm_array(tmp_path, engine, image, slurm_cluster):
    project = _short(digits_project(tmp_path))
    env = {**os.environ, **slurm_cluster}
    started = time.monotonic()
    done = caffebox("sweep", SOLVER, "--set", "base_lr=0.01,0.03,0.05", "--slurm", "--wait",
                    "--image", image, cwd=project, env=env, timeout=1200)  # fmt: skip
    print(f"\nSlurm + Docker sweep of 3: {time.monotonic() - started:.1f} s")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "Slurm tasks: 3 COMPLETED" in done.stdout
    (root,) = (project / "sweeps").iterdir()
    records = _records(root)
    assert len(records) == 3 and all(r["exit_code"] == 0 for r in records)
    assert all(r["final"]["test"]["accuracy"] > 0.5 for r in records)
    status = caffebox("sweep", "--status", str(root.relative_to(project)), cwd=project, env=env)
    assert status.returncode == 0, status.stdout + status.stderr
    assert status.stdout.count("base_lr=") == 3 and (root / "curves.png").is_file()


def test_slurm_node_without_an_engine_fails_the_task(tmp_path, image, slurm_cluster):
    project = _short(digits_project(tmp_path), iters=20)
    env = {**os.environ, **slurm_cluster}
    done = caffebox("sweep", SOLVER, "--set", "base_lr=0.01", "--slurm", "--wait", "--image",
                    image, "--slurm-args", "--export=ALL,DOCKER_HOST=unix:///nonexistent.sock",
                    cwd=project, env=env, timeout=300)  # fmt: skip
    assert done.returncode != 0
    assert "1 FAILED" in done.stdout, done.stdout
    (root,) = (project / "sweeps").iterdir()
    (output,) = root.glob("slurm-*_0.out")
    assert "Cannot reach the Docker engine" in output.read_text()


def test_a_failed_run_is_reported_and_the_others_finish(tmp_path, engine, image):
    project = _short(digits_project(tmp_path), iters=200)
    done = caffebox("sweep", SOLVER, "--set", "base_lr=1000000,0.05", "--parallel", "1",
                    "--image", image, cwd=project, timeout=900)  # fmt: skip
    assert done.returncode == 1, done.stdout[-3000:]
    assert "base_lr=1000000 failed" in done.stdout and "base_lr=0.05 finished" in done.stdout
    assert "diverged" in done.stdout  # the failed run's own paragraph, under the table
    assert not engine.containers.list(all=True, filters={"label": "io.caffebox.run"})


def test_ctrl_c_stops_every_run(tmp_path, engine, image):
    import signal
    import subprocess

    from .support.cli import CAFFEBOX

    project = _short(digits_project(tmp_path), iters=1_000_000)
    proc = subprocess.Popen(
        [*CAFFEBOX, "sweep", SOLVER, "--set", "base_lr=0.01,0.05", "--parallel", "2",
         "--image", image], cwd=project, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    try:
        # Wait on the event, not a clock: both runs' Caffe has logged an iteration (its
        # SIGINT handler is in place, so Ctrl-C snapshots rather than kills).
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                running = engine.containers.list(filters={"label": "io.caffebox.run"})
                logs = [c.logs().decode(errors="replace") for c in running]
            except docker.errors.DockerException:  # one went away between list and logs
                continue
            if len(logs) == 2 and all("] Iteration " in text for text in logs):
                break
            time.sleep(0.2)
        else:
            pytest.fail("the two runs never both reached an iteration")
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            proc.kill()
            for c in engine.containers.list(all=True, filters={"label": "io.caffebox.run"}):
                try:
                    c.remove(force=True)
                except docker.errors.APIError:  # caffebox is removing it already
                    pass
    assert proc.returncode == 130, out[-3000:]
    assert "--resume" in out
    assert not engine.containers.list(all=True, filters={"label": "io.caffebox.run"})
    (root,) = (project / "sweeps").iterdir()
    states = list(root.glob("*/snapshots/*.solverstate"))
    assert len(states) == 2, "each run snapshotted"

    # --resume finishes both: each variant continues from its own .solverstate.
    stopped = {s.parent.parent: int(s.name.split("_iter_")[1].split(".")[0]) for s in states}
    end = max(stopped.values()) + 200
    solver = project / SOLVER
    solver.write_text(solver.read_text().replace("max_iter: 1000000", f"max_iter: {end}"))
    done = caffebox("sweep", SOLVER, "--set", "base_lr=0.01,0.05", "--parallel", "2",
                    "--resume", "--image", image, cwd=project, timeout=900)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    for variant, at in stopped.items():
        newest = sorted((variant / "snapshots").glob("*.runs/*/"))[-1]
        meta = json.loads((newest / "run.json").read_text())
        assert meta["exit_code"] == 0 and meta["max_iter"] == end, meta
        assert (variant / "snapshots" / f"digits_iter_{end}.solverstate").is_file()
        first = (newest / "iterations.csv").read_text().splitlines()[1].split(",")[0]
        assert float(first) >= at, f"{variant.name} started again from {first}, not {at}"


@pytest.fixture(scope="module")
def unpacked(image, tmp_path_factory):
    """`caffebox export IMAGE DIR/`: the image as a folder for ch-run, in one step."""
    folder = tmp_path_factory.mktemp("export") / "caffebox-cpu"
    done = caffebox("export", image, f"{folder}/", cwd=folder.parent, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert (folder / "usr/bin/caffebox-run").is_file() and not list(folder.parent.glob("*.zst"))
    return folder


def test_slurm_array_with_charliecloud_and_no_docker(tmp_path, unpacked, slurm_cluster):
    """Clusters rarely allow Docker: each task runs the unpacked export with ch-run, and
    no task can reach any Docker engine."""
    project = _short(digits_project(tmp_path))
    env = {**os.environ, **slurm_cluster, "DOCKER_HOST": "unix:///nonexistent.sock"}
    started = time.monotonic()
    done = caffebox("sweep", SOLVER, "--set", "base_lr=0.01,0.03,0.05", "--slurm", "--wait",
                    "--runtime", "charliecloud", "--image", str(unpacked), cwd=project,
                    env=env, timeout=1200)  # fmt: skip
    print(f"\nSlurm + Charliecloud sweep of 3: {time.monotonic() - started:.1f} s")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "Slurm tasks: 3 COMPLETED" in done.stdout
    (root,) = (project / "sweeps").iterdir()
    script = (root / "array.sbatch").read_text()
    assert f"--image {unpacked}" in script and "--runtime charliecloud" in script
    records = _records(root)
    assert len(records) == 3 and all(r["exit_code"] == 0 for r in records)
    assert all(r["image"]["name"] == str(unpacked) and r["image"]["id"] for r in records)
    assert all(r["final"]["test"]["accuracy"] > 0.5 for r in records)
    assert (root / "curves.png").is_file()


def test_a_layer_field_of_the_grid(tmp_path, engine, image):
    """--set LAYER.FIELD: the loss layer's loss_weight, 1 and 0 (with 0 nothing learns)."""
    project = _short(digits_project(tmp_path), iters=200)
    done = caffebox("sweep", SOLVER, "--set", "loss.loss_weight=1,0", "--parallel", "1",
                    "--image", image, cwd=project, timeout=900)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    (root,) = (project / "sweeps").iterdir()
    nets = {p.parent.name: p.read_text() for p in root.glob("*/net.prototxt")}
    assert len(nets) == 2 and any("loss_weight: 0" in t for t in nets.values()), nets.keys()
    final = {r["solver"]["path"]: r["final"]["test"]["accuracy"] for r in _records(root)}
    weighted = [acc for path, acc in final.items() if "loss.loss-weight-1/" in path]
    unweighted = [acc for path, acc in final.items() if "loss.loss-weight-0/" in path]
    assert weighted[0] > 0.8 and unweighted[0] < 0.3, final
