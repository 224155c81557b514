"""Fixtures of the deployment tests; the helpers are in deploykit.py. The build is found
through LD_BUILD_DIR (default <repo>/build)."""

import os
from pathlib import Path

import pytest

from deploykit import REPO


@pytest.fixture(scope="session")
def build_dir():
    d = Path(os.environ.get("LD_BUILD_DIR", REPO / "build")).resolve()
    if not (d / "bin" / "litedistd").exists():
        pytest.fail(f"no litedistd in {d}/bin: build first, or set LD_BUILD_DIR")
    return d
