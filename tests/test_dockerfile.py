"""The Dockerfile's stages and the build args caffebox passes: no engine needed."""

import dataclasses
import io
import re
import threading
import time

import pytest

from caffebox import images, paths
from caffebox.errors import CaffeboxError
from caffebox.source import CaffeSource
from caffebox.variants import CPU, GPU

from .support.fakes import FakeEngine


def _stage_args(dockerfile=paths.DOCKERFILE) -> dict[str, set[str]]:
    """ARG names declared in each stage (before the first FROM: '(global)'); a stage with
    no name is called 'main'."""
    stages: dict[str, set[str]] = {"(global)": set()}
    current = "(global)"
    for line in dockerfile.read_text().splitlines():
        if m := re.match(r"FROM\s+\S+(?:\s+AS\s+(\S+))?", line, re.I):
            current = m.group(1) or "main"
            stages[current] = set()
        elif m := re.match(r"ARG\s+([A-Za-z_][A-Za-z0-9_]*)", line):
            stages[current].add(m.group(1))
    return stages


def test_label_args_reach_only_the_final_stage():
    # The final build call passes these with values read from the runtime stage; were one
    # an ARG of the build stage, its cache would miss and Caffe would compile twice.
    stages = _stage_args()
    request = images.BuildRequest(variant=CPU, source=CaffeSource.from_options(None, None, None),
                                  tag="t")  # fmt: skip
    labels = images.label_args(request, {"CAFFE_COMMIT": "abc"}, "")
    assert labels["CAFFE_REVISION"] == "abc"
    assert set(labels) <= stages["final"]
    for stage in ("build", "bundle", "runtime"):
        assert not set(labels) & stages[stage], f"{stage} declares {set(labels) & stages[stage]}"
    assert not set(labels) & set().union(*_stage_args(paths.RUNTIME_BASE_DOCKERFILE).values())


def test_every_build_arg_is_declared():
    request = images.BuildRequest(variant=CPU, source=CaffeSource.from_options(None, None, None),
                                  tag="t")  # fmt: skip
    declared = set().union(*_stage_args().values())
    assert set(request.buildargs()) <= declared
    runtime_base = set().union(*_stage_args(paths.RUNTIME_BASE_DOCKERFILE).values())
    assert set(request.runtime_base_args()) <= runtime_base


def test_cuda_base_names_the_cudas_it_makes():
    with pytest.raises(CaffeboxError, match="11 and 12 and 13 only"):
        images.build_cuda_offline_base(None, "t", "debian:bookworm-slim", cuda="10")


def test_cuda13_wheels_form_one_toolkit():
    # One CUDA 13.0 family: nvcc, its crt/nvvm and the runtime must agree, or nvcc breaks.
    pins = dict(
        line.split("==")
        for line in (paths.DOCKER_DIR / "cuda13-wheels.txt").read_text().split()
        if "==" in line
    )
    toolkit = ("nvidia-cuda-nvcc", "nvidia-cuda-crt", "nvidia-nvvm", "nvidia-cuda-runtime",
               "nvidia-cuda-cccl")  # fmt: skip
    assert {pins[p][:4] for p in toolkit} == {"13.0"}
    assert pins["nvidia-cudnn-cu13"].startswith("9.")


class _FakeEngine(FakeEngine):
    """Records the build calls `images.build` makes. The runtime base's call does not end
    before the build stage's has begun: were the two made one after the other, the build
    would stop here (the fake raises after 10 s)."""

    def __init__(self):
        super().__init__()
        self.build_stage_began = threading.Event()

    def build(self, **kwargs):
        if kwargs.get("target") == "build":
            self.build_stage_began.set()
        elif kwargs["dockerfile"].endswith("runtime-base.Dockerfile"):
            if not self.build_stage_began.wait(timeout=10):
                raise AssertionError("the build stage did not begin while the runtime base built")
        return iter([{"stream": "ok\n"}])


# A value other than the default for every BuildRequest option (variant, source and tag
# aside): a new option fails test_every_option_is_tried until it is tried here too.
OPTION_VALUES = {
    "jobs": 2,
    "base_image": "b",
    "runtime_image": "r",
    "nocache": True,
    "ca_certificates": "none",
    "compile_only": True,
    "extra_buildargs": {"CUPY_VERSION": "13.0.0"},
}


def test_every_option_is_tried():
    options = {f.name for f in dataclasses.fields(images.BuildRequest)}
    assert options - {"variant", "source", "tag"} == set(OPTION_VALUES)


@pytest.mark.parametrize("variant", [CPU, GPU], ids=["cpu", "gpu"])
@pytest.mark.parametrize(
    "options",
    [{}] + [{name: value} for name, value in OPTION_VALUES.items()]
    + [{name: value, "nocache": True} for name, value in OPTION_VALUES.items()],
    ids=lambda o: ",".join(o) or "defaults",
)  # fmt: skip
def test_second_build_call_never_misses_the_cache(tmp_path, options, variant):
    """--no-cache once reached the final (labels) call and compiled Caffe a second time:
    the final call must use the cache and pass every earlier stage's ARG unchanged, with
    any option."""
    src = tmp_path / "caffe"
    src.mkdir()
    (src / "Makefile").write_text("all:\n")
    request = images.BuildRequest(
        variant=variant, source=CaffeSource.from_options(str(src), None, None), tag="t:x",
        **options,
    )  # fmt: skip
    engine = _FakeEngine()
    images.build(engine, request, out=open("/dev/null", "w"))
    if options.get("compile_only"):
        (only,) = engine.calls  # the build stage alone, once
        assert only["target"] == "build"
        return
    (runtime_base,) = [
        c for c in engine.calls if c["dockerfile"].endswith("runtime-base.Dockerfile")
    ]
    first, runtime, final = [c for c in engine.calls if c is not runtime_base]
    assert [first["target"], runtime["target"], final["target"]] == ["build", "runtime", "final"]
    assert first["nocache"] == runtime_base["nocache"] == options.get("nocache", False)
    assert runtime["nocache"] is final["nocache"] is False
    assert first["buildargs"]["RUNTIME_BASE"] == runtime_base["tag"] != "t:x"
    stages = _stage_args()
    earlier = set().union(*(args for stage, args in stages.items() if stage != "final"))
    for name in earlier:
        assert first["buildargs"].get(name) == runtime["buildargs"].get(name), name
        assert first["buildargs"].get(name) == final["buildargs"].get(name), name


def test_the_runtime_base_builds_beside_the_build_stage():
    """The runtime base's call waits (in the fake) until the build stage's call has
    begun: built one after the other, this build fails."""
    request = images.BuildRequest(variant=CPU, source=CaffeSource.from_options(None, None, None),
                                  tag="t:x")  # fmt: skip
    engine = _FakeEngine()
    images.build(engine, request, out=io.StringIO())
    assert engine.build_stage_began.is_set()


class _FailingEngine(_FakeEngine):
    """The build stage fails while the runtime base is still building."""

    def __init__(self):
        super().__init__()
        self.runtime_base_done = threading.Event()

    def build(self, **kwargs):
        if kwargs.get("target") == "build":
            return iter([{"error": "the compile broke"}])
        time.sleep(0.3)
        self.runtime_base_done.set()
        return iter([{"stream": "runtime base log\n"}])


class _NoRuntimeImageEngine(_FakeEngine):
    """The runtime image is missing: the runtime base fails at once, while the build
    stage would stream for a long time (a compile)."""

    def __init__(self):
        super().__init__()
        self.build_chunks_read = 0

    def build(self, **kwargs):
        if kwargs.get("target") == "build":
            return self._long_build()
        return iter([  # what the engine says here, with no registry to reach
            {"stream": "Step 2/5 : FROM ${RUNTIME_IMAGE}\n"},
            {"error": 'Get "https://registry-1.docker.io/v2/": dial tcp: lookup '
                      "registry-1.docker.io on 10.255.255.53:53: no such host"},
        ])  # fmt: skip

    def _long_build(self):
        for _ in range(500):
            self.build_chunks_read += 1
            time.sleep(0.01)
            yield {"stream": "compiling\n"}


def test_a_runtime_base_that_cannot_build_ends_the_build_stage_early():
    request = images.BuildRequest(variant=GPU, source=CaffeSource.from_options(None, None, None),
                                  tag="t:x", runtime_image="nvidia/cuda:r")  # fmt: skip
    engine = _NoRuntimeImageEngine()
    with pytest.raises(CaffeboxError) as failed:
        images.build(engine, request, out=io.StringIO())
    message = str(failed.value)
    assert "at docker/runtime-base.Dockerfile: Get " in message
    assert "The base image nvidia/cuda:r is not on this engine" in message
    assert engine.build_chunks_read < 500  # not read to the end of the compile
    assert len(engine.calls) == 2


def test_a_failed_build_stage_waits_for_the_runtime_base_and_says_why():
    request = images.BuildRequest(variant=CPU, source=CaffeSource.from_options(None, None, None),
                                  tag="t:x")  # fmt: skip
    engine, out = _FailingEngine(), io.StringIO()
    with pytest.raises(CaffeboxError, match="at target 'build': the compile broke"):
        images.build(engine, request, out=out)
    assert engine.runtime_base_done.is_set()  # no build left running behind the error
    assert "runtime base log" in out.getvalue()
    assert len(engine.calls) == 2  # no runtime or final call after the failure


def _first_steps() -> dict[str, str]:
    """The first instruction after each FROM, per stage (per Dockerfile for the bases)."""
    firsts: dict[str, str] = {}
    for dockerfile in sorted(paths.DOCKER_DIR.glob("*Dockerfile")):
        stage, waiting = "", False
        for line in dockerfile.read_text().splitlines():
            line = line.strip()
            if m := re.match(r"FROM\s+\S+(?:\s+AS\s+(\S+))?", line, re.I):
                stage, waiting = f"{dockerfile.name}:{m.group(1) or 'main'}", True
            elif waiting and line and not line.startswith("#"):
                firsts[stage] = line
                waiting = False
    return firsts


def test_no_two_stages_start_alike():
    """The classic builder's cache picks any child of the parent with the same config: two
    stages (or Dockerfiles) on one base that begin alike cross over, and after a --no-cache
    build the labels call compiled Caffe again (seen: BVLC, 313 s for the 'final' call)."""
    firsts = _first_steps()
    assert len(firsts) >= 7, firsts  # build, bundle, runtime, final, runtime base, 2 CUDA
    seen: dict[str, str] = {}
    for stage, step in firsts.items():
        if stage.endswith(":final"):
            continue  # FROM runtime: its parent is our own image, not a shared base
        assert step not in seen, f"{stage} and {seen[step]} both start with {step!r}"
        seen[step] = stage


@pytest.mark.parametrize(
    "tag, runtime",
    [("caffebox/cuda-offline:13", "caffebox/cuda-offline:13-runtime"),
     ("localhost:5000/cuda", "localhost:5000/cuda:runtime")],
)  # fmt: skip
def test_offline_cuda_runtime_base_sits_beside_devel(tag, runtime):
    assert images.tag_beside(tag, "runtime") == runtime


def test_the_layers_package_is_the_runtime_stages_last_copy():
    """An edit to caffebox_layers rebuilds one small layer: no step that installs, compiles
    or checks anything comes after its COPY in the runtime stage."""
    text = (paths.DOCKER_DIR / "Dockerfile").read_text()
    runtime = text[text.index("AS runtime\n"):text.index("AS final\n")]
    after = runtime[runtime.index("COPY caffebox_layers "):]
    steps = [line.split()[0] for line in after.splitlines()[1:]
             if line and line[0].isupper() and not line.startswith("FROM")]  # fmt: skip
    assert set(steps) <= {"WORKDIR", "ENTRYPOINT", "CMD"}, steps
