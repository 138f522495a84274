"""Podman instead of Docker: `caffebox train`, `run` and `python` through Podman's
Docker-compatible API, rootful and rootless, with Debian's podman started here. The image
brings its own init (tini), so no catatonit; files land owned by the user; nothing stays."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from caffebox import caffelog

from .support.cli import caffebox, digits_project
from .support.services import missing

pytestmark = pytest.mark.image
SOLVER = "examples/digits/solver.prototxt"
USER = "caffebox-podman"


def _need_podman() -> str:
    found = shutil.which("podman")
    if found is None:
        reason = "podman is not installed (apt-get install podman uidmap)"
        missing(reason, f"{reason}; CI must run the Podman tests")
    return found


def _as(user: str | None) -> dict:
    """subprocess options to run as `user` with its own group and no supplementary ones
    (root's gid left in place makes rootless Podman's ID mappings fail)."""
    return {} if user is None else {"user": user, "group": user, "extra_groups": []}


def _serve(folder: Path, env: dict[str, str], user: str | None) -> tuple[subprocess.Popen, str]:
    sock = folder / "podman.sock"
    log = open(folder / "service.log", "wb")
    cmd = ["podman", "system", "service", "--time=0", f"unix://{sock}"]
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=log, start_new_session=True,
                            cwd=folder, **_as(user))  # fmt: skip
    for _ in range(100):
        if sock.exists():
            return proc, f"unix://{sock}"
        time.sleep(0.1)
    proc.kill()
    pytest.fail(f"podman system service did not start: {(folder / 'service.log').read_text()}")


def _load(image: str, env: dict[str, str], user: str | None) -> None:
    """docker save | podman load, the pipe closed here so neither end can wait for ever."""
    save = subprocess.Popen(["docker", "save", image], stdout=subprocess.PIPE)
    load = subprocess.Popen(["podman", "load"], stdin=save.stdout, env=env, cwd="/",
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            **_as(user))  # fmt: skip
    save.stdout.close()
    out, _ = load.communicate(timeout=600)
    save.wait(timeout=60)
    assert load.returncode == 0, out[-2000:]


def _left(env: dict[str, str], user: str | None) -> list[str]:
    done = subprocess.run(["podman", "ps", "-a", "--format", "{{.Names}}"], env=env, cwd="/",
                          capture_output=True, text=True, check=True, **_as(user))  # fmt: skip
    return done.stdout.split()


@pytest.fixture(scope="module")
def rootful(image, tmp_path_factory) -> Iterator[dict[str, str]]:
    _need_podman()
    folder = tmp_path_factory.mktemp("podman-root")
    # No containers.conf with default_ulimits: caffebox asks for the host's own limits.
    env = dict(os.environ)
    _load(image, env, None)
    proc, host = _serve(folder, env, None)
    try:
        yield {**env, "DOCKER_HOST": host, "INVOKE_CAFFEBOX_IMAGE": image}
        assert _left(env, None) == []
    finally:
        proc.kill()


@pytest.fixture(scope="module")
def rootless(image, open_tmp, user_install) -> Iterator[dict[str, str]]:
    """A normal user with their own `podman system service` (and image store)."""
    _need_podman()
    try:
        account = pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "-m", USER], check=True)
        account = pwd.getpwnam(USER)
    for table in ("/etc/subuid", "/etc/subgid"):
        if f"{USER}:" not in Path(table).read_text():
            with open(table, "a") as f:
                f.write(f"{USER}:300000:65536\n")
    runtime = open_tmp / "podman-user-run"
    runtime.mkdir(mode=0o700)
    os.chown(runtime, account.pw_uid, account.pw_gid)
    env = {"PATH": "/usr/bin:/bin", "HOME": account.pw_dir, "USER": USER,
           "XDG_RUNTIME_DIR": str(runtime)}  # fmt: skip
    # Debian 12's podman picks vfs for a user (a full copy of the image per container:
    # minutes here); this kernel mounts overlay without privileges, as most do today.
    config = Path(account.pw_dir) / ".config" / "containers"
    config.mkdir(parents=True, exist_ok=True)
    (config / "storage.conf").write_text('[storage]\ndriver = "overlay"\n')
    for path in (config.parent, config, config / "storage.conf"):
        os.chown(path, account.pw_uid, account.pw_gid)
    subprocess.run(["podman", "system", "reset", "-f"], env=env, cwd="/", capture_output=True,
                   **_as(USER))  # fmt: skip
    _load(image, env, USER)
    proc, host = _serve(runtime, env, USER)
    try:
        yield {**env, "DOCKER_HOST": host, "INVOKE_CAFFEBOX_IMAGE": image,
               "CAFFEBOX": str(user_install), "UID": str(account.pw_uid)}  # fmt: skip
        assert _left(env, USER) == []
    finally:
        proc.kill()


def _short_digits(folder: Path) -> Path:
    project = digits_project(folder)
    solver = project / SOLVER
    solver.write_text(solver.read_text().replace("max_iter: 1500", "max_iter: 500")
                      .replace("test_interval: 500", "test_interval: 250"))  # fmt: skip
    return project


def _trained(done: subprocess.CompletedProcess, project: Path, uid: int) -> None:
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    log = caffelog.parse(done.stdout)
    assert log.done and log.final_test()["accuracy"] >= 0.9, done.stdout[-2000:]
    snap = project / "snapshots" / "digits_iter_500.caffemodel"
    assert snap.is_file() and snap.stat().st_uid == uid


def test_train_through_rootful_podman(rootful, tmp_path):
    project = _short_digits(tmp_path)
    done = caffebox("train", SOLVER, cwd=project, env=rootful, timeout=600)
    _trained(done, project, os.getuid())
    ran = caffebox("run", "--", "sh", "-c", "exit 5", cwd=project, env=rootful, timeout=120)
    assert ran.returncode == 5, ran.stderr


def test_train_through_rootless_podman(rootless, open_tmp):
    project = _short_digits(open_tmp / "podman-user-project")
    uid = int(rootless["UID"])
    for path in [project, *project.rglob("*")]:
        os.chown(path, uid, uid)
    run = [rootless["CAFFEBOX"]]
    env = {k: v for k, v in rootless.items() if k not in ("CAFFEBOX", "UID")}
    done = subprocess.run([*run, "train", SOLVER], cwd=project, env=env, capture_output=True,
                          text=True, timeout=600, **_as(USER))  # fmt: skip
    _trained(done, project, uid)
    (project / "show.py").write_text("import caffe\nprint(caffe.__file__)\n")
    os.chown(project / "show.py", uid, uid)
    python = subprocess.run([*run, "python", "show.py"], cwd=project, env=env,
                            capture_output=True, text=True, timeout=120, **_as(USER))  # fmt: skip
    assert python.returncode == 0 and "/opt/caffe/python/caffe" in python.stdout, python.stderr
