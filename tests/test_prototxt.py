"""The protobuf text-format reader."""

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
    with pytest.raises(ParseError, match="no closing brace"):
        parse("layer { name: 'x'")


def test_garbage_names_the_line():
    with pytest.raises(ParseError, match="line 2"):
        parse("a: 1\n: 2\n")


def test_unterminated_list_names_its_line():
    with pytest.raises(ParseError, match=r"line 2: the list of 'test_iter' has no closing"):
        parse("a: 1\ntest_iter: [1, 2\n")


def test_mismatched_closing_brace():
    with pytest.raises(ParseError, match=r"line 1: '>' closes a block opened with '\{'"):
        parse("layer { name: 'x' >")


def test_unclosed_block_names_where_it_opened():
    with pytest.raises(ParseError, match=r"line 2: the block opened here"):
        parse("a: 1\nlayer <\n name: 'x'\n")


# Text made of protobuf's own pieces finds more of the parser's paths than random text.
_PIECES = st.sampled_from(
    ["{", "}", "<", ">", "[", "]", ":", ",", ";", "name", "layer", "1", "-2.5e3", "CPU",
     '"s"', "'t'", '"un', "# c\n", "\n", " ", "\\"]
)  # fmt: skip


@given(st.one_of(st.text(max_size=200), st.lists(_PIECES, max_size=40).map("".join)))
@settings(max_examples=600, deadline=None)
def test_any_text_parses_or_names_the_line(text):
    try:
        result = parse(text)
    except ParseError as exc:
        assert re.match(r"line \d+: ", str(exc)), str(exc)
    else:
        assert isinstance(result, dict)


@given(st.lists(_PIECES, max_size=40).map("".join))
@settings(max_examples=600, deadline=None)
def test_format_round_trips(text):
    """Sweeps write variants with to_text(): whatever parses must survive the round trip."""
    from caffebox.prototxt import to_text

    try:
        msg = parse(text)
    except ParseError:
        return
    assert parse(to_text(msg)) == msg


def test_enums_stay_bare_and_strings_quoted():
    from caffebox.prototxt import to_text

    text = to_text(parse('solver_mode: CPU lr_policy: "step" a: "q\\"x" b: 1e-05 c: true'))
    assert text.splitlines() == [
        "solver_mode: CPU", 'lr_policy: "step"', 'a: "q\\"x"', "b: 1e-05", "c: true",
    ]  # fmt: skip
