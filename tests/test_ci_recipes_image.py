"""The users' CI recipes (examples/ci), run in the image the way the runners start it:
as root (GitLab) and as an arbitrary uid with no passwd entry and no HOME (GitHub's
`--user 1001`). The recipes' own commands are read from the files and run as written,
with actions/checkout replaced by a copy of a layer project."""

from __future__ import annotations

import os
import shutil

import pytest
import yaml

from .support.cli import ROOT

pytestmark = pytest.mark.image
# A layer project: the example layer tests as tests/, the digits example to train.
VALUES = {
    "LAYER_TESTS": "tests",
    "GRADCHECK": "caffebox_layers.affine.ChannelAffine --input x=2x3x2x2 --param-str "
    "\"'gamma': 1.5\"",
    "SOLVER": "examples/digits/solver.prototxt",
}


def _github_steps() -> list[str]:
    job = yaml.safe_load((ROOT / "examples/ci/github-actions.yml").read_text())["jobs"]["layers"]
    assert set(job["env"]) == set(VALUES)
    return [step["run"] for step in job["steps"] if "run" in step]


def _gitlab_steps() -> list[str]:
    job = yaml.safe_load((ROOT / "examples/ci/.gitlab-ci.yml").read_text())["layers"]
    assert set(job["variables"]) == set(VALUES)
    return list(job["script"])


def _project(folder):
    shutil.copytree(ROOT / "examples" / "layer_tests", folder / "tests")
    shutil.copytree(ROOT / "examples" / "digits", folder / "examples" / "digits")
    for path in [folder, *folder.rglob("*")]:
        os.chown(path, 4321, 4321)
    return folder


@pytest.mark.parametrize("recipe", ["github", "gitlab"])
@pytest.mark.parametrize("user", ["root", "4321:4321"])
def test_recipe_in_the_image(open_tmp, run_in_image, recipe, user):
    project = _project(open_tmp / f"ci-{recipe}-{user.replace(':', '-')}")
    steps = _github_steps() if recipe == "github" else _gitlab_steps()
    script = "set -e\n" + "\n".join(steps)
    env = dict(VALUES)  # no HOME: the engine gives an unknown uid HOME=/
    code, out = run_in_image(
        ["bash", "-c", script], user=user if user != "root" else "0:0", environment=env,
        working_dir="/work", volumes={str(project): {"bind": "/work", "mode": "rw"}},
    )  # fmt: skip
    assert code == 0, out[-4000:]
    assert "3 passed" in out, out[-4000:]
    assert "on caffe: PASSED" in out, out[-4000:]
    assert "Optimization Done." in out, out[-4000:]
    if user != "root":
        owners = {p.stat().st_uid for p in project.rglob("*")}
        assert owners == {4321}, "the runner's files must stay the runner's"
