"""The deployment files without their runtimes (issue 16 items 4 and 5): the systemd unit's
fields, parsed and through `systemd-analyze verify`/`security` where it exists; the example
config loaded by the real litedistd; the container entrypoint's *_FILE handling run as a script
(with a stub litedistd that prints what it got, and with the real one); the Dockerfile, the
Compose file and the Kubernetes manifests parsed and checked against each other, and the
Compose and StatefulSet environments run as real three-node clusters on loopback."""

import json
import os
import re
import shutil
import stat
import subprocess
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from deploykit import DEPLOY, REPO, Daemon, free_port, http

UNIT = DEPLOY / "systemd" / "litedistd.service"
EXAMPLE_CONFIG = DEPLOY / "config" / "litedistd.json"
ENTRYPOINT = DEPLOY / "docker" / "entrypoint.sh"
DOCKERFILE = REPO / "Dockerfile"
K8S = DEPLOY / "kubernetes"


def parse_unit(text):
    """{section: {key: [values]}}: systemd keys may repeat (SystemCallFilter)."""
    sections, cur = {}, None
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            cur = sections.setdefault(line.strip("[]"), {})
            continue
        key, value = line.split("=", 1)
        cur.setdefault(key.strip(), []).append(value.strip())
    return sections


def one(section, key):
    values = section.get(key)
    assert values and len(values) == 1, f"{key}: {values}"
    return values[0]


# ------------------------------------------------------------------------------------------------
# systemd
# ------------------------------------------------------------------------------------------------

def test_systemd_unit_fields():
    unit = parse_unit(UNIT.read_text())
    svc = unit["Service"]
    assert one(svc, "Type") == "notify"
    assert one(svc, "ExecReload") == "/bin/kill -HUP $MAINPID"  # SIGHUP reloads (operations.md)
    assert one(svc, "WatchdogSec") == "30s"
    exec_start = one(svc, "ExecStart").split()
    assert exec_start == ["/usr/bin/litedistd", "--config", "/etc/litedist/litedistd.json"]
    # Where the package puts them (packaging/cpack.cmake: /usr prefix, /etc/litedist).
    cpack = (REPO / "packaging" / "cpack.cmake").read_text()
    assert "CPACK_PACKAGING_INSTALL_PREFIX /usr)" in cpack
    assert re.search(r"deploy/config/litedistd\.json DESTINATION /etc/litedist\b", cpack)
    assert one(svc, "DynamicUser") == "yes"
    state = one(svc, "StateDirectory")
    assert json.loads(EXAMPLE_CONFIG.read_text())["Node"]["DataDirectory"] == f"/var/lib/{state}"
    assert one(svc, "WorkingDirectory") == f"/var/lib/{state}"
    # Node.MaxConnections' default (1024) + the 256 litedistd wants besides.
    assert int(one(svc, "LimitNOFILE")) >= 1024 + 256
    expected = {"ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
                "PrivateDevices": "yes", "NoNewPrivileges": "yes", "RestrictSUIDSGID": "yes",
                "CapabilityBoundingSet": "", "ProtectKernelTunables": "yes",
                "MemoryDenyWriteExecute": "yes", "UMask": "0077", "KillSignal": "SIGTERM",
                "Restart": "on-failure"}
    for key, value in expected.items():
        assert one(svc, key) == value, key
    assert set(one(svc, "RestrictAddressFamilies").split()) == {"AF_INET", "AF_INET6", "AF_UNIX"}
    assert svc["SystemCallFilter"] == ["@system-service", "~@privileged"]
    assert one(unit["Install"], "WantedBy") == "multi-user.target"


def analyzable_unit(build_dir, tmp_path):
    """The unit with ExecStart on the build's litedistd: verify checks that the binary exists,
    and the package test verifies the installed unit as it is."""
    text = UNIT.read_text().replace("/usr/bin/litedistd", str(build_dir / "bin" / "litedistd"))
    path = tmp_path / "litedistd.service"
    path.write_text(text)
    return path


def test_systemd_analyze_verify_and_security(build_dir, tmp_path):
    if not shutil.which("systemd-analyze"):
        pytest.skip("systemd-analyze is absent: test_systemd_unit_fields checked the fields")
    unit = analyzable_unit(build_dir, tmp_path)
    res = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True,
                         text=True, timeout=60)
    # verify exits 0 on unknown keys too: only silence means the unit is clean.
    assert res.returncode == 0 and res.stderr.strip() == "", res.stderr
    # An unknown key is noticed, so the silence above means something.
    bad = tmp_path / "bad" / "litedistd.service"
    bad.parent.mkdir()
    bad.write_text(unit.read_text().replace("PrivateTmp=yes", "PrivateTmp=yes\nProtectTypo=yes"))
    res = subprocess.run(["systemd-analyze", "verify", str(bad)], capture_output=True,
                         text=True, timeout=60)
    assert "Unknown key" in res.stderr and "ProtectTypo" in res.stderr, res.stderr
    # Exposure 0-10 (lower is better; "OK" up to 2.0 is systemd's own first band).
    res = subprocess.run(["systemd-analyze", "security", "--offline=yes", str(unit)],
                         capture_output=True, text=True, timeout=60)
    m = re.search(r"Overall exposure level for litedistd\.service: (\d+\.\d+)", res.stdout)
    assert m and float(m.group(1)) <= 2.0, res.stdout[-600:] + res.stderr


def test_example_config_starts_a_node(build_dir, tmp_path):
    """/etc/litedist/litedistd.json as shipped: the real litedistd loads it with no warning
    about its keys, and refuses nothing (the default keys are allowed on loopback only)."""
    d = Daemon([str(build_dir / "bin" / "litedistd"), "--config", str(EXAMPLE_CONFIG),
                "--data", str(tmp_path / "data")], tmp_path / "node.log")
    d.start()
    try:
        assert http("GET", d.port, "/node")[0] == 200
    finally:
        assert d.stop() == 0, d.log()
    log = d.log()
    assert "unknown" not in log.lower(), log
    assert "ERROR" not in log, log


# ------------------------------------------------------------------------------------------------
# The container entrypoint
# ------------------------------------------------------------------------------------------------

STUB = textwrap.dedent("""\
    #!/usr/bin/python3
    # Test stand-in for litedistd: prints its arguments and LITEDIST_ environment as JSON.
    import json, os, sys
    print(json.dumps({"argv": sys.argv[1:],
                      "env": {k: v for k, v in os.environ.items()
                              if k.startswith(("LITEDIST_", "OTHER_"))}}))
    """)


@pytest.fixture
def entry(tmp_path):
    """Runs the entrypoint with a stub litedistd first on PATH; returns (code, out, err)."""
    bindir = tmp_path / "stub-bin"
    bindir.mkdir()
    stub = bindir / "litedistd"
    stub.write_text(STUB)
    stub.chmod(stub.stat().st_mode | stat.S_IXUSR)

    def run(env, *args):
        base = {"PATH": f"{bindir}:/usr/bin:/bin"}
        res = subprocess.run([str(ENTRYPOINT), *args], capture_output=True, text=True,
                             env={**base, **env}, timeout=30)
        got = json.loads(res.stdout) if res.returncode == 0 and res.stdout.startswith("{") \
            else None
        return res.returncode, got, res.stderr

    return run


def secret(tmp_path, name, content):
    p = tmp_path / name
    p.write_text(content)
    return str(p)


def test_shell_scripts_pass_shellcheck():
    """The entrypoint (bash) and the maintainer scripts (sh, as dpkg runs them)."""
    if not shutil.which("shellcheck"):
        pytest.fail("shellcheck is missing (scripts/deps.sh --test installs it)")
    scripts = [ENTRYPOINT, *sorted((REPO / "packaging" / "debian").glob("post*")),
               *sorted((REPO / "packaging" / "debian").glob("pre*"))]
    assert len(scripts) == 4, scripts
    res = subprocess.run(["shellcheck", *map(str, scripts)], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr


def test_entrypoint_reads_file_secrets(entry, tmp_path):
    code, got, err = entry({
        "LITEDIST_Auth__RootApiKey_FILE": secret(tmp_path, "root", "s3cret root\n"),
        "LITEDIST_Node__ReplicationApiKey_FILE": secret(tmp_path, "repl", 'q"uo\\te $x\n\n'),
        "LITEDIST_Node__Port": "17001",
        "OTHER_FILE": "/nonexistent",  # not litedist's: left alone
    })
    assert code == 0, err
    assert got["argv"] == []  # no command: litedistd, without arguments
    assert got["env"] == {"LITEDIST_Auth__RootApiKey": "s3cret root",
                          "LITEDIST_Node__ReplicationApiKey": 'q"uo\\te $x',
                          "LITEDIST_Node__Port": "17001",
                          "OTHER_FILE": "/nonexistent"}


def test_entrypoint_multi_line_json_from_a_file(entry, tmp_path):
    peers = [{"NodeId": "a", "BaseUrl": "http://a:1446"}, {"NodeId": "b", "BaseUrl": "http://b:1"}]
    text = json.dumps(peers, indent=2) + "\n"
    code, got, err = entry({"LITEDIST_Node__SeedPeers_FILE": secret(tmp_path, "peers", text)})
    assert code == 0, err
    assert json.loads(got["env"]["LITEDIST_Node__SeedPeers"]) == peers


@pytest.mark.parametrize("case", ["both", "missing", "directory", "empty"])
def test_entrypoint_refuses_bad_file_secrets(entry, tmp_path, case):
    env = {"LITEDIST_Auth__RootApiKey_FILE": secret(tmp_path, "root", "k\n")}
    if case == "both":
        env["LITEDIST_Auth__RootApiKey"] = "inline"
        expected = ("both LITEDIST_Auth__RootApiKey and LITEDIST_Auth__RootApiKey_FILE are set: "
                    "set one")
    elif case == "missing":
        env["LITEDIST_Auth__RootApiKey_FILE"] = str(tmp_path / "nope")
        expected = f"LITEDIST_Auth__RootApiKey_FILE: cannot read {tmp_path / 'nope'}"
    elif case == "directory":
        env["LITEDIST_Auth__RootApiKey_FILE"] = str(tmp_path)
        expected = f"LITEDIST_Auth__RootApiKey_FILE: cannot read {tmp_path}"
    else:
        env["LITEDIST_Auth__RootApiKey_FILE"] = secret(tmp_path, "empty", "\n")
        expected = f"LITEDIST_Auth__RootApiKey_FILE: {tmp_path / 'empty'} is empty"
    code, got, err = entry(env)
    assert code == 1 and got is None, (code, got, err)
    assert err.strip() == f"litedist-entrypoint: {expected}", err


def test_entrypoint_commands(entry, tmp_path):
    code, got, err = entry({}, "--port", "1447", "--data", "/x")
    assert code == 0 and got["argv"] == ["--port", "1447", "--data", "/x"], (got, err)
    code, got, err = entry({}, "litedistd", "keygen")
    assert code == 0 and got["argv"] == ["keygen"], (got, err)
    res = subprocess.run([str(ENTRYPOINT), "sh", "-c", "echo other $LITEDIST_Node__Port"],
                         capture_output=True, text=True, timeout=30,
                         env={"PATH": "/usr/bin:/bin", "LITEDIST_Node__Port_FILE":
                              secret(tmp_path, "port", "1500\n")})
    assert res.returncode == 0 and res.stdout == "other 1500\n", res


def test_entrypoint_with_the_real_litedistd(build_dir, tmp_path):
    """The keys from files reach the real config loader: the file's root key works, the
    public default no longer does, and no default-key warning is logged."""
    env = {"PATH": f"{build_dir / 'bin'}:/usr/bin:/bin",
           "LITEDIST_Auth__RootApiKey_FILE": secret(tmp_path, "root", "file-root-key\n"),
           "LITEDIST_Node__ReplicationApiKey_FILE": secret(tmp_path, "repl", "file-repl-key\n"),
           "LITEDIST_Node__ListenAddress": "127.0.0.1",
           "LITEDIST_Node__DataDirectory": str(tmp_path / "data")}
    d = Daemon([str(ENTRYPOINT)], tmp_path / "node.log", env=env)
    d.start()
    try:
        hdr = {"Database": "ep", "Content-Type": "application/json"}
        status, text = http("POST", d.port, "/api/documents/c", {"Id": "a"},
                            {**hdr, "ApiKey": "file-root-key"})
        assert status == 200, text
        status, _ = http("GET", d.port, "/api/documents/c/a", headers={**hdr, "ApiKey": "root"})
        assert status == 401
    finally:
        assert d.stop() == 0, d.log()
    assert "public" not in d.log(), d.log()


# ------------------------------------------------------------------------------------------------
# Dockerfile, Compose, Kubernetes
# ------------------------------------------------------------------------------------------------

def dockerfile_instructions():
    """[(INSTRUCTION, arguments)] with continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def linked_debian_packages(build_dir):
    """The Debian packages of the shared libraries litedistd and the bundled plugins link
    directly (their NEEDED entries): apt brings what those depend on."""
    files = [build_dir / "bin" / "litedistd",
             *sorted((build_dir / "bin" / "plugins").glob("*.so"))]
    libs = set()
    for f in files:
        dyn = subprocess.run(["readelf", "-d", str(f)], capture_output=True, text=True,
                             timeout=30).stdout
        needed = set(re.findall(r"\(NEEDED\).*\[(\S+)\]", dyn))
        out = subprocess.run(["ldd", str(f)], capture_output=True, text=True, timeout=30).stdout
        libs |= {path for name, path in re.findall(r"^\s*(\S+) => (/\S+)", out, re.M)
                 if name in needed}
    # One dpkg -S for all (it reads every file list once); merged /usr: a library dpkg knows
    # under /lib is asked for by both names.
    paths = {os.path.realpath(lib) for lib in libs}
    asked = paths | {re.sub(r"^/usr", "", p) for p in paths}
    res = subprocess.run(["dpkg", "-S", *sorted(asked)], capture_output=True, text=True,
                         timeout=60)
    owners = {}
    for line in res.stdout.splitlines():
        pkg, _, path = line.partition(": ")
        owners[path] = pkg.split(":")[0]
    pkgs = set()
    for p in paths:
        owner = owners.get(p) or owners.get(re.sub(r"^/usr", "", p))
        assert owner, f"no Debian package owns {p}: {res.stderr}"
        pkgs.add(owner)
    return pkgs


def test_dockerfile(build_dir):
    ins = dockerfile_instructions()
    froms = [a for i, a in ins if i == "FROM"]
    assert len(froms) == 2 and froms[0].startswith("debian:12 AS ")
    assert froms[1] == "debian:12-slim"
    runtime = ins[[i for i, _ in ins].index("FROM", 1):]
    user = [a for i, a in runtime if i == "USER"]
    assert user and not user[-1].split(":")[0] in ("0", "root"), user
    health = " ".join(a for i, a in runtime if i == "HEALTHCHECK")
    assert re.search(r"CMD curl .*http://127\.0\.0\.1:\$\{LITEDIST_Node__Port\}/readyz", health)
    assert [a for i, a in runtime if i == "ENTRYPOINT"] == \
        ['["/usr/local/bin/litedist-entrypoint"]']
    copy = [a for i, a in runtime if i == "COPY" and "entrypoint" in a]
    assert copy and (REPO / copy[0].split()[0]).resolve() == ENTRYPOINT.resolve()
    env = " ".join(a for i, a in runtime if i == "ENV")
    assert "LITEDIST_Node__ListenAddress=0.0.0.0" in env and "LITEDIST_Node__Port=1446" in env
    # The runtime stage installs every library the binaries link (libc6 is in the base image).
    apt = " ".join(a for i, a in runtime if i == "RUN" and "apt-get install" in a)
    needed = linked_debian_packages(build_dir) - {"libc6", "libgcc-s1"}
    # An LD_SANITIZE build also links the sanitizer runtimes (and through them libstdc++),
    # which the image's Release build does not.
    if {"libasan8", "libubsan1"} & needed:
        needed -= {"libasan8", "libubsan1", "libstdc++6"}
    missing = {p for p in needed if not re.search(rf"(?<![\w.-]){re.escape(p)}(?![\w.-])", apt)}
    assert not missing, f"runtime stage lacks {missing}"
    assert os.access(ENTRYPOINT, os.X_OK)


def peers_of(value):
    return {p["NodeId"]: p["BaseUrl"] for p in json.loads(value)}


def test_compose_three_nodes_seeded_with_each_other():
    doc = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = doc["services"]
    assert sorted(services) == ["node-1", "node-2", "node-3"]
    host_ports = set()
    for name, svc in services.items():
        env = svc["environment"]
        assert env["LITEDIST_Node__NodeId"] == name
        assert env["LITEDIST_Node__AdvertisedUrl"] == f"http://{name}:1446"
        peers = peers_of(env["LITEDIST_Node__SeedPeers"])
        assert peers == {n: f"http://{n}:1446" for n in services}
        for key in ("LITEDIST_Auth__RootApiKey_FILE", "LITEDIST_Node__ReplicationApiKey_FILE"):
            secret_name = Path(env[key]).name
            assert env[key] == f"/run/secrets/{secret_name}" and secret_name in svc["secrets"]
            assert doc["secrets"][secret_name]["file"].startswith("./secrets/")
        assert not any(k.endswith(("ApiKey", "ApiKeyHash")) for k in env), "keys inline"
        (volume,) = svc["volumes"]
        assert volume == f"{name}-data:/var/lib/litedist" and f"{name}-data" in doc["volumes"]
        (port,) = svc["ports"]
        assert port.startswith("127.0.0.1:") and port.endswith(":1446")
        host_ports.add(port)
        assert svc["build"]["context"] == ".." and (DEPLOY / ".." / "Dockerfile").exists()
    assert len(host_ports) == 3
    ignore = (REPO / ".gitignore").read_text().split()
    assert "/deploy/secrets/" in ignore


def k8s_docs():
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    docs = []
    for name in kustomization["resources"]:
        docs += [d for d in yaml.safe_load_all((K8S / name).read_text()) if d]
    assert sorted(p.name for p in K8S.glob("*.yaml")) == \
        sorted(kustomization["resources"] + ["kustomization.yaml"])
    return {(d["kind"], d["metadata"]["name"]): d for d in docs}


def test_kustomize_renders_the_manifests():
    """kubectl's own kustomize reads the kustomization and every manifest (offline; checking
    them against a cluster's schemas needs an API server, which these machines lack)."""
    if not shutil.which("kubectl"):
        pytest.skip("kubectl is absent (not in Debian 12): test_kubernetes_manifests parsed "
                    "the manifests with python3-yaml")
    res = subprocess.run(["kubectl", "kustomize", str(K8S)], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0, res.stderr
    rendered = {(d["kind"], d["metadata"]["name"]) for d in yaml.safe_load_all(res.stdout) if d}
    assert rendered == set(k8s_docs())


def test_kubernetes_manifests():
    docs = k8s_docs()
    sts = docs[("StatefulSet", "litedist")]["spec"]
    headless = docs[("Service", sts["serviceName"])]["spec"]
    assert headless["clusterIP"] == "None" and headless["publishNotReadyAddresses"] is True
    labels = sts["template"]["metadata"]["labels"]
    assert sts["selector"]["matchLabels"].items() <= labels.items()
    for kind, name in (("Service", "litedist"), ("Service", "litedist-client")):
        assert docs[(kind, name)]["spec"]["selector"].items() <= labels.items()
    pdb = docs[("PodDisruptionBudget", "litedist")]["spec"]
    assert pdb["selector"]["matchLabels"].items() <= labels.items() and pdb["maxUnavailable"] == 1

    pod = sts["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    (c,) = pod["containers"]
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    env = {e["name"]: e for e in c["env"]}
    names = [e["name"] for e in c["env"]]
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    # $(VAR) expands only variables defined earlier in the list.
    assert names.index("POD_NAME") < names.index("LITEDIST_Node__NodeId")
    assert env["LITEDIST_Node__NodeId"]["value"] == "$(POD_NAME)"
    port = int(env["LITEDIST_Node__Port"]["value"])
    (cport,) = c["ports"]
    assert cport["containerPort"] == port and cport["name"] == "http"
    svc = sts["serviceName"]
    assert env["LITEDIST_Node__AdvertisedUrl"]["value"] == f"http://$(POD_NAME).{svc}:{port}"
    pods = [f"litedist-{i}" for i in range(sts["replicas"])]
    assert peers_of(env["LITEDIST_Node__SeedPeers"]["value"]) == \
        {p: f"http://{p}.{svc}:{port}" for p in pods}

    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert c["livenessProbe"]["httpGet"] == {"path": "/livez", "port": "http"}

    mounts = {m["name"]: m for m in c["volumeMounts"]}
    (claim,) = sts["volumeClaimTemplates"]
    assert mounts[claim["metadata"]["name"]]["mountPath"] == \
        env["LITEDIST_Node__DataDirectory"]["value"]
    assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    keys = volumes["keys"]["secret"]
    mount = mounts["keys"]["mountPath"]
    files = {f"{mount}/{item['path']}" for item in keys["items"]}
    for name in ("LITEDIST_Auth__RootApiKey_FILE", "LITEDIST_Node__ReplicationApiKey_FILE"):
        assert env[name]["value"] in files, name
    assert keys["secretName"] == "litedist-keys"
    assert not any(n.endswith(("ApiKey", "ApiKeyHash")) for n in env), "keys inline"
    # Group-readable for fsGroup: the pod's user is not the files' owner.
    assert keys["defaultMode"] == 0o440 and pod["securityContext"]["fsGroup"] == \
        pod["securityContext"]["runAsGroup"]


# ------------------------------------------------------------------------------------------------
# The Compose and Kubernetes environments on the real litedistd
# ------------------------------------------------------------------------------------------------

def expand_k8s(env_list):
    """The container environment Kubernetes makes: $(VAR) expands variables defined earlier in
    the list (fieldRef values given here by the caller), anything else stays as written."""
    out = {}
    for e in env_list:
        value = e["value"]
        out[e["name"]] = re.sub(r"\$\((\w+)\)", lambda m: out.get(m.group(1), m.group(0)), value)
    return out


def loopback_cluster(envs, hosts, secrets, build_dir, tmp_path):
    """Starts one node per environment through the real entrypoint and litedistd, on loopback:
    each host:1446 in a URL becomes 127.0.0.1 and that node's free port, each secret path a
    temporary file, the listen address loopback. Returns the Daemons, started."""
    ports = {h: free_port() for h in hosts}
    files = {}
    for path, content in secrets.items():
        f = tmp_path / "secrets" / Path(path).name
        f.parent.mkdir(exist_ok=True)
        f.write_text(content + "\n")
        files[path] = str(f)

    def local(value):
        for h, port in ports.items():
            value = value.replace(f"http://{h}:1446", f"http://127.0.0.1:{port}")
        return files.get(value, value)

    nodes = []
    for host, env in zip(hosts, envs):
        env = {k: local(v) for k, v in env.items()}
        assert env.pop("LITEDIST_Node__ListenAddress", "0.0.0.0") == "0.0.0.0"
        env.update({"PATH": f"{build_dir / 'bin'}:/usr/bin:/bin",
                    "LITEDIST_Node__ListenAddress": "127.0.0.1",
                    "LITEDIST_Node__DataDirectory": str(tmp_path / host)})
        env.pop("LITEDIST_Node__Port", None)
        nodes.append(Daemon([str(ENTRYPOINT)], tmp_path / f"{host}.log", env=env,
                            port=ports[host]))
    try:
        for n in nodes:
            n.start()
    except BaseException:
        for n in nodes:
            n.stop()
        raise
    return nodes


def check_cluster(nodes, ids, root_key, cluster_key, db):
    """Each node is the node it should be, has the others as its node-wide peers (from
    SeedPeers, own id skipped), and a document written on the first is readable on every
    other within 30 s."""
    for n, node_id in zip(nodes, ids):
        status, text = http("GET", n.port, "/node")
        assert status == 200 and json.loads(text)["NodeId"] == node_id, text
        status, text = http("GET", n.port, "/api/cluster/peers",
                            headers={"ReplicationApiKey": cluster_key})
        assert status == 200, text
        peers = {p["NodeId"]: p["BaseUrl"] for p in json.loads(text)}
        assert peers == {i: f"http://127.0.0.1:{m.port}" for i, m in zip(ids, nodes)
                         if i != node_id}, peers
    hdr = {"Database": db, "ApiKey": root_key, "Content-Type": "application/json"}
    status, text = http("POST", nodes[0].port, "/api/documents/c", {"Id": "d1", "V": 1}, hdr)
    assert status == 200, text
    deadline = time.monotonic() + 30
    missing = list(nodes[1:])
    while missing and time.monotonic() < deadline:
        missing = [n for n in missing
                   if http("GET", n.port, "/api/documents/c/d1", headers=hdr)[0] != 200]
        if missing:
            time.sleep(0.2)
    assert not missing, [n.log()[-2000:] for n in missing]


def test_compose_environment_forms_a_cluster(build_dir, tmp_path):
    doc = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    hosts = sorted(doc["services"])
    envs = [{k: str(v) for k, v in doc["services"][h]["environment"].items()} for h in hosts]
    # What the image's ENV sets under the compose file's environment.
    image_env = dict(re.findall(r"(LITEDIST_\w+)=(\S+)", " ".join(
        a for i, a in dockerfile_instructions() if i == "ENV")))
    envs = [{**image_env, **e} for e in envs]
    secrets = {"/run/secrets/root_api_key": "compose-root",
               "/run/secrets/replication_api_key": "compose-cluster"}
    nodes = loopback_cluster(envs, hosts, secrets, build_dir, tmp_path)
    try:
        check_cluster(nodes, hosts, "compose-root", "compose-cluster", "compose")
    finally:
        codes = [n.stop() for n in nodes]
    assert codes == [0, 0, 0], [n.log()[-2000:] for n in nodes]


def test_statefulset_environment_forms_a_cluster(build_dir, tmp_path):
    sts = k8s_docs()[("StatefulSet", "litedist")]["spec"]
    (c,) = sts["template"]["spec"]["containers"]
    pods = [f"litedist-{i}" for i in range(sts["replicas"])]
    envs = []
    for pod in pods:
        env_list = [{"name": "POD_NAME", "value": pod} if e["name"] == "POD_NAME" else e
                    for e in c["env"]]
        envs.append(expand_k8s(env_list))
    assert [e["LITEDIST_Node__NodeId"] for e in envs] == pods
    hosts = [f"{pod}.{sts['serviceName']}" for pod in pods]
    mount = next(m["mountPath"] for m in c["volumeMounts"] if m["name"] == "keys")
    secrets = {f"{mount}/root-api-key": "k8s-root", f"{mount}/replication-api-key": "k8s-cluster"}
    nodes = loopback_cluster(envs, hosts, secrets, build_dir, tmp_path)
    try:
        check_cluster(nodes, pods, "k8s-root", "k8s-cluster", "kube")
    finally:
        codes = [n.stop() for n in nodes]
    assert codes == [0, 0, 0], [n.log()[-2000:] for n in nodes]
