"""Rendering Makefile.config.template: no engine needed."""

import pytest

from caffebox import makeconfig
from caffebox.errors import CaffeboxError
from caffebox.variants import CPU, get_variant

from .support.makeconfig import settings_of as _settings


def test_cpu_variant_settings():
    s = _settings(makeconfig.render(CPU))
    assert s["WITH_PYTHON_LAYER"] == "1"
    assert s["CPU_ONLY"] == "1"
    assert s["USE_CUDNN"] == ""
    assert s["BLAS"] == "open"
    assert s["PYTHON_LIBRARIES"] == "boost_python$(CAFFEBOX_PY_XY) python$(CAFFEBOX_PY_X_Y)"
    assert "pkg-config" in s["INCLUDE_DIRS"] and "hdf5" == s["CAFFEBOX_PKGS"]


def test_no_placeholder_survives():
    assert "@" not in makeconfig.render(CPU).replace("Q ?= @", "")


def test_opencv_legacy_headers_forced_for_cxx_only():
    text = makeconfig.render(CPU)
    assert "CXXFLAGS += -include opencv2/imgproc/imgproc_c.h" in text
    assert "NVCCFLAGS += -include opencv2" not in text


def test_unknown_placeholder_is_an_error(tmp_path):
    template = tmp_path / "Makefile.config.template"
    template.write_text("WITH_PYTHON_LAYER := 1\nFOO := @NOPE@\n")
    with pytest.raises(CaffeboxError, match="NOPE"):
        makeconfig.render(CPU, template)


def test_template_without_python_layer_is_refused(tmp_path):
    template = tmp_path / "Makefile.config.template"
    template.write_text("CPU_ONLY := @CPU_ONLY@\n")
    with pytest.raises(CaffeboxError, match="WITH_PYTHON_LAYER"):
        makeconfig.render(CPU, template)


def test_unknown_variant_lists_known_ones():
    with pytest.raises(CaffeboxError, match="cpu"):
        get_variant("tpu")
