"""What the runtime image holds: the libraries Caffe loads and nothing it never loads.

Properties, not timings (benchmarks/image_build.py measures those): a size bound for the
test source, every bundled library loaded by a Caffe binary, no LLVM, Mesa or Qt where
libcaffe does not load them, GDAL a stub (and none of its closure) while OpenCV still reads
images, and one compile per build.
"""

from __future__ import annotations

import re

import pytest

from .support.cli import build_log

pytestmark = pytest.mark.image


@pytest.fixture(scope="module")
def image(each_distro_image) -> str:
    """This module's tests run on the image of each Debian release (conftest)."""
    return each_distro_image

# The test source (PyPI brocolli-caffe 9.0.2, which calls highgui and videoio, so keeps
# Qt and ffmpeg) on Debian 12: 1,051 MB when the runtime installed packages, 626 MB with
# bundled libraries, 569 MB with GDAL a stub, 545 MB with one OpenBLAS (the runtime base's
# package) and graphviz's dot bundled without libgd's codecs; on Debian 13 628 MB before
# those two, 576 MB after (docs/image.md; BVLC master's image: 469 -> 398 MB). The bounds
# leave room for point releases.
TEST_SOURCE_MAX_MB = {"bookworm": 560, "trixie": 590}

# ldd of what Caffe ships (and the dot caffe.draw runs, with its plugins), as 'lib path'
# lines: the closure the image must carry.
LOADED = (
    "ldd /opt/caffe/bin/* /opt/caffe/lib/libcaffe*.so /opt/caffe/python/caffe/_caffe*.so"
    " /opt/caffe/lib/graphviz/dot /opt/caffe/lib/graphviz/*.so.*"
    " | awk '$2 == \"=>\" {print $1, $3}' | sort -u"
)


@pytest.fixture
def loaded(run_in_image) -> dict[str, str]:
    code, out = run_in_image(["sh", "-c", LOADED])
    assert code == 0, out
    return dict(line.split(" ", 1) for line in out.splitlines() if " " in line)


def test_size_bound(engine, image, run_in_image):
    size_mb = engine.images.get(image).attrs["Size"] / 1e6
    code, out = run_in_image(["sh", "-c", ". /etc/os-release; echo $VERSION_CODENAME"])
    print(f"\n{image}: {size_mb:.0f} MB")
    assert size_mb <= TEST_SOURCE_MAX_MB[out.split()[-1]]


def test_every_library_resolves_and_every_bundled_one_is_loaded(run_in_image, loaded):
    assert "not" not in loaded.values(), {k: v for k, v in loaded.items() if v == "not"}
    code, out = run_in_image(["sh", "-c", "cd /opt/caffe/lib/deps && ls; cat PACKAGES"])
    assert code == 0, out
    bundled = {name for name in out.split() if ".so" in name}
    assert bundled, "nothing bundled: /opt/caffe/lib/deps is empty"
    assert bundled <= set(loaded), f"bundled but never loaded: {bundled - set(loaded)}"
    for name in bundled:
        assert loaded[name] == f"/opt/caffe/lib/deps/{name}", (name, loaded[name])
    origins = dict(line.split(" ", 1) for line in out.splitlines() if line.count(" ") == 2)
    assert set(origins) == bundled, "PACKAGES must name the origin of every bundled file"
    (core,) = [name for name in origins if name.startswith("libopencv_core.so.")]
    assert origins[core].startswith("libopencv-core"), origins[core]  # e.g. libopencv-core406


@pytest.mark.parametrize(
    "what, pattern",
    [("LLVM", "libLLVM"), ("Mesa's drivers", "_dri.so"), ("Qt", "libQt5"),
     ("OpenCV highgui", "libopencv_highgui"), ("OpenCV videoio", "libopencv_videoio"),
     ("GDAL's data", "gdal/"), ("PROJ's data", "proj.db"), ("PROJ", "libproj.so"),
     ("ICU's data", "libicudata"), ("GEOS", "libgeos"), ("poppler", "libpoppler"),
     ("graphviz's gd plugin", "libgvplugin_gd"), ("libgd", "libgd.so"),
     ("AV1 codecs", "libaom.so"), ("AV1 codecs", "librav1e"), ("AV1 codecs", "libSvtAv1Enc"),
     ("HEIF", "libheif"), ("reference LAPACK", "/lapack/liblapack.so")],
)  # fmt: skip
def test_nothing_caffe_does_not_load(run_in_image, loaded, what, pattern):
    # find's listing must be there (exit 3 if not): an empty one would pass every case.
    code, out = run_in_image(
        ["sh", "-c", "find / -xdev \\( -type f -o -type l \\) 2>/dev/null > /tmp/all || true; "
         "grep -q /opt/caffe/bin/caffe /tmp/all || exit 3; grep -F -- \"$0\" /tmp/all; exit 0",
         pattern]
    )  # fmt: skip
    assert code == 0, out
    found = out.split()
    needed = [name for name in loaded if pattern in name]
    if needed:
        assert found, f"{what}: libcaffe loads {needed} but the image lacks them"
    else:
        assert not found, f"{what} is in the image but nothing of Caffe loads it: {found[:5]}"


GDAL_CHECK = r"""
set -e
cd /tmp
python3 -c '
import numpy as n
from PIL import Image
for name in ("a.png", "b.jpg"):
    Image.fromarray((n.random.RandomState(0).rand(20, 30, 3) * 255).astype("uint8")).save(name)
open("c.ntf", "w").write("NITF02.10")
'
printf 'a.png 0\nb.jpg 1\n' > images.txt
convert_imageset /tmp/ images.txt db 2>&1 | grep -F 'Processed 2 files.'
printf 'c.ntf 0\n' > nitf.txt
convert_imageset /tmp/ nitf.txt db2 2>&1 | grep -F 'is a stub' || true
grep -F caffebox-stub-of- /opt/caffe/lib/deps/PACKAGES
echo "GDAL's own libraries loaded:" $(ldd /opt/caffe/bin/* /opt/caffe/lib/libcaffe*.so \
    /opt/caffe/python/caffe/_caffe*.so | grep -oE 'lib(proj|geos|poppler|spatialite)[^ ]*' \
    | sort -u)
"""


def test_gdal_is_a_stub_and_opencv_still_reads_png_and_jpeg(run_in_image):
    """Debian's libopencv_imgcodecs links GDAL (a ~120 MB closure) for NITF and DTED files
    alone: the image's libgdal is a stub of what imgcodecs takes from it, and Caffe's own
    image reading (convert_imageset: PNG and JPEG) works as before; a NITF file is refused
    with a message naming the stub."""
    code, out = run_in_image(["sh", "-c", GDAL_CHECK])
    assert code == 0, out
    assert "Processed 2 files." in out, out
    assert re.search(r"GDALOpen: this image's libgdal\.so\.\d+ is a stub", out), out
    assert re.search(r"^libgdal\.so\.\d+ caffebox-stub-of-libgdal\d+ \S+$", out, re.M), out
    assert re.search(r"^GDAL's own libraries loaded:$", out, re.M), out  # PROJ, GEOS...


MAPPED_BLAS = """import os, numpy, scipy.linalg
assert numpy.allclose(scipy.linalg.solve(numpy.eye(3) * 2, numpy.ones(3)), 0.5)
assert numpy.allclose(numpy.linalg.inv(numpy.eye(3) * 2), numpy.eye(3) / 2)
paths = {line.split()[-1] for line in open('/proc/self/maps') if 'blas' in line or 'lapack' in line}
for path in sorted(paths):
    print(os.path.getsize(path), path)
"""


def test_one_shared_openblas(run_in_image, loaded):
    """One OpenBLAS in the image and in a process that uses numpy, scipy and Caffe: the
    runtime base's package (numpy's BLAS and LAPACK too). scipy's wheel carries its own:
    before scipy 1.13 (Debian 12's pins) with BLAS's plain symbol names, a link to the
    system's; scipy 1.13+'s (Debian 13's) with every symbol prefixed scipy_, which
    bundle-libs makes a shim of jumps to the system's (the 21 MB copy and its libgfortran
    gone)."""
    code, out = run_in_image(["python3", "-c", MAPPED_BLAS])
    assert code == 0, out
    mapped = dict(reversed(line.split(" ", 1)) for line in out.splitlines())
    big = sorted(path for path, size in mapped.items()
                 if "openblas" in path.rsplit("/", 1)[-1] and int(size) > 1_000_000)
    code, real = run_in_image(["readlink", "-f", loaded["libopenblas.so.0"]])
    assert code == 0, real
    assert big == [real.strip()], f"more than one OpenBLAS mapped: {mapped}"
    code, out = run_in_image(["sh", "-c", "du -sk /opt/caffe/pydeps/scipy.libs | cut -f1"])
    assert code == 0 and int(out.split()[-1]) < 5_000, f"scipy.libs holds {out} kB"


def test_one_compile_per_build(image):
    """The image fixture's build: Caffe compiled at most once (twice was seen when
    --no-cache reached the labels call), exactly once where its step was not cached."""
    import os

    log = build_log(image)
    if not log:
        if os.environ.get("CI") == "true":
            pytest.fail("CI builds the test image: its build log must be here")
        pytest.skip("an image was given (--caffebox-image): there is no build to count")
    runs = re.findall(r"RUN build-caffe\n( ---> Using cache)?", log)
    assert runs, "the build log shows no build-caffe step"
    compiles = log.count("==> caffebox: building with")
    uncached = sum(1 for cached in runs if not cached)
    assert uncached <= 1, f"the build-caffe step ran {uncached} times in one build"
    assert compiles == uncached, f"Caffe compiled {compiles} times, its step ran {uncached}"
