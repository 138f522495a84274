"""Scripts caffebox writes for other programs (sbatch, an export's entry, a probe run in
an image) live as files in caffebox/templates/, where linters and shellcheck read them as
code; values go in at @NAME@ markers."""

from __future__ import annotations

import re
from importlib import resources

_MARK = re.compile(r"@([A-Z_]+)@")


def text(name: str) -> str:
    """A template's text as shipped in the package."""
    return (resources.files("caffebox") / "templates" / name).read_text()


def render(template: str, **values: str) -> str:
    """The template with every @NAME@ replaced by values[name.lower()]; a marker without a
    value is a bug here, not a script with a hole in it."""

    def fill(match: re.Match[str]) -> str:
        key = match.group(1).lower()
        if key not in values:
            raise KeyError(f"template {template} needs a value for @{match.group(1)}@")
        return values[key]

    return _MARK.sub(fill, text(template))
