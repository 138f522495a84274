"""`python -m caffebox ...` is the `caffebox` command."""

from caffebox.cli import program

program.run()
