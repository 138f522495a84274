"""Fixtures for the image tests: the engine, the Caffe source, the image, a user install.

Image tests need a Docker engine. Where none is reachable they skip with the reason,
except under CI (CI=true), where a missing engine is a failure: CI must run them.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from caffebox.settings import DEFAULTS
from caffebox.variants import DISTROS, cuda_offline_base

from .support.background import BackgroundBuild
from .support.cli import BUILD_LOG, ROOT
from .support.containers import TrackedContainer
from .support.services import missing

# A complete BVLC-derived Caffe tree on PyPI, used where GitHub cannot be reached.
SDIST = "brocolli-caffe==9.0.2"
SDIST_FILE = "brocolli-caffe-9.0.2.tar.gz"
SDIST_SHA256 = "c6410cc60bdd6db685d441b66be7df05410f8850ac88d6b75d48ef9b2315c08a"
# The cpu image on the default Debian release; on the other one it is TEST_IMAGE-DISTRO.
TEST_IMAGE = "caffebox:cpu-test"
# The default gpu image, built in the suite for one architecture.
GPU_TEST_IMAGE = "caffebox:gpu-test"
GPU_ARCH = "90"
DEFAULT_DISTRO = DEFAULTS["caffebox"]["distro"]
# The default offline CUDA build base, CUDA 12 on Debian 13 (its runtime twin is
# CUDA_BASE + "-runtime").
CUDA_BASE = cuda_offline_base(DEFAULT_DISTRO)
# The gpu image's build, started in the background as the session starts.
GPU_BUILD = pytest.StashKey[BackgroundBuild]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("caffebox")
    group.addoption(
        "--caffebox-image",
        action="append",
        default=[],
        help="Test this existing image instead of building caffebox:cpu-test; DISTRO=IMAGE "
        "for another release's (e.g. trixie=caffebox:cpu-test-trixie). Repeatable.",
    )
    group.addoption(
        "--caffebox-gpu-image",
        default="",
        help="Test this existing gpu image instead of building caffebox:gpu-test offline.",
    )
    group.addoption(
        "--caffe-src",
        default="",
        help=f"Caffe source (tree or .tar.gz) for the test build (default: {SDIST} from PyPI).",
    )


@pytest.fixture(scope="session")
def engine():
    import docker

    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        reason = f"no Docker engine reachable ({exc})"
        missing(reason, f"{reason}; CI must run the image tests")
    yield client
    from caffebox.runs import RUN_LABEL

    left = client.containers.list(all=True, filters={"label": RUN_LABEL})
    assert not left, f"containers left behind: {[c.name for c in left]}"


def _cache_dir() -> Path:
    path = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "caffebox-tests"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _caffe_src(config: pytest.Config) -> str:
    """--caffe-src, or the PyPI sdist (downloaded once into the cache, its hash checked)."""
    given = config.getoption("--caffe-src")
    if given:
        return given
    target = _cache_dir() / SDIST_FILE
    if not target.exists():
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
             SDIST, "-d", str(target.parent)],
            check=True,
        )  # fmt: skip
    digest = hashlib.sha256(target.read_bytes()).hexdigest()
    assert digest == SDIST_SHA256, f"{target} has sha256 {digest}, expected {SDIST_SHA256}"
    return str(target)


@pytest.fixture(scope="session")
def cache_dir() -> Path:
    return _cache_dir()


@pytest.fixture(scope="session")
def caffe_src(request) -> str:
    return _caffe_src(request.config)


def cpu_test_tag(distro: str) -> str:
    return TEST_IMAGE if distro == DEFAULT_DISTRO else f"{TEST_IMAGE}-{distro}"


@pytest.fixture(scope="session")
def image_for(request, engine, caffe_src) -> Callable[[str], str]:
    """The cpu image under test on a Debian release, built offline from the sdist the
    first time it is asked for (base-image first, as a user would)."""
    given = {}
    for item in request.config.getoption("--caffebox-image"):
        distro, _, name = item.rpartition("=")
        given[distro or DEFAULT_DISTRO] = name
    made: dict[str, str] = {}

    def get(distro: str) -> str:
        if distro in given:
            return given[distro]
        if distro not in made:
            tag = cpu_test_tag(distro)
            done = subprocess.run([sys.executable, "-m", "invoke", "base-image", "--distro",
                                   distro], cwd=ROOT)  # fmt: skip
            assert done.returncode == 0, f"invoke base-image --distro {distro} failed"
            log = BUILD_LOG.setdefault(tag, [])
            with subprocess.Popen(
                [sys.executable, "-m", "invoke", "build-cpu", "--caffe-src", caffe_src,
                 "--tag", tag, "--distro", distro],
                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            ) as build:  # fmt: skip
                for line in build.stdout:
                    sys.stdout.write(line)
                    log.append(line)
            assert build.returncode == 0, f"invoke build-cpu --distro {distro} failed (log above)"
            made[distro] = tag
        return made[distro]

    return get


@pytest.fixture(scope="session")
def image(image_for) -> str:
    """The cpu image on the default Debian release (the workflow tests run on it)."""
    return image_for(DEFAULT_DISTRO)


@pytest.fixture(scope="module", params=DISTROS)
def each_distro_image(request, image_for) -> str:
    """The cpu image on each Debian release in turn, for the modules that test the image
    itself (pycaffe, its contents, the layer kit, the examples): they override `image`."""
    return image_for(request.param)


@pytest.fixture(scope="session")
def cuda_base(engine, gpu_image) -> str:
    """The offline CUDA base the default gpu image builds on (Debian 13's CUDA 12.4 with
    cuDNN and NCCL from NVIDIA's PyPI wheels, no GPU): `build-gpu` made it on the way."""
    for name in (CUDA_BASE, f"{CUDA_BASE}-runtime"):
        assert engine.images.get(name), f"build-gpu did not make {name}"
    return CUDA_BASE


def _gpu_build_log() -> Path:
    return _cache_dir() / "gpu-test-build.log"


def _uses_gpu_image(item: pytest.Item) -> bool:
    return "gpu_image" in getattr(item, "fixturenames", ())


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The tests of the gpu image last (in their order): it builds meanwhile."""
    items.sort(key=_uses_gpu_image)


def pytest_collection_finish(session: pytest.Session) -> None:
    """Start building the gpu image now, in the background, when tests need it: its 11
    minutes of compiling then overlap the other tests, which mostly wait on containers.
    The Debian base is made first, here, as a user without a registry makes it: the cpu
    image's build would otherwise debootstrap the same release at the same time."""
    config = session.config
    if config.option.collectonly or config.getoption("--caffebox-gpu-image"):
        return
    if not any(_uses_gpu_image(item) for item in session.items):
        return
    import docker

    try:
        docker.from_env().ping()
    except docker.errors.DockerException:
        return  # the engine fixture says why, in each test
    log = _gpu_build_log()
    with log.open("wb") as out:
        done = subprocess.run([sys.executable, "-m", "invoke", "base-image"], cwd=ROOT,
                              stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    if done.returncode != 0:
        return  # gpu_image fails with the log
    config.stash[GPU_BUILD] = BackgroundBuild(
        ["build-gpu", "--caffe-src", _caffe_src(config), "--tag", GPU_TEST_IMAGE,
         "--cuda-arch", GPU_ARCH], log,
    ).start()  # fmt: skip


def pytest_sessionfinish(session: pytest.Session) -> None:
    build = session.config.stash.get(GPU_BUILD, None)
    if build is not None and build.running:
        build.stop()


def pytest_terminal_summary(terminalreporter, config: pytest.Config) -> None:
    build = config.stash.get(GPU_BUILD, None)
    if build is not None and not build.running and not build.failed:
        terminalreporter.write_line(
            f"caffebox: the gpu test image built in the background in {build.seconds:.0f} s "
            f"(log: {build.log})"
        )


@pytest.fixture(scope="session")
def gpu_image(request, engine) -> str:
    """`caffebox build-gpu` with its defaults but the source and one architecture: the CUDA
    12 base is made on the way when the engine lacks it. Started as the session started
    (pytest_collection_finish); this waits for it."""
    given = request.config.getoption("--caffebox-gpu-image")
    if given:
        return given
    build = request.config.stash.get(GPU_BUILD, None)
    if build is None:
        log = _gpu_build_log().read_text(errors="replace")[-4000:]
        pytest.fail(f"invoke base-image failed:\n{log}")
    build.wait()
    return GPU_TEST_IMAGE


@pytest.fixture
def run_in_image(engine, image) -> Iterator:
    """Run a command in the image (no network, a non-root user); always removes it."""
    tracked = TrackedContainer(engine, image, user="4321:4321", environment={"HOME": "/tmp"})
    yield tracked.run
    tracked.remove_all()


@pytest.fixture(scope="session")
def open_tmp() -> Iterator[Path]:
    """A temporary folder other uids can enter (pytest's own tmp_path is private)."""
    path = Path(tempfile.mkdtemp(prefix="caffebox-tests-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def open_dir(open_tmp) -> Path:
    """A fresh folder of its own in open_tmp, for one test (one run per Debian release)."""
    path = Path(tempfile.mkdtemp(dir=open_tmp))
    path.chmod(0o755)
    return path


@pytest.fixture(scope="session")
def wheel(tmp_path_factory) -> Path:
    """caffebox's wheel, built from this checkout as `pip wheel .` builds it."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out), str(ROOT)],
        check=True,
    )
    (found,) = out.glob("caffebox-*.whl")
    return found


@pytest.fixture(scope="session")
def user_install(open_tmp, wheel) -> Path:
    """caffebox installed from its wheel (not editable, not from the checkout) into a fresh
    venv of the system Python, where any uid can run it. Returns its `caffebox` command."""
    venv = open_tmp / "user-install" / "venv"
    python = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    # With the [plots] extra, as the README's quick start installs it.
    subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", f"{wheel}[plots]"], check=True)
    for path in [venv.parent, *venv.parent.rglob("*")]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode | 0o055)
    return venv / "bin" / "caffebox"


REGISTRY = "127.0.0.1:5000"


def _registry_answers() -> bool:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://{REGISTRY}/v2/", timeout=2) as reply:
            return reply.status == 200
    except OSError:
        return False


@pytest.fixture(scope="session")
def registry(tmp_path_factory) -> Iterator[str]:
    """A real registry on 127.0.0.1:5000 (Debian's docker-registry), started here if none
    runs. The engine speaks plain HTTP to registries on 127.0.0.0/8."""
    if _registry_answers():
        yield REGISTRY
        return
    binary = shutil.which("docker-registry")
    if binary is None:
        reason = "docker-registry is not installed (apt-get install docker-registry)"
        missing(reason, f"{reason}; CI must run the registry tests")
    folder = tmp_path_factory.mktemp("registry")
    config = folder / "config.yml"
    config.write_text(
        "version: 0.1\n"
        f"storage:\n  filesystem:\n    rootdirectory: {folder / 'data'}\n"
        "  delete:\n    enabled: true\n"
        f"http:\n  addr: {REGISTRY}\n"
    )
    log = open(folder / "registry.log", "wb")
    proc = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=log)
    try:
        for _ in range(100):
            if _registry_answers():
                break
            time.sleep(0.1)
        else:
            pytest.fail(f"docker-registry did not start: {(folder / 'registry.log').read_text()}")
        yield REGISTRY
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def _munge_works() -> bool:
    munge = subprocess.run(["sh", "-c", "munge -n | unmunge"], capture_output=True)
    return munge.returncode == 0


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory) -> Iterator[dict[str, str]]:
    """A real one-node Slurm cluster on this machine (Debian's slurm-wlm and munge) from a
    generated slurm.conf. Yields the environment its clients need (SLURM_CONF)."""
    import socket

    needed = [shutil.which(n) for n in ("slurmctld", "slurmd", "sbatch", "munged")]
    if None in needed or os.getuid() != 0:
        reason = "slurm-wlm and munge are needed, as root (apt-get install slurm-wlm munge)"
        missing(reason, f"{reason}; CI must run the Slurm tests")
    if not _munge_works():
        Path("/run/munge").mkdir(exist_ok=True)
        shutil.chown("/run/munge", "munge", "munge")
        subprocess.run(["runuser", "-u", "munge", "--", "/usr/sbin/munged"], check=True)
        for _ in range(50):
            if _munge_works():
                break
            time.sleep(0.1)
    folder = tmp_path_factory.mktemp("slurm")
    for sub in ("state", "spool"):
        (folder / sub).mkdir()
    host = socket.gethostname().split(".")[0]
    conf = folder / "slurm.conf"
    conf.write_text(
        f"ClusterName=caffebox\nSlurmctldHost={host}(127.0.0.1)\n"
        "SlurmUser=root\nSlurmdUser=root\nAuthType=auth/munge\n"
        f"StateSaveLocation={folder}/state\nSlurmdSpoolDir={folder}/spool\n"
        f"SlurmctldPidFile={folder}/slurmctld.pid\nSlurmdPidFile={folder}/slurmd.pid\n"
        f"SlurmctldLogFile={folder}/slurmctld.log\nSlurmdLogFile={folder}/slurmd.log\n"
        "SlurmctldPort=6817\nSlurmdPort=6818\n"
        "ProctrackType=proctrack/linuxproc\nTaskPlugin=task/none\nMpiDefault=none\n"
        "SelectType=select/cons_tres\nSelectTypeParameters=CR_Core\nReturnToService=2\n"
        "JobAcctGatherType=jobacct_gather/none\nAccountingStorageType=accounting_storage/none\n"
        "JobCompType=jobcomp/none\n"
        f"NodeName={host} NodeAddr=127.0.0.1 CPUs={os.cpu_count()} RealMemory=1000 "
        "State=UNKNOWN\n"
        f"PartitionName=debug Nodes={host} Default=YES MaxTime=INFINITE State=UP\n"
    )
    env = {**os.environ, "SLURM_CONF": str(conf)}
    subprocess.run(["slurmctld", "-f", str(conf)], env=env, check=True)
    subprocess.run(["slurmd", "-f", str(conf)], env=env, check=True)
    try:
        for _ in range(100):
            info = subprocess.run(["sinfo", "-h", "-o", "%t"], env=env, capture_output=True,
                                  text=True)  # fmt: skip
            if info.stdout.strip() in ("idle", "mix", "alloc"):
                break
            time.sleep(0.2)
        else:
            pytest.fail(f"the Slurm node did not come up: {info.stdout}{info.stderr}")
        yield {"SLURM_CONF": str(conf)}
    finally:
        subprocess.run(["scontrol", "shutdown"], env=env, capture_output=True)
        for pid_file in ("slurmd.pid", "slurmctld.pid"):
            pid = folder / pid_file
            if pid.is_file():
                subprocess.run(["kill", pid.read_text().strip()], capture_output=True)
