"""Fixtures of the fault test: the system tests' harness (tests/system/conftest.py: Node,
make_node, the build and storage options), loaded under its own module name. Both suites
define --storage: run them in separate pytest sessions."""

import importlib.util
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

_spec = importlib.util.spec_from_file_location("ld_system_harness",
                                               HERE.parent / "system" / "conftest.py")
harness = importlib.util.module_from_spec(_spec)
sys.modules["ld_system_harness"] = harness
_spec.loader.exec_module(harness)

# Re-exported so pytest registers them for this directory.
build = harness.build
storage = harness.storage
make_node = harness.make_node
pytest_addoption = harness.pytest_addoption
pytest_runtest_makereport = harness.pytest_runtest_makereport


def pytest_terminal_summary(terminalreporter):
    """Prints the figures of every fault run (operations, acks, faults, time to converge,
    anything lost), also when the run passed."""
    mod = sys.modules.get("test_fault")
    for f in getattr(mod, "FIGURES", []):
        terminalreporter.write_line("fault figures: " + json.dumps(f))
