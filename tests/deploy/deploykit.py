"""Helpers of the deployment tests (tests/deploy): the service, package, container and
Kubernetes files checked without a container runtime or a running systemd. Standard library and
pytest (test_deploy.py also python3-yaml). A module of its own name, not conftest, so that
`from deploykit import ...` cannot pick up tests/system's conftest in a run of both folders."""

import json
import os
import re
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
START_SECONDS = 15
STOP_SECONDS = 20
# What AddressSanitizer, LeakSanitizer and UBSan print (an LD_SANITIZE build in LD_BUILD_DIR).
SANITIZER_REPORT = re.compile(r"ERROR: (Address|Leak)Sanitizer|runtime error:|SUMMARY: \w+Sanitizer")


def free_port():
    """A loopback port that was free a moment ago (bind to 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, port, path, body=None, headers=None, timeout=5):
    """(status, text) of one request to 127.0.0.1:port; an HTTP error status is returned too."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method,
                                 headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


class Daemon:
    """One litedistd process on a free loopback port, its output in a log file."""

    def __init__(self, argv, log_path, env=None, port=None):
        self.port = port or free_port()
        self.log_path = log_path
        self.argv = [*argv, "--port", str(self.port)]
        self.env = dict(os.environ, **(env or {}))
        self.proc = None

    def start(self):
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, env=self.env)
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"{self.argv[0]} exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if http("GET", self.port, "/health", timeout=1)[0] == 200:
                    return self
            except OSError:
                pass
            time.sleep(0.1)
        self.stop()
        pytest.fail(f"/health did not answer within {START_SECONDS} s:\n{self.log()}")

    def stop(self):
        """SIGTERM, then SIGKILL after STOP_SECONDS; returns the exit code. A sanitizer report
        in the output fails the test."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(STOP_SECONDS)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(STOP_SECONDS)
        self._log.close()
        assert not SANITIZER_REPORT.search(self.log()), self.log()
        return self.proc.returncode

    def log(self):
        return Path(self.log_path).read_text(errors="replace")
