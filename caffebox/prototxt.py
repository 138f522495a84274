"""A small reader for protobuf text format, enough for solver and net files.

We read only what the host must check before a container starts (file names,
max_iter, snapshot prefix, layer types); Caffe itself parses the real thing.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Union

Value = Union[str, int, float, bool, "Message"]

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<comment>\#[^\n]*)
      | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
      | (?P<punct>[{}:<>;,\[\]])
      | (?P<word>[^\s{}:<>;,\[\]"'#]+)
    )""",
    re.VERBOSE,
)


_ESCAPE = re.compile(r"\\(.)")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r"}


class Word(str):
    """An unquoted value that is not a number or bool: an enum name such as CPU."""


class ParseError(ValueError):
    """The text is not protobuf text format; the message says where."""


class Message(dict[str, Any]):
    """Field name -> list of values (every field may repeat in text format)."""

    def first(self, name: str, default: Any = None) -> Any:
        values = self.get(name)
        return values[0] if values else default

    def all(self, name: str) -> list[Any]:
        return list(self.get(name, []))


def _tokens(text: str) -> list[tuple[str, str, int]]:
    out: list[tuple[str, str, int]] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            if text[pos:].strip() == "":
                break
            line = text.count("\n", 0, pos) + 1
            raise ParseError(f"line {line}: cannot read {text[pos : pos + 20].strip()!r}")
        pos = m.end()
        kind = m.lastgroup
        if kind and kind != "comment":
            out.append((kind, m.group(kind), text.count("\n", 0, m.start(kind)) + 1))
    return out


def _scalar(kind: str, raw: str) -> Value:
    if kind == "string":
        return _ESCAPE.sub(lambda m: _ESCAPES.get(m.group(1), m.group(1)), raw[1:-1])
    if raw in ("true", "True"):
        return True
    if raw in ("false", "False"):
        return False
    try:
        return int(raw)
    except ValueError:
        pass
    try:
        return float(raw)
    except ValueError:
        return Word(raw)  # an enum name such as CPU or SGD


def parse(text: str) -> Message:
    """Parse protobuf text format into nested Messages."""
    tokens = _tokens(text)
    pos = 0

    def message(closing: str | None, opened: int = 0) -> Message:
        nonlocal pos
        msg = Message()
        while pos < len(tokens):
            kind, raw, line = tokens[pos]
            if kind == "punct" and raw in "}>" and closing:
                if raw != closing:
                    raise ParseError(f"line {line}: {raw!r} closes a block opened with "
                                     f"{'{' if closing == '}' else '<'!r}")  # fmt: skip
                pos += 1
                return msg
            if kind == "punct" and raw in ";,":
                pos += 1
                continue
            if kind != "word":
                raise ParseError(f"line {line}: expected a field name, found {raw!r}")
            name = raw
            pos += 1
            if pos < len(tokens) and tokens[pos][1] == ":":
                pos += 1
            if pos >= len(tokens):
                raise ParseError(f"line {line}: field {name!r} has no value")
            kind, raw, line = tokens[pos]
            if raw in ("{", "<"):
                pos += 1
                msg.setdefault(name, []).append(message("}" if raw == "{" else ">", line))
            elif raw == "[":
                pos += 1
                while pos < len(tokens) and tokens[pos][1] != "]":
                    item_kind, item, item_line = tokens[pos]
                    if item_kind == "punct" and item != ",":
                        raise ParseError(f"line {item_line}: {item!r} inside the list of {name!r}")
                    if item != ",":
                        msg.setdefault(name, []).append(_scalar(item_kind, item))
                    pos += 1
                if pos >= len(tokens):
                    raise ParseError(f"line {line}: the list of {name!r} has no closing ']'")
                pos += 1
            elif kind in ("word", "string"):
                pos += 1
                # adjacent string literals concatenate, as in protobuf
                while kind == "string" and pos < len(tokens) and tokens[pos][0] == "string":
                    raw = raw[:-1] + tokens[pos][1][1:]
                    pos += 1
                msg.setdefault(name, []).append(_scalar(kind, raw))
            else:
                raise ParseError(f"line {line}: field {name!r} has no value")
        if closing:
            raise ParseError(
                f"line {opened}: the block opened here has no closing brace {closing!r}"
            )
        return msg

    return message(None)


def parse_file(path: Path) -> Message:
    return parse(path.read_text())


def _format_value(value: Value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Word):
        return str(value)
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{text}"'


def to_text(msg: Message, indent: int = 0) -> str:
    """Protobuf text format for a Message: parse(to_text(m)) == m (comments are not kept)."""
    pad = "  " * indent
    lines = []
    for name, values in msg.items():
        for value in values:
            if isinstance(value, Message):
                lines.append(f"{pad}{name} {{")
                body = to_text(value, indent + 1)
                if body:
                    lines.append(body.rstrip("\n"))
                lines.append(f"{pad}}}")
            else:
                lines.append(f"{pad}{name}: {_format_value(value)}")
    return "\n".join(lines) + ("\n" if lines else "")
