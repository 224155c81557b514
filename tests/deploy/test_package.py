"""The Debian packages (issue 16 item 4): `cpack -G DEB` from the build tree, their contents and
control data, `dpkg -i` into this system, the installed unit through `systemd-analyze verify`,
the installed litedistd started from /usr/bin with /etc/litedist/litedistd.json on a free
loopback port (not through systemd: CI has none), queried, stopped, and `dpkg --purge`
leaving nothing behind. Needs root; refuses to touch a system where litedist is installed."""

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from deploykit import REPO, Daemon, http

PACKAGES = ("litedist-dev", "litedist")  # purge order: the one that depends first
DPKG_LOCK_SECONDS = 120
# Where the unit's DynamicUser + StateDirectory keep the data: purge deletes it.
STATE = (Path("/var/lib/litedist"), Path("/var/lib/private/litedist"))


def run(cmd, timeout=300, check=True):
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check:
        assert res.returncode == 0, f"{cmd}: {res.stdout}\n{res.stderr}"
    return res


def installed(pkg):
    res = run(["dpkg-query", "-W", "-f=${Status}", pkg], check=False)
    return res.returncode == 0 and "installed" in res.stdout.split()


def dpkg(*args):
    """dpkg, waiting (bounded) while another dpkg or apt holds the lock."""
    deadline = time.monotonic() + DPKG_LOCK_SECONDS
    while True:
        res = run(["dpkg", *args], check=False)
        if res.returncode == 0:
            return res
        if "lock" not in res.stderr or time.monotonic() > deadline:
            pytest.fail(f"dpkg {' '.join(args)}: {res.stdout}\n{res.stderr}")
        time.sleep(1)


@pytest.fixture(scope="module")
def debs(build_dir, tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("installing a package into the system needs root")
    for tool in ("cpack", "dpkg", "dpkg-deb", "dpkg-shlibdeps"):
        if not shutil.which(tool):
            pytest.fail(f"{tool} is missing (scripts/deps.sh --test installs it)")
    for pkg in PACKAGES:
        if installed(pkg):
            pytest.skip(f"{pkg} is installed on this system: the test would replace and purge it")
    for d in STATE:
        if d.exists() or d.is_symlink():
            pytest.skip(f"{d} exists: purging the package would delete it")
    out = tmp_path_factory.mktemp("debs")
    run(["cpack", "-G", "DEB", "--config", str(build_dir / "CPackConfig.cmake"), "-B", str(out)])
    found = {p.name.split("_")[0]: p for p in out.glob("*.deb")}
    assert sorted(found) == sorted(PACKAGES), found
    return found


def control(deb):
    fields = {}
    for line in run(["dpkg-deb", "-f", str(deb)]).stdout.splitlines():
        if ":" in line and not line.startswith(" "):
            k, v = line.split(":", 1)
            fields[k] = v.strip()
    return fields


def contents(deb):
    return {line.split()[-1].lstrip(".") for line in run(["dpkg-deb", "-c", str(deb)]).stdout
            .splitlines()}


def test_packages_hold_what_they_should(debs):
    server = contents(debs["litedist"])
    for path in ("/usr/bin/litedistd", "/usr/lib/litedist/plugins/storage-sqlite.so",
                 "/usr/lib/litedist/plugins/storage-lmdb.so",
                 "/usr/lib/litedist/plugins/auth-config.so",
                 "/usr/share/litedist/studio/index.html", "/usr/lib/systemd/system/litedistd.service",
                 "/etc/litedist/litedistd.json", "/usr/share/doc/litedist/LICENSE",
                 "/usr/share/doc/litedist/CHANGELOG.md", "/usr/share/doc/litedist/deploy.md",
                 "/usr/share/doc/litedist/copyright"):
        assert path in server, path
    assert not any(p.startswith("/usr/include") for p in server)
    dev = contents(debs["litedist-dev"])
    for path in ("/usr/include/litedist/plugin.h", "/usr/include/litedist/storage.h",
                 "/usr/include/litedist/auth.h", "/usr/lib/pkgconfig/litedist-plugin.pc",
                 "/usr/bin/litedist-conformance", "/usr/share/doc/litedist-dev/copyright"):
        assert path in dev, path

    fields = control(debs["litedist"])
    for lib in ("libevent-2.1-7", "libjansson4", "libsodium23", "libsqlite3-0", "liblmdb0",
                "libssl3", "libwslay1"):
        assert re.search(rf"\b{re.escape(lib)}\b", fields["Depends"]), fields["Depends"]
    assert control(debs["litedist-dev"])["Depends"].startswith("litedist (= ")
    info = run(["dpkg-deb", "-I", str(debs["litedist"])]).stdout
    for script in ("postinst", "prerm", "postrm", "conffiles"):
        assert re.search(rf"\b{script}\b", info), info
    conffiles = run(["dpkg-deb", "--info", str(debs["litedist"]), "conffiles"]).stdout
    assert conffiles.split() == ["/etc/litedist/litedistd.json"], conffiles


@pytest.fixture(scope="module")
def system_install(debs):
    """Both packages installed with dpkg; purged at the end, even when a test failed."""
    try:
        dpkg("-i", str(debs["litedist"]), str(debs["litedist-dev"]))
        files = {}
        for pkg in PACKAGES:
            files[pkg] = [Path(p) for p in run(["dpkg", "-L", pkg]).stdout.splitlines()]
        yield files
    finally:
        present = [p for p in PACKAGES if installed(p)]
        if present:
            dpkg("--purge", *present)


def test_installed_unit_verifies(system_install):
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is absent: the unit's fields are checked by "
                    "test_deploy.py::test_systemd_unit_fields")
    unit = "/usr/lib/systemd/system/litedistd.service"
    res = run(["systemd-analyze", "verify", unit], check=False)
    # verify exits 0 on unknown keys too: only silence means the unit is clean.
    assert res.returncode == 0 and res.stderr.strip() == "", res.stderr


def test_installed_server_runs_from_the_system_paths(system_install, tmp_path):
    for backend in ("sqlite", "lmdb"):
        d = Daemon(["/usr/bin/litedistd", "--config", "/etc/litedist/litedistd.json",
                    "--data", str(tmp_path / backend)], tmp_path / f"{backend}.log",
                   env={"LITEDIST_Storage__Plugin": backend})
        d.start()
        try:
            hdr = {"Database": "pkg", "ApiKey": "root", "Content-Type": "application/json"}
            status, text = http("POST", d.port, "/api/documents/orders",
                                {"Id": "o-1", "Total": 42}, hdr)
            assert status == 200, text
            status, text = http("GET", d.port, "/api/documents/orders/o-1", headers=hdr)
            assert status == 200 and '"Total":42' in text.replace(" ", ""), text
            status, text = http("GET", d.port, "/studio/")
            assert status == 200 and "<html" in text.lower()
        finally:
            code = d.stop()
        log = d.log()
        assert code == 0, log
        assert f"loading storage plugin '{backend}' from /usr/lib/litedist/plugins/" \
               f"storage-{backend}.so" in log, log
        assert "studio: serving" in log and "/usr/share/litedist/studio" in log, log
        assert list((tmp_path / backend / "databases").iterdir()), "the database's files"


def test_dev_package_builds_against_the_system_headers(system_install, tmp_path):
    cflags = run(["pkg-config", "--cflags", "litedist-plugin"]).stdout.split()
    includes = [Path(f[2:]).resolve() for f in cflags if f.startswith("-I")]
    assert includes in ([Path("/usr/include")], []), cflags  # pkg-config may drop /usr/include
    plugindir = run(["pkg-config", "--variable=plugindir", "litedist-plugin"]).stdout.strip()
    assert Path(plugindir).resolve() == Path("/usr/lib/litedist/plugins")
    out = tmp_path / "auth-tsv.so"
    run(["make", "-s", "-C", str(REPO / "examples" / "auth-tsv"), f"OUT={tmp_path}"])
    assert out.exists()
    res = run(["/usr/bin/litedistd", "--plugin-info", str(out)])
    assert "auth" in res.stdout, res.stdout


def test_purge_leaves_nothing(system_install):
    # The data a service under systemd would have made (DynamicUser's layout): purge deletes it.
    STATE[1].mkdir(parents=True)
    (STATE[1] / "node-id").write_text("node-0123456789ab\n")
    STATE[0].symlink_to("private/litedist")
    dpkg("--purge", *PACKAGES)
    for pkg in PACKAGES:
        assert not installed(pkg), pkg
    left = [p for files in system_install.values() for p in files
            if p.is_file() or p.is_symlink()]
    assert left == [], left
    for d in ("/etc/litedist", "/usr/lib/litedist", "/usr/share/litedist", "/usr/include/litedist",
              "/usr/share/doc/litedist", "/usr/share/doc/litedist-dev", *STATE):
        assert not (Path(d).exists() or Path(d).is_symlink()), d
