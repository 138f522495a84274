"""caffebox/cli.py: the tasks as the `caffebox` command parses them (no engine)."""

from __future__ import annotations

import sys

from caffebox import cli

from .support.cli import caffebox


def test_every_task_is_listed(tmp_path):
    done = caffebox("--list", cwd=tmp_path)
    assert done.returncode == 0
    tasks = {line.split()[0] for line in done.stdout.splitlines()[1:] if line.strip()}
    assert {"train", "sweep", "run", "time", "python", "gradcheck", "test-layers",
            "build-cpu", "build-gpu", "export", "publish", "pull", "plot"} <= tasks  # fmt: skip


def test_run_keeps_the_words_the_shell_gave(monkeypatch):
    """invoke joins the words after '--' with spaces: 'out file' would become two."""
    monkeypatch.setattr(sys, "argv", ["caffebox", "run", "--", "touch", "out file"])
    assert cli._program_words("touch out file") == ["touch", "out file"]


def test_run_splits_its_remainder_when_argv_is_not_ours(monkeypatch):
    monkeypatch.setattr(sys, "argv", ["pytest"])
    assert cli._program_words("touch 'out file'") == ["touch", "out file"]


def test_settings_from_the_users_home_and_the_environment(tmp_path):
    """~/.invoke.yaml and INVOKE_CAFFEBOX_* reach the tasks (here: the runtime setting,
    whose charliecloud value needs --image DIR before anything else happens)."""
    import os

    home = tmp_path / "home"
    home.mkdir()
    (home / ".invoke.yaml").write_text("caffebox:\n  runtime: charliecloud\n")
    env = {**os.environ, "HOME": str(home), "DOCKER_HOST": "unix:///nonexistent.sock"}
    done = caffebox("run", "--", "true", cwd=tmp_path, env=env)
    assert done.returncode == 2 and "--runtime charliecloud needs --image DIR" in done.stderr
    env = {**os.environ, "INVOKE_CAFFEBOX_RUNTIME": "charliecloud", "HOME": str(tmp_path)}
    done = caffebox("run", "--", "true", cwd=tmp_path, env=env)
    assert done.returncode == 2 and "--runtime charliecloud needs --image DIR" in done.stderr
