"""A runaway Python layer meets the container's limits, not the host's: a leak is killed
at memory_limit and said as such, a fork loop stops at pids_limit."""

from __future__ import annotations

import os

import pytest

from .support.cli import assert_one_paragraph, caffebox

pytestmark = pytest.mark.image

LAYER = '''import caffe, os, subprocess, numpy as np

class Runaway(caffe.Layer):
    def setup(self, bottom, top):
        if self.param_str == "leak":
            self.hoard = np.ones(600 * 2**20 // 8)  # 600 MB, every page touched
        else:
            self.children = [subprocess.Popen(["sleep", "30"]) for _ in range(200)]

    def reshape(self, bottom, top):
        top[0].reshape(1)

    def forward(self, bottom, top):
        top[0].data[...] = 1

    def backward(self, top, propagate_down, bottom):
        pass
'''


def _project(folder, kind: str):
    (folder / "layers").mkdir()
    (folder / "layers" / "runaway.py").write_text(LAYER)
    (folder / "net.prototxt").write_text(
        'layer { name: "r" type: "Python" top: "x" python_param { module: "runaway" '
        f'layer: "Runaway" param_str: "{kind}" }} }}\n'
    )
    (folder / "solver.prototxt").write_text('net: "net.prototxt"\nmax_iter: 2\nbase_lr: 0.1\n'
                                            'snapshot_prefix: "out/x"\n')  # fmt: skip


def test_a_leak_is_killed_at_the_memory_limit_and_said_so(open_dir, image):
    _project(open_dir, "leak")
    env = {**os.environ, "INVOKE_CAFFEBOX_IMAGE": image, "INVOKE_CAFFEBOX_MEMORY_LIMIT": "256m"}
    done = caffebox("train", "solver.prototxt", "--layers", "layers", cwd=open_dir, env=env)
    assert_one_paragraph(done, 137, r"caffe was stopped: the container went over its memory "
                         r"limit \(0\.2 GiB\) and was killed")  # fmt: skip


def test_a_fork_loop_stops_at_the_pids_limit(open_dir, image):
    _project(open_dir, "fork")
    env = {**os.environ, "INVOKE_CAFFEBOX_IMAGE": image, "INVOKE_CAFFEBOX_PIDS_LIMIT": "64"}
    done = caffebox("train", "solver.prototxt", "--layers", "layers", cwd=open_dir, env=env,
                    timeout=300)  # fmt: skip
    assert done.returncode != 0
    assert "Resource temporarily unavailable" in done.stdout + done.stderr
    said = r"could not start another process or thread: the container may have at most 64 "
    assert_one_paragraph(done, done.returncode, said + r"\(the pids_limit setting\)")
