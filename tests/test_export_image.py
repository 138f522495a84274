"""`caffebox export` for real: the cpu image's rootfs, unpacked by a user, trains the
digits example under Charliecloud's unprivileged ch-run, and under chroot as root."""

from __future__ import annotations

import os
import re
import runpy
import shutil
import subprocess

import pytest

from caffebox import caffelog, export, paths

from .support.cli import caffebox, digits_project
from .support.containers import TrackedContainer

pytestmark = pytest.mark.image
USER = 4321
SOLVER = "examples/digits/solver.prototxt"


@pytest.fixture(scope="module")
def exported(image, open_tmp, engine):
    out = open_tmp / "export" / "caffebox-cpu.tar.zst"
    out.parent.mkdir()
    done = caffebox("export", image, str(out), cwd=open_tmp, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    print("\n" + done.stdout)
    assert "MB compressed" in done.stdout and out.is_file()
    assert not out.with_name(out.name + ".partial").exists()
    os.chmod(out, 0o644)
    return out


def _as_user(cmd, **kwargs):
    env = {"PATH": "/usr/bin:/bin", "USER": "caffeboxuser", "HOME": "/nonexistent"}
    return subprocess.run(cmd, user=USER, group=USER, env=env, capture_output=True, text=True,
                          **kwargs)  # fmt: skip


def _unpack(exported, folder):
    folder.mkdir()
    os.chown(folder, USER, USER)
    done = _as_user(["tar", "--zstd", "-xf", str(exported), "-C", str(folder)])
    assert done.returncode == 0, done.stderr[-2000:]
    assert (folder / "usr/bin/caffebox-run").is_file()
    return folder


def _project(folder):
    digits_project(folder)
    (folder / "snapshots").mkdir()  # Caffe itself makes no folder (caffebox train does)
    for path in [folder, *folder.rglob("*")]:
        os.chown(path, USER, USER)
    return folder


def _check_training(output: str, project) -> None:
    log = caffelog.parse(output)
    assert log.done and log.final_test()["accuracy"] >= 0.95, output[-3000:]
    snap = project / "snapshots" / "digits_iter_1500.caffemodel"
    assert snap.is_file(), output[-3000:]
    assert (snap.stat().st_uid, snap.stat().st_gid) == (USER, USER)


def test_ch_run_as_a_user(exported, open_tmp):
    if shutil.which("ch-run") is None:
        pytest.fail("ch-run is missing: apt-get install charliecloud-runtime (.ci/run does)")
    rootfs = _unpack(exported, open_tmp / "ch-image")
    project = _project(open_tmp / "ch-project")
    done = _as_user(["ch-run", "-b", f"{project}:/workspace", "-c", "/workspace", str(rootfs),
                     "--", "caffebox-run", "caffe", "train", "-solver", SOLVER])  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    _check_training(done.stdout + done.stderr, project)


def test_chroot_as_root(exported, open_tmp):
    rootfs = open_tmp / "chroot-image"
    rootfs.mkdir()
    subprocess.run(["tar", "--zstd", "-xf", str(exported), "-C", str(rootfs)], check=True)
    project = _project(open_tmp / "chroot-project")
    mounts = [rootfs / "workspace", rootfs / "proc"]
    subprocess.run(["mount", "--bind", str(project), str(mounts[0])], check=True)
    try:
        subprocess.run(["mount", "-t", "proc", "proc", str(mounts[1])], check=True)
        done = subprocess.run(
            [shutil.which("chroot") or "/usr/sbin/chroot", f"--userspec={USER}:{USER}",
             str(rootfs), "/usr/bin/caffebox-run",
             "sh", "-c", f"cd /workspace && caffe train -solver {SOLVER}"],
            env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
        )  # fmt: skip
    finally:
        for mount in reversed(mounts):
            subprocess.run(["umount", str(mount)], check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    _check_training(done.stdout + done.stderr, project)


# BVLC's pycaffe example style, a layer module in a folder of the user's: the pass-through
# layer the build's own pycaffe check uses.
PASSTHROUGH = runpy.run_path(str(paths.DOCKER_DIR / "check-pycaffe.py"))["PASS_LAYER"]


def test_the_tutorials_pythonpath_under_ch_run(exported, open_tmp):
    """PYTHONPATH=/path/to:$PYTHONPATH caffe train, inside ch-run: caffebox-run once
    replaced the user's PYTHONPATH with the image's (ModuleNotFoundError)."""
    rootfs = _unpack(exported, open_tmp / "ch-image-pythonpath")
    project = _project(open_tmp / "ch-project-pythonpath")
    (project / "pylayers").mkdir()
    (project / "pylayers" / "passthrough.py").write_text(PASSTHROUGH)
    net = project / "examples" / "digits" / "net.prototxt"
    copy = ('layer { name: "copy" type: "Python" bottom: "ip2" top: "ip2copy"\n'
            '  python_param { module: "passthrough" layer: "Pass" } }\n')
    text = net.read_text()
    at = text.index('layer { name: "loss"')  # Caffe builds layers in file order
    net.write_text(text[:at] + copy + text[at:].replace(
        'bottom: "ip2" bottom: "label" top: "loss"', 'bottom: "ip2copy" bottom: "label" top: "loss"'
    ))  # fmt: skip
    for path in [project, *project.rglob("*")]:
        os.chown(path, USER, USER)
    done = subprocess.run(
        ["ch-run", "-b", f"{project}:/workspace", "-c", "/workspace", str(rootfs), "--",
         "caffebox-run", "caffe", "train", "-solver", SOLVER],
        user=USER, group=USER, capture_output=True, text=True,
        env={"PATH": "/usr/bin:/bin", "USER": "caffeboxuser", "HOME": "/nonexistent",
             "PYTHONPATH": "/workspace/pylayers"},
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    _check_training(done.stdout + done.stderr, project)


def test_train_with_the_charliecloud_runtime_stops_on_sigterm(exported, open_tmp):
    """`scancel` sends SIGTERM: Caffe snapshots, caffebox exits 143 and says how to resume."""
    import signal

    rootfs = _unpack(exported, open_tmp / "ch-image-runtime")
    # caffebox runs ch-run as itself (root here): the project is root's, as a user's is theirs
    # (root in ch-run's user namespace cannot write a folder another uid owns).
    project = digits_project(open_tmp / "ch-project-runtime")
    solver = project / SOLVER
    solver.write_text(solver.read_text().replace("max_iter: 1500", "max_iter: 10000000"))
    env = {**os.environ, "DOCKER_HOST": "unix:///nonexistent.sock"}
    from .support.cli import CAFFEBOX

    proc = subprocess.Popen([*CAFFEBOX, "train", SOLVER, "--runtime", "charliecloud", "--image",
                             str(rootfs)], cwd=project, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    seen = []
    for line in proc.stdout:  # wait on the event: Caffe is iterating (its handler is in)
        seen.append(line)
        if "] Iteration 200" in line:
            break
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, "".join(seen)[-2000:] + out[-2000:] + err[-2000:]
    assert "stopped by SIGTERM" in err and "Resume it with: caffebox train" in err
    assert list((project / "snapshots").glob("digits_iter_*.solverstate"))


CUDART_VERSION = r"""#include <stdio.h>
int cudaRuntimeGetVersion(int *version);  /* needs no GPU */
int main(void) { int v = 0; int e = cudaRuntimeGetVersion(&v); printf("cudart %d %d\n", e, v);
                 return e; }
"""


def test_without_cuda_libs_runs_on_the_hosts_cuda_from_the_default_paths(
    engine, cuda_base, open_tmp
):
    """A real CUDA image exported --without-cuda-libs keeps none of CUDA's libraries (a
    program linked to cudart does not load), and caffebox-run finds the host's where hosts
    keep them (/usr/local/cuda/lib64, bound in) with no LD_LIBRARY_PATH given: the program
    runs on the host's cudart; with no CUDA bound caffebox-run stops with its message."""
    if shutil.which("ch-run") is None or shutil.which("gcc") is None:
        pytest.fail("ch-run and gcc are needed: apt-get install charliecloud-runtime gcc")
    runtime = f"{cuda_base}-runtime"  # what every gpu image's runtime stage is made from
    out = open_tmp / "cuda-export" / "cuda.tar.zst"
    out.parent.mkdir()
    done = caffebox("export", runtime, str(out), "--without-cuda-libs", cwd=open_tmp,
                    timeout=900)  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert re.search(r"left out \d+ CUDA files \((\d{3,}) MB\)", done.stdout), done.stdout
    os.chmod(out, 0o644)
    rootfs = _unpack(out, open_tmp / "cuda-image")
    kept = [p for p in rootfs.rglob("lib*.so*") if export.is_cuda_library(p.name)]
    assert not kept, kept
    assert (rootfs / "usr/local/cuda").is_dir()  # the place to bind the host's CUDA
    # The host's CUDA: cudart taken from the image, where a host keeps it.
    host_cuda = open_tmp / "host-cuda"
    (host_cuda / "lib64").mkdir(parents=True)
    tracked = TrackedContainer(engine, runtime)
    try:  # wherever the base keeps it (Debian's CUDA 12: /usr/lib; wheels: /usr/local/cuda)
        found = tracked.run_ok(
            ["sh", "-c", "p=$(ldconfig -p | awk '/libcudart\\.so\\.[0-9]+ / {print $NF; exit}')"
             " && cp -L $p /out/ && basename $p"],
            volumes={str(host_cuda / "lib64"): {"bind": "/out", "mode": "rw"}})  # fmt: skip
    finally:
        tracked.remove_all()
    cudart = found.split()[-1]  # libcudart.so.12
    major = int(cudart.rsplit(".", 1)[-1])
    work = open_tmp / "cuda-work"
    work.mkdir()
    (work / "v.c").write_text(CUDART_VERSION)
    subprocess.run(["gcc", "-o", str(work / "cudart-version"), str(work / "v.c"),
                    f"-L{host_cuda / 'lib64'}", f"-l:{cudart}"], check=True)  # fmt: skip
    base = ["ch-run", "-b", f"{work}:/mnt", "-c", "/mnt"]
    bound = [*base, "-b", f"{host_cuda}:/usr/local/cuda", str(rootfs), "--"]
    plain = _as_user([*base, str(rootfs), "--", "./cudart-version"])
    assert plain.returncode != 0 and cudart in plain.stderr, plain  # none kept
    entered = _as_user([*bound, "caffebox-run", "./cudart-version"])
    assert entered.returncode == 0, entered.stdout + entered.stderr
    assert "CUDA libraries from /usr/local/cuda/lib64" in entered.stderr, entered.stderr
    version = re.fullmatch(r"cudart 0 (\d+)", entered.stdout.strip())
    assert version and int(version.group(1)) // 1000 == major, entered.stdout
    none = _as_user([*base, str(rootfs), "--", "caffebox-run", "./cudart-version"])
    assert none.returncode == 127, none
    assert "this export has no CUDA libraries (--without-cuda-libs) and none were found" in (
        none.stderr
    )
