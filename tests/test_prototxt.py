"""The protobuf text-format reader."""

import pytest

from caffebox.prototxt import ParseError, parse


def test_fields_nesting_comments_and_repeats():
    msg = parse(
        """
        net: "a.prototxt"  # the net
        test_iter: 3 test_iter: 4
        base_lr: 1e-2
        solver_mode: CPU
        layer { name: 'x' type: "Python"
          python_param { module: 'm' layer: 'L' param_str: "{'k': 1}" } }
        """
    )
    assert msg.first("net") == "a.prototxt"
    assert msg.all("test_iter") == [3, 4]
    assert msg.first("base_lr") == pytest.approx(0.01)
    assert msg.first("solver_mode") == "CPU"
    param = msg.first("layer").first("python_param")
    assert (param.first("module"), param.first("param_str")) == ("m", "{'k': 1}")


def test_escapes_and_adjacent_strings():
    msg = parse(r"""p: "{\"a\": 1, " "'b': 2}" q: 'it\'s'""")
    assert msg.first("p") == "{\"a\": 1, 'b': 2}"
    assert msg.first("q") == "it's"


def test_missing_brace_is_reported():
    with pytest.raises(ParseError, match="closing brace"):
        parse("layer { name: 'x'")


def test_garbage_names_the_line():
    with pytest.raises(ParseError, match="line 2"):
        parse("a: 1\n: 2\n")
