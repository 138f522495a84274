"""What a run's container is allowed, read off a live one: the isolation list of training.md."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from caffebox.runs import RUN_LABEL

from .support.cli import CAFFEBOX

pytestmark = pytest.mark.image


def test_a_live_container_has_the_isolation_the_readme_lists(open_dir, engine, image):
    env = {**os.environ, "INVOKE_CAFFEBOX_IMAGE": image, "INVOKE_CAFFEBOX_PIDS_LIMIT": "100"}
    command = [*CAFFEBOX, "run", "--memory", "512m", "--", "sleep", "60"]
    proc = subprocess.Popen(command, cwd=open_dir, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)  # fmt: skip
    try:
        found = None
        for _ in range(200):
            live = [c for c in engine.containers.list(filters={"label": RUN_LABEL})
                    if c.attrs["Config"]["Cmd"] == ["sleep", "60"]]  # fmt: skip
            if live:
                found = live[0]
                break
            time.sleep(0.1)
        assert found is not None, "no container started"
        host, config = found.attrs["HostConfig"], found.attrs["Config"]
        assert host["NetworkMode"] == "none"
        assert host["CapDrop"] == ["ALL"] and not host.get("CapAdd")
        assert "no-new-privileges" in host["SecurityOpt"]
        assert host["ReadonlyRootfs"] is True and "/tmp" in host["Tmpfs"]
        assert host["PidsLimit"] == 100
        assert host["Memory"] == host["MemorySwap"] == 512 * 2**20
        assert host["Privileged"] is False
        assert config["User"] == f"{os.getuid()}:{os.getgid()}"
        mounts = {m["Destination"]: m for m in found.attrs["Mounts"]}
        assert mounts.pop(str(open_dir))["RW"] is True  # the project: the one writable mount
        # From a clone, the checkout's layers/ over the image's copy, read-only.
        assert all(m["RW"] is False for m in mounts.values()), mounts
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    assert not [c for c in engine.containers.list(all=True, filters={"label": RUN_LABEL})
                if c.attrs["Config"]["Cmd"] == ["sleep", "60"]]  # fmt: skip
