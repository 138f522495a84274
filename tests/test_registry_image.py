"""Published images on a real registry (Debian's docker-registry on 127.0.0.1:5000):
publish, remove, then `caffebox train` pulls and trains; digests; clear errors."""

from __future__ import annotations

import json
import os
import time

import pytest

from caffebox import caffelog
from caffebox.variants import CPU

from .support.cli import assert_one_paragraph, caffebox, digits_project

pytestmark = pytest.mark.image
LOCAL = "caffebox-pulltest:cpu"
SOLVER = "examples/digits/solver.prototxt"


def _drop(engine, *names: str) -> None:
    for name in names:
        try:
            engine.images.remove(name)
        except Exception:  # noqa: BLE001 - already gone
            pass


def test_publish_then_train_pulls_the_image(tmp_path, engine, image, registry):
    repo = f"{registry}/caffebox-test"
    env = {**os.environ, "INVOKE_CAFFEBOX_REGISTRY": repo}
    engine.images.get(image).tag(*LOCAL.split(":"))
    dry = caffebox("publish", "--image", LOCAL, "--dry-run", cwd=tmp_path, env=env)
    assert dry.returncode == 0, dry.stderr
    refs = dry.stdout.split()
    assert refs[0] == f"{repo}:cpu" and len(refs) == 3 and refs[2].endswith("-caffebox0.1.0")
    digest = ""
    try:
        started = time.monotonic()
        pushed = caffebox("publish", "--image", LOCAL, cwd=tmp_path, env=env, timeout=600)
        push_s = time.monotonic() - started
        assert pushed.returncode == 0, pushed.stdout[-2000:] + pushed.stderr[-2000:]
        digest = pushed.stdout.split("sha256:")[1].split()[0]
        _drop(engine, LOCAL, *refs)
        assert not engine.images.list(name="caffebox-pulltest")

        project = digits_project(tmp_path / "project")
        started = time.monotonic()
        done = caffebox("train", SOLVER, "--image", LOCAL, cwd=project, env=env, timeout=600)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
        assert f"caffebox: pulling {repo}:cpu" in done.stdout
        assert caffelog.parse(done.stdout).final_test()["accuracy"] >= 0.95
        print(
            f"\nregistry: push {push_s:.1f}s (3 tags), pull+train {time.monotonic() - started:.1f}s"
        )

        # A digest reference works wherever an image is named.
        _drop(engine, LOCAL, f"{repo}:cpu")
        (tmp_path / "s.py").write_text("import caffe; print('pycaffe from', caffe.__file__)\n")
        by_digest = f"{repo}@sha256:{digest}"
        ran = caffebox("python", "s.py", "--image", by_digest, cwd=tmp_path, env=env)
        assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
        assert "pycaffe from /opt/caffe/python" in ran.stdout

        # `train` by digest: the run record names the image by the digest it ran.
        short = project / SOLVER
        short.write_text(short.read_text().replace("max_iter: 1500", "max_iter: 100")
                         .replace("test_interval: 500", "test_interval: 100"))  # fmt: skip
        trained = caffebox("train", SOLVER, "--image", by_digest, "--overwrite", cwd=project,
                           env=env, timeout=600)  # fmt: skip
        assert trained.returncode == 0, trained.stdout[-2000:] + trained.stderr[-2000:]
        (meta_file,) = sorted((project / "snapshots" / "digits.runs").glob("*/run.json"))[-1:]
        meta = json.loads(meta_file.read_text())
        assert meta["image"]["name"] == by_digest
        assert meta["image"]["id"] == engine.images.get(by_digest).id
        assert any(d.endswith(f"sha256:{digest}") for d in meta["image"]["digests"]), meta

        # The pull task alone, from the registry setting.
        _drop(engine, LOCAL)
        pulled = caffebox("pull", "--image", LOCAL, cwd=tmp_path, env=env, timeout=600)
        assert pulled.returncode == 0, pulled.stdout[-2000:] + pulled.stderr[-2000:]
        assert f"caffebox: {LOCAL} is here (from {repo}:cpu)" in pulled.stdout
        assert engine.images.get(LOCAL).id == engine.images.get(by_digest).id
    finally:
        _drop(engine, LOCAL, *refs, *([f"{repo}@sha256:{digest}"] if digest else []))


def test_wrong_registry_is_one_paragraph(tmp_path, engine, image):
    env = {**os.environ, "INVOKE_CAFFEBOX_REGISTRY": "127.0.0.1:5999/nowhere"}
    project = digits_project(tmp_path)
    done = caffebox("train", SOLVER, "--image", "caffebox-nowhere:cpu", cwd=project, env=env)
    assert_one_paragraph(done, 2, r"cannot be pulled \(127.0.0.1:5999 cannot be reached")
    done = caffebox("publish", "--image", image, "--registry", "127.0.0.1:5999/nowhere",
                    cwd=tmp_path, env=env)  # fmt: skip
    assert_one_paragraph(done, 1, r"127.0.0.1:5999 cannot be reached")
    _drop(engine, *[f"127.0.0.1:5999/nowhere:{t}" for t in ("cpu",)])


def test_publish_errors(tmp_path, engine):
    done = caffebox("publish", "--image", "caffebox-none:cpu", "--registry", "x.io/a/b",
                    cwd=tmp_path)  # fmt: skip
    assert_one_paragraph(done, 2, r"caffebox-none:cpu is not on this engine")
    done = caffebox("publish", "--image", CPU.base_image, "--registry", "x.io/a/b",
                    cwd=tmp_path)  # fmt: skip
    assert_one_paragraph(done, 2, r"is not a caffebox image")
