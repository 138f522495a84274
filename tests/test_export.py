"""`caffebox export` without an engine: the tar rewrite and the caffebox-run entry script."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile

import pytest

from caffebox import export


def _rootfs() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in [
            ("usr/local/cuda/lib64/libcudart.so.13.0.96", b"c" * 100),
            ("usr/local/cuda/lib64/libcublasLt.so.13", b"b" * 50),
            ("usr/lib/x86_64-linux-gnu/libcudnn_ops.so.9", b"d" * 70),
            ("usr/lib/x86_64-linux-gnu/libnccl.so.2", b"n" * 20),
            ("usr/local/cuda/lib64/libnvrtc.so.13", b"r" * 30),  # CuPy's kernel compiler
            ("usr/lib/x86_64-linux-gnu/libcuda.so.1", b"driver"),  # the driver's: never ours
            ("opt/caffe/lib/libcaffe.so.1.0.0", b"caffe"),
            ("usr/local/cuda/bin/nvcc", b"compiler"),
            ("usr/local/cuda/include/cuda.h", b"header"),
            (".dockerenv", b""),
        ]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        null = tarfile.TarInfo("dev/null")  # docker export has /dev's nodes
        null.type, null.devmajor, null.devminor = tarfile.CHRTYPE, 1, 3
        tar.addfile(null)
        link = tarfile.TarInfo("usr/local/cuda/lib64/libcudart.so")
        link.type, link.linkname = tarfile.SYMTYPE, "libcudart.so.13.0.96"
        tar.addfile(link)
    return buf.getvalue()


@pytest.mark.parametrize("drop", [False, True])
def test_rewrite_adds_the_entry_and_drops_cuda_only_when_asked(drop):
    out = io.BytesIO()
    extra = {export.ENTRY: (b"#!/bin/sh\n", 0o755)}
    report = export.rewrite(io.BytesIO(_rootfs()), out, extra, drop_cuda=drop)
    out.seek(0)
    with tarfile.open(fileobj=out) as tar:
        names = {m.name: m for m in tar.getmembers()}
    assert names[export.ENTRY].mode == 0o755
    assert ".dockerenv" not in names
    assert "dev/null" not in names, "a user cannot create device nodes when unpacking"
    assert "usr/lib/x86_64-linux-gnu/libcuda.so.1" in names
    assert "opt/caffe/lib/libcaffe.so.1.0.0" in names
    cuda = {n for n in names if export.is_cuda_library(n)}
    toolkit = {n for n in names if n.startswith("usr/local/cuda/")}
    if drop:
        assert not cuda and not toolkit
        assert len(report.left_out) == 8 and report.left_out_bytes == 270 + 14
    else:
        assert len(cuda) == 6 and len(toolkit) == 6 and not report.left_out


def _script(tmp_path, env, cuda_from_host, **where):
    path = tmp_path / "caffebox-run"
    path.write_text(export.entry_script("img", env, cuda_from_host, **where))
    path.chmod(0o755)
    return path


def test_entry_sets_the_image_env_and_a_usable_home(tmp_path):
    script = _script(tmp_path, ["PATH=/opt/caffe/bin:/usr/bin:/bin", "A=it's $x"], False)
    done = subprocess.run(
        [str(script), "sh", "-c", 'echo "$PATH|$A|$HOME"'],
        env={"HOME": "/nonexistent"}, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "/opt/caffe/bin:/usr/bin:/bin|it's $x|/tmp"


@pytest.mark.parametrize(
    ("args", "host", "want"),
    [([], "", "/opt/caffe/python:/opt/caffebox"),
     ([], "/u:/v", "/u:/v:/opt/caffe/python:/opt/caffebox"),  # the tutorial's PYTHONPATH=...
     (["--layers", "/a", "--layers=/b", "--"], "/u", "/a:/b:/u:/opt/caffe/python:/opt/caffebox")],
)  # fmt: skip
def test_entry_keeps_the_users_pythonpath_first(tmp_path, args, host, want):
    """caffebox-run once overwrote PYTHONPATH with the image's: BVLC's pyloss example then
    failed with ModuleNotFoundError under ch-run."""
    script = _script(tmp_path, ["PYTHONPATH=/opt/caffe/python:/opt/caffebox"], False)
    env = {"PATH": "/usr/bin:/bin", **({"PYTHONPATH": host} if host else {})}
    done = subprocess.run([str(script), *args, "sh", "-c", 'echo "$PYTHONPATH"'], env=env,
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == want


def test_entry_help_and_no_program(tmp_path):
    script = _script(tmp_path, ["PATH=/usr/bin:/bin"], False)
    done = subprocess.run([str(script), "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "--layers DIR" in done.stdout
    done = subprocess.run([str(script)], capture_output=True, text=True)
    assert done.returncode == 2 and "usage: caffebox-run" in done.stderr


def test_entry_takes_cuda_from_ld_library_path_and_says_so(tmp_path):
    libs = tmp_path / "cuda"
    libs.mkdir()
    (libs / "libcudart.so.13").write_bytes(b"")
    script = _script(tmp_path, ["PATH=/usr/bin:/bin"], True)
    env = {"LD_LIBRARY_PATH": str(libs), "PATH": os.environ["PATH"]}
    done = subprocess.run([str(script), "true"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert f"CUDA libraries from LD_LIBRARY_PATH: {libs}" in done.stderr


def test_entry_without_any_cuda_fails_clearly(tmp_path):
    nowhere = [str(tmp_path / "no-cuda")]
    script = _script(tmp_path, ["PATH=/usr/bin:/bin"], True, search=nowhere, wheel_globs=nowhere)
    done = subprocess.run([str(script), "true"], env={}, capture_output=True, text=True)
    assert done.returncode == 127
    assert "this export has no CUDA libraries" in done.stderr


def test_entry_takes_nvidia_pip_wheels(tmp_path):
    """The GPU host's CUDA comes from NVIDIA's wheels: site-packages/nvidia/*/lib."""
    for lib, so in (("cublas", "libcublas.so.12"), ("cuda_runtime", "libcudart.so.12"),
                    ("cudnn", "libcudnn.so.9")):  # fmt: skip
        (tmp_path / "nvidia" / lib / "lib").mkdir(parents=True)
        (tmp_path / "nvidia" / lib / "lib" / so).write_bytes(b"")
    (tmp_path / "nvidia" / "cuda_nvcc" / "lib").mkdir(parents=True)  # no library: left out
    nowhere = [str(tmp_path / "no-cuda")]
    globs = [str(tmp_path / "nvidia" / "*" / "lib")]
    script = _script(tmp_path, ["PATH=/usr/bin:/bin"], True, search=nowhere, wheel_globs=globs)
    done = subprocess.run(
        [str(script), "sh", "-c", 'echo "$LD_LIBRARY_PATH"'], env={}, capture_output=True,
        text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "from NVIDIA's pip wheels" in done.stderr
    assert sorted(done.stdout.strip().split(":")) == sorted(
        str(tmp_path / "nvidia" / lib / "lib") for lib in ("cublas", "cuda_runtime", "cudnn")
    )


def test_entry_joins_a_toolkit_without_cudnn_to_the_wheels_that_have_it(tmp_path):
    """A host's /usr/local/cuda (cudart, cuBLAS) and NVIDIA's cuDNN wheel: both are needed;
    stopping at the first folder with cudart left libcudnn.so.9 unresolved."""
    toolkit, cudnn = tmp_path / "cuda" / "lib64", tmp_path / "nvidia" / "cudnn" / "lib"
    for folder, so in ((toolkit, "libcudart.so.13"), (cudnn, "libcudnn.so.9")):
        folder.mkdir(parents=True)
        (folder / so).write_bytes(b"")
    given = tmp_path / "driver"
    given.mkdir()
    script = _script(
        tmp_path, ["PATH=/usr/bin:/bin"], True, search=[str(toolkit)],
        wheel_globs=[str(tmp_path / "nvidia" / "*" / "lib")],
    )  # fmt: skip
    done = subprocess.run(
        [str(script), "sh", "-c", 'echo "$LD_LIBRARY_PATH"'],
        env={"LD_LIBRARY_PATH": str(given)}, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().split(":") == [str(given), str(toolkit), str(cudnn)]
    assert f"CUDA libraries from {toolkit}" in done.stderr
    assert f"CUDA libraries from NVIDIA's pip wheels: {cudnn}" in done.stderr
