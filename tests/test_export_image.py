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
