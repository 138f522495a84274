"""docs/tasks.md, the task reference, made from the tasks themselves: each task's docstring
and its options' help (caffebox/help.yaml), so the page cannot say other than `--help`.

    python -m caffebox.reference --write    # after changing a task or help.yaml

tests/test_docs.py fails while the page differs from what this renders.
"""

from __future__ import annotations

import inspect
import sys

from invoke.parser.argument import Argument

from caffebox import paths

PAGE = paths.ROOT / "docs" / "tasks.md"
HEADER = """\
# Tasks

Every task is `caffebox TASK` (and `invoke TASK` inside a clone of the repository); each has
`--help` (`caffebox --help train`). This page is generated from the tasks' own help
(`python -m caffebox.reference --write`): what each does, then its options. Settings that
options fall back to are on [Configuration](configuration.md).
"""


def _flag(argument: Argument) -> str:
    long = str(min((n for n in argument.names if len(n) > 1), key=len, default=argument.name))
    flag = f"`--{long.replace('_', '-')}`"
    if argument.positional:
        flag = f"`{long.upper()}` (or {flag})"
    return flag


def _default(argument: Argument) -> str:
    value = argument.default
    if argument.positional or value in ("", None, [], False):
        return ""
    return f" Default: `{value}`."


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def render() -> str:
    from caffebox.cli import namespace  # the tasks import much; the page needs them only here

    parts = [HEADER]
    for name in sorted(namespace.task_names):
        task = namespace[name]
        doc = inspect.getdoc(task.body) or ""
        summary, _, rest = doc.partition("\n\n")
        parts.append(f"## {name}\n\n{_cell(summary)}\n")
        if rest.strip():
            parts.append(rest.strip() + "\n")
        arguments = sorted(task.get_arguments(), key=lambda a: (not a.positional, a.name))
        if arguments:
            rows = ["| option | what it does |", "|---|---|"]
            rows += [f"| {_flag(a)} | {_cell(a.help or '')}{_default(a)} |" for a in arguments]
            parts.append("\n".join(rows) + "\n")
    return "\n".join(parts)


def main(argv: list[str]) -> int:
    text = render()
    if "--write" in argv:
        PAGE.write_text(text)
        print(f"wrote {PAGE}")
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
