"""Fixtures for tests against the local fleet of real Kubernetes API servers.

The fleet is started once per test session (python -m hack.fleet up) unless one is already
running: `make test` starts it first so its progress is visible, and MESHOPS_FLEET_DIR can
point at another fleet's state folder.
"""
import base64
import concurrent.futures
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)

from hack.fleet import runner  # noqa: E402

MUTATING = {"create", "update", "patch", "delete", "deletecollection"}
NS = "kube-system"
WANTED_CLUSTERS = int(os.environ.get("MESHOPS_FLEET_CLUSTERS", "3"))


class Cluster(object):
    def __init__(self, fleet, data):
        self.fleet = fleet
        self.data = data
        self.name = data["name"]
        self.kubeconfig = data["kubeconfig"]
        self.server = data["server"]
        self.network = data["network"]

    def core(self):
        from kubernetes import client, config

        return client.CoreV1Api(config.new_client_from_config(config_file=self.kubeconfig))

    def apps(self):
        from kubernetes import client, config

        return client.AppsV1Api(config.new_client_from_config(config_file=self.kubeconfig))

    def run(self, tool, *args, check=True, timeout=300):
        argv = [self.fleet.binaries[tool], "--kubeconfig", self.kubeconfig] + list(args)
        proc = subprocess.run(argv, check=False, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError("%s %s failed (%d):\n%s\n%s" % (tool, " ".join(args), proc.returncode,
                                                                 proc.stdout, proc.stderr))
        return proc

    def kubectl(self, *args, **kw):
        return self.run("kubectl", *args, **kw)

    def helm(self, *args, **kw):
        return self.run("helm", *args, **kw)

    # audit log: requests made by users and automation (the fleet's machinery is not logged)
    def audit_events(self):
        events = []
        try:
            with open(self.data["audit_log"]) as f:
                for line in f:
                    try:
                        events.append(json.loads(line))
                    except ValueError:
                        pass
        except FileNotFoundError:
            pass
        return events

    def audit_mark(self):
        return len(self.audit_events())

    def mutations_since(self, mark):
        """Requests that change API objects. An exec into a pod (``create`` on ``pods/exec``, what
        clustermesh_status does to read agent status) changes none: see ``execs_since``."""
        return [e for e in self.audit_events()[mark:]
                if e.get("verb") in MUTATING and e.get("stage") == "ResponseComplete"
                and (e.get("objectRef") or {}).get("subresource") != "exec"]

    def execs_since(self, mark):
        """``(pod, container)`` of every exec since ``mark``, as the audit log records it."""
        out = []
        for e in self.audit_events()[mark:]:
            ref = e.get("objectRef") or {}
            if ref.get("subresource") == "exec" and e.get("stage") == "ResponseComplete":
                query = e.get("requestURI", "").split("?", 1)[-1]
                container = [q.split("=", 1)[1] for q in query.split("&") if q.startswith("container=")]
                out.append((ref.get("name"), container[0] if container else None))
        return out


class FleetHandle(object):
    def __init__(self, state):
        self.state = state
        self.binaries = state["binaries"]
        self.kubeconfig = state["kubeconfig"]
        self.clusters = [Cluster(self, c) for c in state["clusters"]]
        self.charts_dir = state["charts_dir"]
        self.chart_versions = state["chart_versions"]

    def chart(self, version):
        return os.path.join(self.charts_dir, "cilium-%s.tgz" % version)

    def check_alive(self):
        # state.json, not the state read at start: a test may have restarted an API server
        # (runner.stop_apiserver / start_apiserver), which gets a new PID.
        current = runner.Fleet.load() or runner.Fleet(self.state)
        dead = current.check_processes()
        assert not dead, runner._crash_report(dead)
        stalled = current.stalled_pod_runtime()
        assert not stalled, stalled


def _healthy_fleet():
    fleet = runner.Fleet.load()
    if fleet is None or fleet.check_processes() or len(fleet.state["clusters"]) < WANTED_CLUSTERS:
        return None
    if "kubeconfig" not in fleet.state:
        return None
    return fleet


@pytest.fixture(scope="session")
def fleet():
    started_here = False
    f = _healthy_fleet()
    if f is None:
        subprocess.run([sys.executable, "-m", "hack.fleet", "up", "--clusters", str(WANTED_CLUSTERS)],
                       cwd=REPO, check=True)
        started_here = True
        f = _healthy_fleet()
        assert f is not None, "the fleet did not come up"
    handle = FleetHandle(f.state)
    yield handle
    handle.check_alive()
    if started_here and not os.environ.get("MESHOPS_KEEP_FLEET"):
        subprocess.run([sys.executable, "-m", "hack.fleet", "down"], cwd=REPO, check=False)


def uninstall_cilium(clusters, namespace="kube-system"):
    """Every cluster of ``clusters`` without the Cilium release and without a CA (in parallel)."""
    def one(c):
        c.helm("uninstall", "cilium", "-n", namespace, "--wait", "--timeout", "2m", check=False)
        c.kubectl("-n", namespace, "delete", "secret", "cilium-ca", "--ignore-not-found", check=False)
    clusters = list(clusters)
    if clusters:
        with concurrent.futures.ThreadPoolExecutor(len(clusters)) as pool:
            list(pool.map(one, clusters))


def marks(clusters):
    """{cluster: its audit log's position now}, for ``writes``."""
    return {c.name: c.audit_mark() for c in clusters}


def writes(clusters, mark):
    """{cluster: [(verb, resource, name)]} of the requests that changed API objects since ``mark``."""
    return {c.name: [(e["verb"], (e.get("objectRef") or {}).get("resource"), (e.get("objectRef") or {}).get("name"))
                     for e in c.mutations_since(mark[c.name])] for c in clusters}


def listed(c):
    """Names of the peers cluster ``c``'s release lists (empty when none or no release)."""
    proc = c.helm("get", "values", "cilium", "-n", NS, "-o", "json", check=False)
    if proc.returncode != 0:
        return set()
    clusters = ((json.loads(proc.stdout or "{}") or {}).get("clustermesh") or {}).get("config", {}).get("clusters")
    if isinstance(clusters, dict):
        return set(clusters)
    return {e["name"] for e in clusters or []}


def release_values(c, release="cilium"):
    """The user-supplied values of ``c``'s Cilium release (helm get values)."""
    return json.loads(c.helm("get", "values", release, "-n", NS, "-o", "json").stdout)


def revision(c, release="cilium"):
    """The newest revision of ``c``'s Cilium release (failed ones included)."""
    return max(r["revision"] for r in json.loads(c.helm("history", release, "-n", NS, "-o", "json").stdout))


def release_records(c, release="cilium"):
    """{revision: decoded release record} of ``c``'s release, read from its Secrets (the format
    Helm 3 and Helm 4 share)."""
    out = {}
    for s in c.core().list_namespaced_secret(NS, label_selector="owner=helm,name=%s" % release).items:
        raw = base64.b64decode(base64.b64decode(s.data["release"]))
        out[int(s.metadata.labels["version"])] = json.loads(gzip.decompress(raw))
    return out


def release_writers(c, mark, release="cilium"):
    """{user agent} of the requests that created or updated ``c``'s release records since ``mark``:
    helm sends its own version (``Helm/3.20.2``, ``Helm/4.3.2``), so this says which helm wrote them."""
    return {e.get("userAgent") for e in c.audit_events()[mark:]
            if e.get("stage") == "ResponseComplete" and e.get("verb") in ("create", "update")
            and (e.get("objectRef") or {}).get("resource") == "secrets"
            and ((e.get("objectRef") or {}).get("name") or "").startswith("sh.helm.release.v1.%s.v" % release)}


def helm_operations(c, name="cilium-config"):
    """{operation} of the managedFields entries of manager ``helm`` on ConfigMap ``name``: ``Update``
    when helm applied it client-side (Helm 3), ``Apply`` server-side (Helm 4's installs)."""
    cm = c.core().read_namespaced_config_map(name, NS)
    return {m.operation for m in cm.metadata.managed_fields or [] if m.manager == "helm"}


def mesh_secret_peers(c):
    """Names of the peers whose endpoints cluster ``c``'s Secret cilium-clustermesh holds."""
    try:
        data = c.core().read_namespaced_secret("cilium-clustermesh", NS).data or {}
    except Exception:  # noqa: BLE001 - no Secret (not installed, not connected)
        return set()
    return {k for k, v in data.items() if b"endpoints:" in base64.b64decode(v)}


def meshed(clusters):
    """True when each of ``clusters`` lists every other as its peer, in its release and in its
    cilium-clustermesh Secret: a converged mesh a test may reuse instead of converging again."""
    clusters = list(clusters)
    names = {c.name for c in clusters}
    return all(listed(c) == names - {c.name} and mesh_secret_peers(c) == names - {c.name} for c in clusters)


def asymmetric(clusters):
    """Pairs (a, b) where a lists b but b does not list a (only among ``clusters``)."""
    names = {c.name for c in clusters}
    lists = {c.name: listed(c) & names for c in clusters}
    return sorted((a, b) for a in lists for b in lists[a] if a not in lists[b])


def wait_for(predicate, timeout, what, interval=0.5):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError("timed out after %ss waiting for %s (last: %r)" % (timeout, what, last))


@pytest.fixture(scope="session")
def collections_path(tmp_path_factory):
    """A collections tree holding this checkout as ansible_collections/meshops/cilium."""
    root = tmp_path_factory.mktemp("collections")
    ns = root / "ansible_collections" / "meshops"
    ns.mkdir(parents=True)
    (ns / "cilium").symlink_to(REPO)
    return str(root)


def ansible_env(fleet, collections_path):
    """Environment for ansible and ansible-playbook from this venv, with the collection and the
    fleet's helm on the search paths and plain, parseable output."""
    env = dict(os.environ)
    env.update({
        "ANSIBLE_COLLECTIONS_PATH": collections_path,
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_RETRY_FILES_ENABLED": "0",
        "ANSIBLE_HOST_KEY_CHECKING": "0",
        "ANSIBLE_CALLBACK_RESULT_FORMAT": "json",
        "MESHOPS_FLEET_DIR": os.path.dirname(fleet.kubeconfig),
        "ANSIBLE_LOCALHOST_WARNING": "False",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "False",
        "PYTHONUNBUFFERED": "1",
        "PATH": os.pathsep.join([os.path.dirname(sys.executable), os.path.dirname(fleet.binaries["helm"]),
                                 env.get("PATH", "")]),
    })
    return env


def run_ansible(tool, args, env, timeout=1500, bin_dir=None):
    """Run ``ansible`` or ``ansible-playbook`` of this venv (or of the venv whose ``bin`` is
    ``bin_dir``, e.g. the oldest ansible-core's); stdout and stderr merged."""
    argv = [os.path.join(bin_dir or os.path.dirname(sys.executable), tool)] + [str(a) for a in args]
    return subprocess.run(argv, check=False, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, timeout=timeout)


def write_inventory(path, hosts, group_vars=None, name=None, cluster_ids=True, kubeconfig=None):
    """An inventory like inventories/local, under ``path``; returns its folder.

    ``hosts``: host names, or {host: host vars}; every host gets the number in its name as
    cilium_cluster_id unless ``cluster_ids`` is false or its vars set one. ``group_vars``: the
    variables of group mesh. ``name``: the folder's name (default ``inv-<hosts>``).
    ``kubeconfig``: the hosts come from the contexts of this file (or these files) through the
    inventory plugin meshops.cilium.kubeconfig (as in inventories/local-kubeconfig), the IDs from
    its compose; no host vars then."""
    hosts = dict(hosts) if isinstance(hosts, dict) else {h: {} for h in hosts}
    inv = path / (name or "inv-" + "-".join(hosts))
    (inv / "group_vars").mkdir(parents=True, exist_ok=True)
    shutil.copy(os.path.join(REPO, "inventories/local/group_vars/all.yml"), str(inv / "group_vars/all.yml"))
    if kubeconfig:
        assert not any(hosts.values()), "host vars cannot go through the kubeconfig inventory plugin"
        plugin = {"plugin": "meshops.cilium.kubeconfig", "kubeconfig": [kubeconfig] if isinstance(kubeconfig, str) else list(kubeconfig),
                  "include": list(hosts),
                  "group": "mesh", "strict": True,
                  "compose": {"cilium_cluster_id": "inventory_hostname | regex_search('[0-9]+$') | int"}
                  if cluster_ids else {}}
        (inv / "meshops.kubeconfig.yml").write_text(json.dumps(plugin))
    else:
        body = {h: dict({"cilium_cluster_id": int(h.split("-")[-1])} if cluster_ids else {}, **(v or {}))
                for h, v in hosts.items()}
        (inv / "hosts.yml").write_text(json.dumps({"mesh": {"hosts": body}}))
    # the real traffic check of inventories/local runs in the tests that ask for it (test_realmesh_traffic.py,
    # test_rbac.py) and in `make demo`, not in every converge of the suite
    (inv / "group_vars/mesh.yml").write_text(json.dumps(dict({"verify_traffic": False}, **(group_vars or {}))))
    return str(inv)


class Playbook(object):
    """Runs playbooks (of playbooks/, or a path) on fleet clusters with this venv's ansible-playbook:
    ``playbook("site.yml", ["mesh-1", ...])`` writes an inventory of those hosts first;
    ``run``/``execute``/``command`` take an inventory made with ``write_inventory``."""

    def __init__(self, fleet, collections_path, tmp_path):
        self.env = ansible_env(fleet, collections_path)
        self.tmp_path = tmp_path

    def __call__(self, playbook, hosts, *args, expect_rc=0, extra_vars=None, bin_dir=None):
        inv = write_inventory(self.tmp_path, hosts, extra_vars)
        return self.run(inv, playbook, *args, expect_rc=expect_rc, bin_dir=bin_dir)

    @staticmethod
    def command(inventory, playbook, *args, bin_dir=None):
        """argv of ansible-playbook (unbuffered output is in ``env``: for a run read as it goes)."""
        return [os.path.join(bin_dir or os.path.dirname(sys.executable), "ansible-playbook"), "-i", inventory,
                os.path.join(REPO, "playbooks", playbook)] + [str(a) for a in args]

    def execute(self, inventory, playbook, *args, bin_dir=None, timeout=1500):
        """The finished run (stdout and stderr merged), whatever its exit code."""
        argv = self.command(inventory, playbook, *args, bin_dir=bin_dir)
        return subprocess.run(argv, check=False, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              universal_newlines=True, timeout=timeout)

    def run(self, inventory, playbook, *args, expect_rc=0, bin_dir=None):
        """The output; fails unless the exit code is ``expect_rc`` (None: any)."""
        proc = self.execute(inventory, playbook, *args, bin_dir=bin_dir)
        if expect_rc is not None and proc.returncode != expect_rc:
            raise AssertionError("%s exited %d (expected %d):\n%s" % (playbook, proc.returncode, expect_rc,
                                                                      proc.stdout[-8000:]))
        return proc.stdout

    @staticmethod
    def outcomes(out, task):
        """{host: "ok" | "changed" | "skipping" | "failed" | ...} of the task whose name ends with ``task``
        (its last run in ``out``)."""
        found = {}
        for block in re.split(r"^TASK \[", out, flags=re.M)[1:]:
            parts = block.partition("\n")
            title, body = parts[0], parts[2]
            if title.split("]")[0].endswith(task):
                found = dict((m.group(2), m.group(1)) for m in re.finditer(r"^(\w+): \[([\w-]+)\]", body, re.M))
        return found

    @staticmethod
    def recap(out):
        """{host: {"ok": n, "changed": n, ...}} from the PLAY RECAP."""
        return {m.group(1): {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2))}
                for m in re.finditer(r"^(mesh-\d+)\s+:\s+(.*)$", out, re.M)}


@pytest.fixture
def playbook(fleet, collections_path, tmp_path):
    return Playbook(fleet, collections_path, tmp_path)


class ModuleRunner(object):
    """Runs one module of the collection ad hoc (``ansible localhost -m``) against a fleet cluster
    and returns its result dict, plus ``_rc`` and ``_output``."""

    def __init__(self, fleet, collections_path):
        self.fleet = fleet
        self.env = ansible_env(fleet, collections_path)

    def __call__(self, module, cluster, check=False, diff=False, env=None, **args):
        """``cluster``: the fleet cluster whose admin kubeconfig is used, unless ``args`` name the
        connection themselves (``cluster=None``); ``env``: extra environment for the run."""
        if cluster is not None:
            args = dict(args, kubeconfig=cluster.kubeconfig)
        argv = ["localhost", "-o", "-m", "meshops.cilium." + module, "-a", json.dumps(args)]
        argv += ["--check"] if check else []
        argv += ["--diff"] if diff else []
        proc = run_ansible("ansible", argv, dict(self.env, **(env or {})), timeout=600)
        # one-line output: "localhost | SUCCESS|CHANGED|FAILED! => {json}"
        line = [ln for ln in proc.stdout.splitlines() if ln.startswith("localhost | ") and " => " in ln]
        assert line, "no result from %s:\n%s" % (module, proc.stdout)
        result = json.loads(line[0].split(" => ", 1)[1])
        result["_rc"] = proc.returncode
        result["_output"] = proc.stdout
        return result


@pytest.fixture(scope="module")
def run_module(fleet, collections_path):
    return ModuleRunner(fleet, collections_path)


@pytest.fixture(autouse=True)
def fleet_alive(request):
    """Before and after every test that uses the fleet: every fleet process is alive and the pod
    runtime is not stuck. A dead or stuck component (the pod runtime, an API server) fails the test
    that finds it at once, with its log tail, instead of making each later test wait out its
    timeouts."""
    if "fleet" not in request.fixturenames:
        yield
        return
    handle = request.getfixturevalue("fleet")
    handle.check_alive()
    yield
    handle.check_alive()


_FILE_SECONDS = {}
_CONFIG = None


def pytest_runtest_logreport(report):
    """Sum setup, call and teardown time per test file, for the summary below; and print why a
    test failed as soon as it fails (the last lines of its report), so that a log cut short by a
    time limit still says what went wrong."""
    path = report.nodeid.split("::", 1)[0]
    _FILE_SECONDS[path] = _FILE_SECONDS.get(path, 0.0) + report.duration
    reporter = _CONFIG and _CONFIG.pluginmanager.get_plugin("terminalreporter")
    if report.failed and reporter:
        reporter.write_line("")
        reporter.write_line("[%s failed in %s after %.0f s; the end of its report:]" % (
            report.nodeid, report.when, report.duration))
        for line in str(report.longrepr).splitlines()[-25:]:
            reporter.write_line("    " + line)
        # and the state of the fleet then: its processes, real pods, their restarts and last exits.
        # An error here is printed, never raised: inside a pytest hook it would end the whole run.
        try:
            status = subprocess.run([sys.executable, "-m", "hack.fleet", "status"], cwd=REPO, check=False,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
                                    timeout=60).stdout
        except (OSError, subprocess.SubprocessError) as e:
            status = "hack.fleet status could not run: %s" % e
        reporter.write_line("[the fleet after that failure (hack.fleet status):]")
        for line in status.splitlines()[-40:]:
            reporter.write_line("    " + line)


def pytest_configure(config):
    global _CONFIG
    _CONFIG = config


def pytest_terminal_summary(terminalreporter):
    """Print the time of each test file (CI prints it: where the suite spends its time)."""
    if not _FILE_SECONDS:
        return
    terminalreporter.section("time per test file")
    for path, seconds in sorted(_FILE_SECONDS.items(), key=lambda kv: -kv[1]):
        terminalreporter.write_line("%7.1fs  %s" % (seconds, path))
    terminalreporter.write_line("%7.1fs  total" % sum(_FILE_SECONDS.values()))
