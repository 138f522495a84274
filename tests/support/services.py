"""What a test needs from the machine: under CI (CI=true) a missing service is a failure,
since CI must run every test; elsewhere the test skips with the reason."""

from __future__ import annotations

import os

import pytest


def missing(reason: str, ci_says: str = "") -> None:
    """Fail under CI (with `ci_says` when given), else skip; never returns."""
    if os.environ.get("CI") == "true":
        pytest.fail(ci_says or f"{reason}; CI must run this test")
    pytest.skip(reason)
