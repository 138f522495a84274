"""caffebox.toml: parsing, the project image's recipe and hash, and what a bad file says."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from caffebox import launch, project
from caffebox.errors import CaffeboxError

from .support.fakes import FakeEngine


def _config(folder: Path, text: str) -> Path:
    path = folder / "caffebox.toml"
    path.write_text(text)
    return path


def test_found_in_the_folder_or_above(tmp_path):
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    assert project.find(deep) is None
    path = _config(tmp_path / "a", "[image]\n")
    assert project.find(deep) == path


def test_recipe_apt_pip_under_constraints_run_steps(tmp_path):
    (tmp_path / "requirements.txt").write_text("easydict==1.13\n")
    config = project.load(_config(tmp_path, '[image]\napt = ["cython3", "gcc"]\npip = ["pyyaml'
                                             '>=5"]\nrequirements = "requirements.txt"\nrun = ['
                                             '"make -C lib"]\n'))  # fmt: skip
    text = config.dockerfile("caffebox:cpu")
    assert text.startswith("FROM caffebox:cpu\n")
    assert "-o Dpkg::Options::=--force-unsafe-io python-is-python3 cython3 gcc python3-pip" in text
    assert "-c /tmp/caffebox-project/constraints.txt 'pyyaml>=5' -r " in text
    assert "\nRUN make -C lib\n" in text
    names = tarfile.open(fileobj=project.build_context(config, "b", b"")).getnames()
    assert sorted(names) == ["Dockerfile", "caffebox-project/ca-certificates.crt",
                             "caffebox-project/caffebox.toml", "caffebox-project/constraints.py",
                             "caffebox-project/requirements.txt"]  # fmt: skip


def test_no_pip_no_pip_step(tmp_path):
    text = project.load(_config(tmp_path, '[image]\napt = ["gcc"]\n')).dockerfile("b")
    assert "python3-pip" not in text and "pip install" not in text
    assert "python-is-python3" in text  # old Makefiles call `python setup.py`


def test_nvcc_copies_the_toolkit_of_the_gpu_images_build_base(tmp_path):
    config = project.load(_config(tmp_path, "[image]\nnvcc = true\n"))
    text = config.dockerfile("caffebox:gpu", "caffebox/cuda-offline:13-trixie")
    assert "COPY --from=caffebox/cuda-offline:13-trixie /usr/local/cuda /usr/local/cuda" in text
    assert "ENV PATH=/usr/local/cuda/bin:$PATH CUDAHOME=/usr/local/cuda" in text
    assert " g++" in text  # nvcc's host compiler
    assert "COPY --from" not in project.load(_config(tmp_path, "[image]\n")).dockerfile("b")
    gpu = {project.CUDA_LABEL: "13.0", project.BUILD_BASE_LABEL: "devel:13"}
    here = FakeEngine({"caffebox:gpu": "gpu", "devel:13": "cpu"})
    assert project.devel_image(here, "caffebox:gpu", gpu, config) == "devel:13"
    for labels, engine, said in [
        ({}, here, "is a cpu image"),
        ({project.CUDA_LABEL: "13.0"}, here, "does not say which CUDA image"),
        (gpu, FakeEngine({"caffebox:gpu": "gpu"}), "devel:13, which is not on this engine"),
    ]:  # fmt: skip
        with pytest.raises(CaffeboxError, match=said):
            project.devel_image(engine, "caffebox:gpu", labels, config)
    first = config.digest("sha256:a", "sha256:d1")
    assert config.digest("sha256:a", "sha256:d2") != first  # a new devel image: a new project image


def test_nvcc_on_debians_cuda_installs_its_toolkit_package(tmp_path):
    """The CUDA 12 (and 11.8) offline bases are Debian's own CUDA: their nvcc lives in
    /usr/bin with the headers in /usr/include, so the project image installs the same
    release's nvidia-cuda-toolkit (non-free added) instead of copying /usr/local/cuda."""
    config = project.load(_config(tmp_path, "[image]\nnvcc = true\n"))
    text = config.dockerfile("caffebox:gpu", "caffebox/cuda-offline:12-trixie", True)
    assert "COPY --from" not in text
    assert "ENV CUDAHOME=/usr\n" in text
    (install,) = [line for line in text.splitlines() if "apt-get install" in line]
    assert install.startswith("RUN sh /tmp/caffebox-project/debian-non-free.sh && apt-get update")
    assert " g++ nvidia-cuda-toolkit " in install
    names = tarfile.open(fileobj=project.build_context(
        config, "caffebox:gpu", b"", "caffebox/cuda-offline:12-trixie", True)).getnames()
    assert "caffebox-project/debian-non-free.sh" in names


def test_the_hash_follows_the_base_and_the_files(tmp_path):
    (tmp_path / "req.txt").write_text("easydict\n")
    path = _config(tmp_path, '[image]\nrequirements = "req.txt"\n')
    first = project.load(path).digest("sha256:a")
    assert project.load(path).digest("sha256:a") == first
    assert project.load(path).digest("sha256:b") != first
    (tmp_path / "req.txt").write_text("easydict==1.13\n")
    assert project.load(path).digest("sha256:a") != first
    assert project.tag_for("caffebox:cpu", first) == f"caffebox:cpu-project-{first[:12]}"


@pytest.mark.parametrize("text,said", [
    ("[image]\ncolour = 1\n", "unknown key(s) image.colour"),
    ("[build]\n", "unknown key(s) build"),
    ("[image\n", "is not valid TOML"),
    ('[image]\napt = "gcc"\n', "apt must be a list of strings"),
    ('[image]\napt = ["GCC Compiler"]\n', "is not a Debian package name"),
    ('[image]\npip = ["numpy<2"]\n', "compiled against the image's numpy"),
    ('[image]\npip = ["Protobuf==3.20"]\n', "prototxt"),
    ('[image]\nrequirements = "none.txt"\n', "is not a file"),
    ('[image]\nnvcc = "yes"\n', "nvcc must be true or false"),
])  # fmt: skip
def test_bad_files_are_one_paragraph(tmp_path, text, said):
    with pytest.raises(CaffeboxError) as caught:
        project.load(_config(tmp_path, text))
    assert said in str(caught.value) and str(tmp_path / "caffebox.toml") in str(caught.value)
    assert caught.value.exit_code == 2


def test_a_protected_package_in_the_requirements_file(tmp_path):
    (tmp_path / "req.txt").write_text("# ours\neasydict\nscipy>=1.0  # for us\n")
    with pytest.raises(CaffeboxError, match=r"requirements .* asks for 'scipy>=1.0'"):
        project.load(_config(tmp_path, '[image]\nrequirements = "req.txt"\n'))


ESC = "\x1b[91m"


@pytest.mark.parametrize("tail,said", [
    ([f"{ESC}E: Unable to locate package gccc", "\x1b[0m"], "apt says 'Unable to locate package"),
    ([f"{ESC}ERROR: No matching distribution found for easydic"], "pip says 'No matching"),
    (["ERROR: Cannot install x because these package versions have conflicting dependencies.",
      "    The user requested (constraint) numpy==2.2.4"], "replace numpy 2.2.4"),
    (["Step 7/8 : RUN make -C lib", " ---> Running in 1", "make: *** No rule", "Error 2"],
     "'make -C lib' failed"),
])  # fmt: skip
def test_build_errors_quote_the_tools_own_line(tmp_path, tail, said):
    config = project.load(_config(tmp_path, "[image]\n"))
    assert said in project.explain(config, "returned a non-zero code: 1", tail)


def test_a_given_project_image_must_be_current(tmp_path):
    path = _config(tmp_path, '[image]\npip = ["easydict"]\n')
    labels = {project.HASH_LABEL: project.load(path).digest("sha256:b"),
              project.BASE_LABEL: "sha256:b"}  # fmt: skip
    project.check_current(labels, "img", path)
    path.write_text('[image]\npip = ["easydict", "imageio"]\n')
    with pytest.raises(CaffeboxError, match="stale"):
        project.check_current(labels, "img", path)
    with pytest.raises(CaffeboxError, match="is not one"):
        project.check_current({}, "plain", path)
    project.check_current({}, "plain", None)


def test_runs_use_the_project_image_built_once(tmp_path, monkeypatch):
    path = _config(tmp_path, '[image]\npip = ["easydict"]\n')
    client = FakeEngine({"caffebox:cpu": "cpu"})
    built = []

    def ensure(client_, base, config, certificates, out):
        built.append(base)
        client.images_here[f"{base}-project"] = "cpu"
        return f"{base}-project"

    monkeypatch.setattr(project, "ensure", ensure)
    target = launch.Target("caffebox:cpu", project=path, ca_certificates="none")
    assert launch.ready(client, target) == "caffebox:cpu-project"
    assert built == ["caffebox:cpu"]
    assert launch.ready(client, launch.Target("caffebox:cpu")) == "caffebox:cpu"


def test_build_project_without_a_caffebox_toml(tmp_path):
    from .support.cli import assert_one_paragraph, caffebox

    done = caffebox("build-project", cwd=tmp_path)
    assert_one_paragraph(done, 2, r"There is no caffebox.toml in .* or a folder above it")
