"""invoke tasks for caffebox; the logic lives in the caffebox package (caffebox/cli.py)."""

from pathlib import Path

from caffebox.cli import namespace
from caffebox.settings import exit_on_broken_config

# invoke reads the invoke.yaml beside this file next, and stops on a broken one with a
# traceback of its own: say what is wrong first.
exit_on_broken_config(Path(__file__).resolve().parent)

ns = namespace
