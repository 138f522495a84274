"""The published tag scheme."""

from caffebox.tags import image_tags, source_slug

TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"


def test_bvlc_cpu_and_gpu():
    cpu = {
        "io.caffebox.variant": "cpu",
        "org.opencontainers.image.source": "https://github.com/BVLC/caffe.git",
        "org.opencontainers.image.revision": "9b891540183ddc834a02b2bd81b31afae71b2153",
        "io.caffebox.python.version": "3.11.2",
    }
    assert image_tags(cpu, "0.2.0") == [
        "cpu", "cpu-bvlc9b89154-py3.11", "cpu-bvlc9b89154-py3.11-caffebox0.2.0",
    ]  # fmt: skip
    gpu = {**cpu, "io.caffebox.variant": "gpu", "io.caffebox.cuda.version": "12.4.131",
           "io.caffebox.cudnn.version": "9", "io.caffebox.python.version": "3.10.12"}  # fmt: skip
    assert image_tags(gpu, "0.2.0")[1] == "gpu-cuda12.4-cudnn9-bvlc9b89154-py3.10"


def test_a_fork_from_a_tarball_without_a_commit():
    import re

    labels = {
        "io.caffebox.variant": "cpu",
        "org.opencontainers.image.source": "/root/.cache/brocolli-caffe-9.0.2.tar.gz",
        "org.opencontainers.image.revision": "unknown",
        "io.caffebox.python.version": "3.11.2",
    }
    tags = image_tags(labels, "0.2.0")
    assert tags[1] == "cpu-brocolli-caffe-9.0.2-py3.11"
    assert all(re.fullmatch(TAG, t) for t in tags)


def test_source_slug():
    assert source_slug("https://github.com/NVIDIA/caffe.git") == "caffe"
    assert source_slug("https://github.com/BVLC/caffe") == "bvlc"
    assert source_slug("/src/My Caffe_Fork/") == "my-caffe-fork"


def test_references():
    from caffebox.publishing import has_registry, remote_for, split_reference

    assert split_reference("127.0.0.1:5000/ns/caffebox:cpu") == (
        "127.0.0.1:5000/ns/caffebox",
        "cpu",
    )
    assert split_reference("localhost:5000/caffebox") == ("localhost:5000/caffebox", "latest")
    assert split_reference("ghcr.io/o/c@sha256:ab") == ("ghcr.io/o/c", "sha256:ab")
    assert has_registry("ghcr.io/o/caffebox:cpu") and not has_registry("caffebox:cpu")
    assert remote_for("caffebox:cpu", "ghcr.io/o/caffebox") == "ghcr.io/o/caffebox:cpu"
    assert remote_for("caffebox:cpu", "") == ""
    assert remote_for("ghcr.io/o/c@sha256:ab", "") == "ghcr.io/o/c@sha256:ab"


def test_a_tarball_is_named_by_its_content(tmp_path):
    """The build once printed "Caffe unknown" for every fork from a tarball."""
    import re

    from caffebox.source import CaffeSource

    tarball = tmp_path / "caffe-fast-rcnn.tar.gz"
    tarball.write_bytes(b"not really a tarball")
    revision = CaffeSource.from_options(str(tarball), None, None).commit()
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", revision)
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "Makefile").write_text("all:\n")
    first = CaffeSource.from_options(str(tree), None, None).commit()
    assert first.startswith("sha256:") and first != revision
    labels = {
        "io.caffebox.variant": "cpu",
        "org.opencontainers.image.source": str(tarball),
        "org.opencontainers.image.revision": revision,
        "io.caffebox.python.version": "3.11.2",
    }
    assert image_tags(labels, "0.2.0")[1] == f"cpu-caffe-fast-rcnn-src{revision[7:14]}-py3.11"
    assert all(re.fullmatch(TAG, t) for t in image_tags(labels, "0.2.0"))
