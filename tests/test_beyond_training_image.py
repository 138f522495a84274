"""The rest of a Caffe user's day in the real image: `caffebox run` with Caffe's tools and
pycaffe's scripts, pycaffe's image loading, and the classic data path of
examples/imagefolder, run line by line from its run.sh (the lines the README shows)."""

from __future__ import annotations

import csv
import json
import re
import shlex
import shutil
import signal
import subprocess
import time

import numpy as np
import pytest

from caffebox.runs import RUN_LABEL

from .conftest import DEFAULT_DISTRO
from .support.cli import CAFFEBOX, ROOT, assert_one_paragraph, caffebox, fingerprint

pytestmark = pytest.mark.image


@pytest.fixture(scope="module")
def image(each_distro_image) -> str:
    """This module's tests run on the image of each Debian release (conftest)."""
    return each_distro_image


def _env(image: str) -> dict[str, str]:
    import os

    return {**os.environ, "INVOKE_CAFFEBOX_IMAGE": image}


def test_pycaffe_loads_images_and_resizes(run_in_image):
    """BVLC's io.py called skimage.io.imread(as_grey=...), which scikit-image removed: every
    caffebox image failed caffe.io.load_image, the first line of classify.py."""
    script = (
        "import numpy as np, skimage.io, caffe.io\n"
        "skimage.io.imsave('/tmp/x.png', np.full((6, 4, 3), 200, np.uint8))\n"
        "c = caffe.io.load_image('/tmp/x.png'); g = caffe.io.load_image('/tmp/x.png', False)\n"
        "r = caffe.io.resize_image(c, (3, 2))\n"
        "print(c.shape, g.shape, r.shape, round(float(c.max()), 3))\n"
    )
    code, out = run_in_image(["python3", "-c", script])
    assert code == 0, out
    assert out.strip().splitlines()[-1] == "(6, 4, 3) (6, 4, 1) (3, 2, 3) 0.784"


def test_run_gives_the_programs_exit_status(tmp_path, image):
    done = caffebox("run", "--", "sh", "-c", "echo 'a b' > 'out file'; exit 3", cwd=tmp_path,
                    env=_env(image), timeout=120)  # fmt: skip
    assert done.returncode == 3, done.stderr
    assert (tmp_path / "out file").read_text() == "a b\n"  # the quoted words stayed whole


def test_run_of_a_missing_program_is_127_and_one_paragraph(tmp_path, image):
    before = fingerprint(tmp_path)
    done = caffebox("run", "--", "convert_imagset", "a", cwd=tmp_path, env=_env(image),
                    timeout=120)  # fmt: skip
    assert_one_paragraph(done, 127, r"has no 'convert_imagset' to run.*convert_imageset")
    assert fingerprint(tmp_path) == before


def test_a_program_that_ignores_ctrl_c_is_killed_after_the_grace(tmp_path, engine, image_for):
    """The README's promise: Ctrl-C asks the program to stop; one that does not is killed
    after the grace (setting stop_grace, 60 s by default: test_launch), not before, and its
    container is removed. The grace is the host's (caffebox.runs), so one Debian release's
    image shows it, and 5 s of it does: a minute less of CI."""
    image = image_for(DEFAULT_DISTRO)
    grace = 5
    script = "trap 'echo got INT' INT; echo ready; while :; do sleep 1; done"
    proc = subprocess.Popen(
        [*CAFFEBOX, "run", "--", "sh", "-c", script], cwd=tmp_path,
        env={**_env(image), "INVOKE_CAFFEBOX_STOP_GRACE": str(grace)}, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    try:
        seen = [proc.stdout.readline()]
        assert seen[0].strip() == "ready", seen
        asked = time.monotonic()
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=grace + 120)
        ended = time.monotonic()
    finally:
        if proc.poll() is None:
            proc.kill()
            for container in engine.containers.list(all=True, filters={"label": RUN_LABEL}):
                container.remove(force=True)
    assert f"Ctrl-C: asking it to stop (up to {grace} s" in rest, rest
    assert "got INT" in rest, rest  # the program was asked, and ignored it
    assert proc.returncode == 137, rest  # killed
    assert ended - asked >= grace - 1, ended - asked  # not before the grace ran out
    assert not engine.containers.list(all=True, filters={"label": RUN_LABEL})


def test_tools_and_scripts_are_on_path(run_in_image):
    names = "caffe convert_imageset compute_image_mean extract_features classify.py draw_net.py"
    code, out = run_in_image(["sh", "-c", f"for p in {names} parse_log.py; do command -v $p "
                              "|| exit 1; done"])  # fmt: skip
    assert code == 0, out
    assert len(out.split()) == 7


def _script_lines() -> list[list[str]]:
    """The commands of examples/imagefolder/run.sh, as a user's shell splits them."""
    text = (ROOT / "examples" / "imagefolder" / "run.sh").read_text()
    return [shlex.split(line)[1:] for line in text.splitlines() if line.startswith("caffebox ")]


@pytest.fixture(scope="module")
def data_path(tmp_path_factory, image):
    """examples/imagefolder run from a copy of the repo's examples, every line in order."""
    project = tmp_path_factory.mktemp("imagefolder")
    for name in ("digits", "imagefolder"):
        shutil.copytree(ROOT / "examples" / name, project / "examples" / name)
    outputs = {}
    for args in _script_lines():
        done = caffebox(*args, cwd=project, env=_env(image), timeout=900)
        assert done.returncode == 0, (args, done.stdout[-3000:], done.stderr[-3000:])
        outputs.setdefault(args[0] if args[0] != "run" else args[2], []).append(done)
    return project, outputs


def test_convert_imageset_and_compute_image_mean(data_path):
    project, outputs = data_path
    logs = [d.stderr + d.stdout for d in outputs["convert_imageset"]]
    assert re.search(r"Processed 1497 files", logs[0]), logs[0][-2000:]
    assert re.search(r"Processed 300 files", logs[1]), logs[1][-2000:]
    assert (project / "examples/imagefolder/train_lmdb/data.mdb").stat().st_size > 100_000
    mean = np.load(project / "examples/imagefolder/mean.npy")
    assert mean.shape == (3, 8, 8) and 0 < mean.mean() < 255


def test_training_on_the_lmdb_with_a_python_layer(data_path):
    project, outputs = data_path
    (record,) = (project / "snapshots" / "imagefolder.runs").iterdir()
    with (record / "iterations.csv").open() as f:
        losses = [float(r["loss"]) for r in csv.DictReader(f) if r.get("loss")]
    assert losses[-1] < losses[0] / 4, losses
    net_log = (record / "train.log").read_text()
    assert "Opened lmdb examples/imagefolder/train_lmdb" in net_log


def test_caffe_test_on_the_snapshot(data_path):
    _project, outputs = data_path
    (done,) = outputs["caffe"]
    found = re.findall(r"\] accuracy = ([0-9.]+)", done.stderr + done.stdout)
    assert found and float(found[-1]) >= 0.9, (done.stderr + done.stdout)[-2000:]


def test_classify_py_predicts_the_labels(data_path):
    project, _ = data_path
    folder = project / "examples" / "imagefolder"
    one = np.load(folder / "one.npy")
    first_label = int((folder / "val.txt").read_text().split()[1])
    assert one.shape == (1, 10) and int(one.argmax()) == first_label
    predictions = np.load(folder / "predictions.npy")
    labels = np.load(folder / "val_labels.npy")
    assert predictions.shape == (100, 10)
    assert (predictions.argmax(1) == labels).mean() >= 0.9


def test_draw_net_py_draws_a_png(data_path):
    import matplotlib.image

    project, _ = data_path
    picture = matplotlib.image.imread(project / "examples/imagefolder/net.png")
    assert picture.shape[0] > 50 and picture.shape[1] > 50 and picture.std() > 0.05


def test_caffebox_time_marks_the_python_layer(data_path):
    project, outputs = data_path
    (done,) = outputs["time"]
    assert re.search(r"^Python layers: \d+% of the step \(\* above: affine\)$", done.stdout,
                     re.M), done.stdout  # fmt: skip
    with (project / "examples/imagefolder/time.csv").open() as f:
        rows = {r["layer"]: r for r in csv.DictReader(f)}
    assert rows["affine"]["type"] == "Python" and float(rows["conv1"]["forward_ms"]) > 0


def test_parse_log_py_reads_the_training_log(data_path):
    """Caffe's tools/extra/parse_log.py on caffebox's train.log: glog 0.6's year-prefixed
    lines (I20261202 ...) once broke its date parsing; the image logs as Caffe always did."""
    project, _ = data_path
    folder = project / "examples" / "imagefolder"
    with (folder / "train.log.train").open() as f:
        train = list(csv.DictReader(f))
    with (folder / "train.log.test").open() as f:
        test = list(csv.DictReader(f))
    assert float(train[-1]["NumIters"]) >= 1400 and float(train[-1]["loss"]) < 0.5, train[-1]
    assert float(test[-1]["accuracy"]) >= 0.9 and float(train[-1]["Seconds"]) >= 0, test[-1]


def test_training_from_the_png_files_with_prefetching_workers(data_path):
    """ImageListData (2 workers in each of the TRAIN and TEST nets) reaches the LMDB net's
    accuracy bound, and its workers end with the run."""
    project, outputs = data_path
    (record,) = (project / "snapshots" / "imagelist.runs").iterdir()
    meta = json.loads((record / "run.json").read_text())
    assert meta["exit_code"] == 0 and meta["final"]["test"]["accuracy"] >= 0.9, meta["final"]


def test_no_worker_or_segment_outlives_its_net(data_path, image):
    """Two nets made and deleted in one `caffebox python` script: their workers are gone
    after each (pycaffe never frees a Python layer: they end `idle` seconds after its
    last batch, 1 s here), and /dev/shm holds nothing new (an anonymous mapping)."""
    project, _outputs = data_path
    (project / "two_nets.py").write_text(
        "import gc, os, time, caffe\n"
        "def running():  # this process's children that still run (not ended, unreaped)\n"
        "    pids = open(f'/proc/{os.getpid()}/task/{os.getpid()}/children').read().split()\n"
        "    return [p for p in pids\n"
        "            if open(f'/proc/{p}/stat').read().rsplit(')', 1)[1].split()[0] != 'Z']\n"
        "text = open('examples/imagefolder/net_imagelist.prototxt').read()\n"
        "text = text.replace(\"'workers': 2\", \"'workers': 2, 'idle': 1\")\n"
        "open('/tmp/net.prototxt', 'w').write(text)\n"
        "shm = set(os.listdir('/dev/shm'))\n"
        "for n in range(2):\n"
        "    net = caffe.Net('/tmp/net.prototxt', caffe.TRAIN)\n"
        "    net.forward()\n"
        "    during = len(running())\n"
        "    del net; gc.collect(); time.sleep(2.5)\n"
        "    print('net', n, 'workers', during, 'after', len(running()), flush=True)\n"
        "print('shm new', sorted(set(os.listdir('/dev/shm')) - shm))\n"
    )
    done = caffebox("python", "two_nets.py", cwd=project, env=_env(image), timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "net 0 workers 2 after 0" in done.stdout, done.stdout[-3000:]
    assert "net 1 workers 2 after 0" in done.stdout, done.stdout[-3000:]
    assert "shm new []" in done.stdout, done.stdout[-3000:]
