"""What the tests share: a fake engine (fakes.py), the tracked container (containers.py),
the one way to call the CLI plus the bad-input checks (cli.py), Makefile.config reading
(makeconfig.py). conftest.py holds fixtures only."""
