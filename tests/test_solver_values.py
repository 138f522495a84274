"""Every solver value caffebox reads: a wrong kind is one paragraph naming the field, the
line and the file, never a ValueError from caffebox's code (property-tested)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from caffebox import solver as solverlib
from caffebox.errors import CaffeboxError

FIELDS = [*solverlib.INT_FIELDS, *solverlib.NUMBER_FIELDS, "snapshot_prefix", "solver_mode"]
# What a user may type after 'field:' in a prototxt: numbers, words, strings, blocks.
VALUES = st.one_of(
    st.integers(-10**6, 10**6).map(str),
    st.floats(allow_nan=False, allow_infinity=False, width=32).map(lambda f: f"{f:g}"),
    st.sampled_from(["twenty", "fast", "CPU", "GPU", "true", "1e-3", "0x10", "-", "nan"]),
    st.text("abcxyz/_.", min_size=0, max_size=8).map(lambda t: f'"{t}"'),
)


def _write(tmp_path, field: str, raw: str):
    (tmp_path / "net.prototxt").write_text("")
    text = f'net: "net.prototxt"\n# a comment\n{field}: {raw}\n'
    if field != "max_iter":
        text += "max_iter: 10\n"
    (tmp_path / "solver.prototxt").write_text(text)


@settings(max_examples=300, deadline=None)
@given(field=st.sampled_from(FIELDS), raw=VALUES)
def test_any_value_loads_or_is_one_paragraph(tmp_path_factory, field, raw):
    tmp_path = tmp_path_factory.mktemp("values")
    _write(tmp_path, field, raw)
    try:
        solver = solverlib.load("solver.prototxt", tmp_path)
    except CaffeboxError as exc:
        text = str(exc)
        assert f"solver.prototxt, line 3: {field} is " in text, text
        assert "\n" not in text
        return
    value = solver.params.first(field)
    if field in solverlib.INT_FIELDS:
        assert float(value).is_integer() and int(value) == value
    elif field in solverlib.NUMBER_FIELDS:
        float(value)
    assert solver.max_iter == int(solver.max_iter)


@pytest.mark.parametrize(
    ("field", "raw", "want"),
    [("max_iter", "twenty", "a whole number"), ("base_lr", "fast", "a number"),
     ("solver_mode", "TPU", "CPU or GPU"), ("snapshot_prefix", "snaps", "a quoted string"),
     ("max_iter", "1.5", "a whole number")],
)  # fmt: skip
def test_wrong_kinds_named(tmp_path, field, raw, want):
    _write(tmp_path, field, raw)
    with pytest.raises(CaffeboxError, match=f"line 3: {field} is .*{want}"):
        solverlib.load("solver.prototxt", tmp_path)
