"""invoke base-image's slim step on a small fake root filesystem (no debootstrap)."""

from pathlib import Path

import pytest

from caffebox import baseimage
from caffebox.errors import CaffeboxError


def _tree(root: Path, files: list[str]) -> None:
    for name in files:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text("x")


def test_slim_removes_docs_keeps_copyright_and_tells_dpkg(tmp_path):
    _tree(tmp_path, [
        "usr/share/doc/bash/copyright", "usr/share/doc/bash/README.gz",
        "usr/share/man/man1/ls.1.gz", "usr/share/locale/de/LC_MESSAGES/apt.mo",
        "usr/share/info/dir", "usr/bin/ls", "usr/share/zoneinfo/UTC",
    ])  # fmt: skip
    baseimage.slim(tmp_path)
    left = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert left == [
        "etc/dpkg/dpkg.cfg.d/docker-slim", "usr/bin/ls",
        "usr/share/doc/bash/copyright", "usr/share/zoneinfo/UTC",
    ]  # fmt: skip
    conf = (tmp_path / "etc/dpkg/dpkg.cfg.d/docker-slim").read_text()
    assert "path-exclude /usr/share/doc/*\n" in conf
    assert "path-include /usr/share/doc/*/copyright\n" in conf


@pytest.mark.parametrize("image", ["ubuntu:22.04", "debian:wheezy"])
def test_suite_refuses_what_it_cannot_make(image):
    with pytest.raises(CaffeboxError):
        baseimage.suite_for(image)
