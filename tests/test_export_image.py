"""`caffebox export` for real: the cpu image's rootfs, unpacked by a user, trains the
digits example under Charliecloud's unprivileged ch-run, and under chroot as root."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from caffebox import caffelog

from .support.cli import caffebox, digits_project

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


PASSTHROUGH = '''import caffe


class Passthrough(caffe.Layer):
    """BVLC's pycaffe example style: a layer module in a folder of the user's."""

    def setup(self, bottom, top):
        pass

    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)

    def forward(self, bottom, top):
        top[0].data[...] = bottom[0].data

    def backward(self, top, propagate_down, bottom):
        bottom[0].diff[...] = top[0].diff
'''


def test_the_tutorials_pythonpath_under_ch_run(exported, open_tmp):
    """PYTHONPATH=/path/to:$PYTHONPATH caffe train, inside ch-run: caffebox-run once
    replaced the user's PYTHONPATH with the image's (ModuleNotFoundError)."""
    rootfs = _unpack(exported, open_tmp / "ch-image-pythonpath")
    project = _project(open_tmp / "ch-project-pythonpath")
    (project / "pylayers").mkdir()
    (project / "pylayers" / "passthrough.py").write_text(PASSTHROUGH)
    net = project / "examples" / "digits" / "net.prototxt"
    copy = ('layer { name: "copy" type: "Python" bottom: "ip2" top: "ip2copy"\n'
            '  python_param { module: "passthrough" layer: "Passthrough" } }\n')
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
