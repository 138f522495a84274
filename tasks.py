"""invoke tasks for caffebox; the logic lives in the caffebox package (caffebox/cli.py)."""

from caffebox.cli import namespace

ns = namespace
