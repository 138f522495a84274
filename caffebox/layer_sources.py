"""The user's Python that a net will import, read on the host before any container starts.

Caffe-era projects (2015-2018) are Python 2: in the image their first print statement ends
the run at iteration 0 as "caffe exited with 1". Parsing the files the net's modules import
from (and what they import from the same folders) says which file and line, and what fixes
it, before an image is built or a container started. And after a run, a module the image
lacks is told apart from one of the user's own.
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path

from caffebox.errors import CaffeboxError
from caffebox.paths import shown

# What only Python 2 writes: a print statement, `except E, e`, `exec "..."`, backticks.
_PY2 = re.compile(r"^\s*(print\s+[^\s(=]|print\s*$|exec\s+['\"]|except\s+[\w.]+\s*,\s*\w+\s*:)"
                  r"|`\w", re.M)  # fmt: skip


def module_files(module: str, dirs: Sequence[Path]) -> list[Path]:
    """The files Python runs to import `module` from the first folder that has it: each
    package's __init__.py on the way, then the module (empty: not one of the user's)."""
    parts = module.split(".")
    for folder in dirs:
        found, here = [], folder
        for i, part in enumerate(parts):
            package, plain = here / part, here / f"{part}.py"
            if (package / "__init__.py").is_file():
                found.append(package / "__init__.py")
                here = package
            elif i == len(parts) - 1 and plain.is_file():
                found.append(plain)
            else:
                break
        else:
            return found
        if found:
            return found
    return []


def _name_of(path: Path, dirs: Sequence[Path]) -> str:
    for folder in dirs:
        if folder in path.parents:
            parts = list(path.relative_to(folder).with_suffix("").parts)
            return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
    return ""


def _imports(tree: ast.AST, name: str, is_package: bool) -> Iterable[str]:
    """Absolute names a module imports (relative ones resolved against its package)."""
    package = name if is_package else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".") if package else []
                anchor = anchor[: len(anchor) - (node.level - 1)] if node.level > 1 else anchor
                base = ".".join([*anchor, base] if base else anchor)
            if base:
                yield base
                yield from (f"{base}.{alias.name}" for alias in node.names if alias.name != "*")


def looks_python2(text: str) -> bool:
    return _PY2.search(text) is not None


def check_python3(modules: Iterable[str], dirs: Sequence[Path], cwd: Path) -> None:
    """Every file the modules import from the user's folders parses as Python 3; one
    paragraph naming file:line and `caffebox modernize` otherwise."""
    queue = [m for m in modules if m]
    seen: set[Path] = set()
    bad: list[tuple[Path, int, str, bool]] = []
    while queue:
        for path in module_files(queue.pop(), dirs):
            if path in seen:
                continue
            seen.add(path)
            text = path.read_text(errors="replace")
            try:
                tree = ast.parse(text, str(path))
            except SyntaxError as exc:
                old = looks_python2(text)
                # A newer Python's syntax on an older host is not the user's mistake.
                if old or sys.version_info >= (3, 12):
                    bad.append((path, exc.lineno or 0, exc.msg, old))
                continue
            name = _name_of(path, dirs)
            queue += list(_imports(tree, name, path.name == "__init__.py"))
    if not bad:
        return
    places = [f"{shown(p, cwd)}:{line} ({msg})" for p, line, msg, _ in bad[:5]]
    more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
    folders = " ".join(sorted({shown(_top(p, dirs), cwd) for p, *_ in bad}))
    if any(old for *_, old in bad):
        raise CaffeboxError(
            f"Python 2 code in the layers this net imports: {', '.join(places)}{more}. The "
            "image runs Python 3, so Caffe would stop at the first Python layer. Port it with "
            f"'caffebox modernize {folders}' (a diff; add --write to apply), then check what "
            "it lists by hand."
        )
    raise CaffeboxError(
        f"The layers this net imports do not parse as Python 3: {', '.join(places)}{more}. "
        "Fix the syntax there; Caffe would stop at the first Python layer."
    )


def _top(path: Path, dirs: Sequence[Path]) -> Path:
    """The folder on PYTHONPATH that holds `path`."""
    return next((d for d in dirs if d in path.parents), path.parent)


def missing_module(text: str, dirs: Sequence[Path], own: Iterable[str] = ()) -> str:
    """For "No module named 'x'" in a log: a sentence on what is missing, or '' where it
    is one of the user's own modules (`own`: those the net names) or cannot be told."""
    found = re.findall(r"No module named '([\w.]+)'", text)
    if not found:
        return ""
    name = found[-1]
    top = name.split(".")[0]
    if top in {m.split(".")[0] for m in own}:
        return ""
    for folder in dirs:
        stem = folder / Path(*name.split("."))
        if stem.with_suffix(".pyx").is_file():
            return (
                f"'{name}' is a Cython extension of the project ({stem.with_suffix('.pyx')}) "
                "that is not built: build it in the image, e.g. 'caffebox run -- python "
                "setup.py build_ext --inplace' from the folder of its setup.py (or 'caffebox "
                "run -- make -C lib'), with cython3, python3-dev, gcc (and make) in "
                "caffebox.toml's [image] apt list."
            )
        if (folder / top).exists() or (folder / f"{top}.py").is_file():
            return ""  # one of the user's own modules: the layer-folder advice fits
    return (
        f"the image has no Python package '{top}'. Declare it in a caffebox.toml beside "
        f"your project ([image] pip = [\"{top}\"], or apt = [\"python3-{top}\"] for Debian's "
        "package): caffebox then builds a project image with it and runs that."
    )
