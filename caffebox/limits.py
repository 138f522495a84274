"""Bounds on a runaway layer: what caffebox asks the engine for (processes, memory, the
rlimits Podman can set), and what it cannot have."""

from __future__ import annotations

import re
import resource

from caffebox import contract, runs
from caffebox.errors import CaffeboxError

# Processes a run may have under Podman: what containers.conf's example sets. The host's
# own nproc (96369 here) was refused all the same ("error setting rlimit type 6": runc
# sets it from a context with less), 4096 was not; pids_limit bounds the container anyway.
PODMAN_NPROC = 4096


def unapplied(spec: runs.RunSpec, runtime: str, memory_limit: str) -> str:
    """The one line that says which limits this engine does not get, or ''."""
    if runtime == "charliecloud":
        return ("caffebox: ch-run applies no pids or memory limit (the host's own limits "
                "hold)\n")  # fmt: skip
    if spec.rootless and memory_bytes(memory_limit, 2**40) > 0:
        return ("caffebox: memory_limit is not applied under rootless Podman (its memory "
                "cgroup may not be delegated to you)\n")  # fmt: skip
    return ""


def host_ulimits() -> tuple[tuple[str, int, int], ...]:
    """nofile as this host lets its processes have it and a modest nproc: limits Podman
    can set (it otherwise raises both, which fails where root lacks CAP_SYS_RESOURCE)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    nofile = ("nofile", -1 if soft == resource.RLIM_INFINITY else soft,
              -1 if hard == resource.RLIM_INFINITY else hard)  # fmt: skip
    nproc = min([PODMAN_NPROC, *(v for v in resource.getrlimit(resource.RLIMIT_NPROC)
                                 if v != resource.RLIM_INFINITY)])  # fmt: skip
    return (nofile, ("nproc", nproc, nproc))


def engine_memory(client: contract.Engine) -> int:
    try:
        return int(client.info().get("MemTotal") or 0)
    except Exception:  # noqa: BLE001 - an engine (or stand-in) that does not say
        return 0


_UNITS = {"": 1, "b": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}


def memory_bytes(setting: str, total: int) -> int:
    """The memory_limit setting in bytes (0: no limit). 'auto': the engine's memory less a
    tenth, keeping at least 1 GiB for the host."""
    text = setting.strip().lower()
    if text in ("", "none", "0"):
        return 0
    if text == "auto":
        return max(total - max(total // 10, 2**30), 0) if total > 2 * 2**30 else 0
    found = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?", text)
    if not found:
        raise CaffeboxError(
            f"The memory_limit setting is {setting!r}: give a size such as '16g' or '512m', "
            "'auto' (this host's memory less a tenth) or 'none'."
        )
    return int(float(found.group(1)) * _UNITS[found.group(2)])
