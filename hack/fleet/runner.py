"""Start, inspect and stop the local fleet.

State lives in <repo>/.fleet/ (git-ignored): one folder per cluster (PKI, kubeconfigs, audit
log, component logs) and state.json listing every process started, by PID.
"""
import base64
import json
import re
import os
import resource
import shutil
import signal
import ssl
import subprocess
import sys
import time
import urllib.request

import yaml

from . import agent_standin, build, nodes, pki, pods

FLEET_DIR = os.environ.get("MESHOPS_FLEET_DIR", os.path.join(build.REPO, ".fleet"))
STATE = os.path.join(FLEET_DIR, "state.json")
PORT_BASE = int(os.environ.get("MESHOPS_FLEET_PORT_BASE", "21000"))
NODES_PER_CLUSTER = 3
# the first REAL_NODES nodes of each cluster run Cilium's own agent (hack/fleet/nodes.py)
REAL_NODES = min(NODES_PER_CLUSTER, max(0, nodes.REAL_NODES))
# Each port base (one per fleet) gets its own addresses, so that two fleets can run real pods side
# by side: loopback 127.<k>.<cluster>.x and pod CIDRs 10.<16k + cluster>.0.0/16, k = 0 for 21000.
FLEET_NUMBER = ((PORT_BASE - 21000) // 1000) % 6
MAX_CLUSTERS = 15
AUTOMATION_USER = "meshops-automation"

AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
# The fleet's own machinery (simulated kubelets, load balancer, controllers) is not what tests
# measure: only requests made by users and automation are recorded.
- level: None
  users: ["fleet:kwok", "fleet:lb", "system:kube-controller-manager", "system:kube-scheduler",
          "system:apiserver"]
- level: None
  userGroups: ["system:serviceaccounts:kube-system", "system:nodes"]
- level: None
  nonResourceURLs: ["/healthz*", "/readyz*", "/livez*", "/version", "/openapi*"]
- level: Metadata
"""


def log(msg):
    print("[fleet] " + msg, flush=True)


def cluster_ports(i):
    base = PORT_BASE + 10 * i
    # kubelet: kwok's server (exec, logs) that kube-apiserver reaches as every node's kubelet
    return dict(apiserver=base, kcm=base + 1, scheduler=base + 2, kwok=base + 3, kubelet=base + 4)


def kwok_stages(net):
    """kwok's stages (stages.yaml) for a cluster: its pods run simulated except the agent pods on
    its real nodes, which the pod runtime runs."""
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "stages.yaml")) as f:
        stages = f.read()
    real = ["cilium@%s" % n["name"] for n in net["real_nodes"]] or ["none"]
    workloads = ["true@%s" % n["name"] for n in net["real_nodes"]] or ["none"]
    stages = stages.replace("WORKLOAD_EXPR", workload_expr()).replace("REAL_WORKLOAD_PODS", json.dumps(workloads))
    return stages.replace("REAL_AGENT_PODS", json.dumps(real)).rstrip("\n") + "\n"


def workload_expr():
    """kwok's (jq) key of a pod: "true@<node>" when all its containers run images of
    pods.WORKLOAD_IMAGES (what the pod runtime runs for real on a real node), else "false@<node>"."""
    images = "|".join(re.escape(i) for i in pods.WORKLOAD_IMAGES)
    return ('([(.spec.initContainers // [])[], (.spec.containers // [])[] | .image // "" | '
            'test("(^|/)(%s)([:@]|$)")] | all | tostring) + "@" + (.spec.nodeName // "")' % images)


def node_name(i, n):
    return "mesh-%d-node-%d" % (i, n + 1)


def cluster_network(i):
    """Distinct, realistic addressing per cluster (pod CIDR /16 split in /24 per node), distinct
    per fleet too (FLEET_NUMBER)."""
    if not 1 <= i <= MAX_CLUSTERS:
        raise ValueError("a fleet has 1 to %d clusters, not cluster %d" % (MAX_CLUSTERS, i))
    pod = 16 * FLEET_NUMBER + i
    return dict(
        pod_cidr="10.%d.0.0/16" % (pod,),
        service_cidr="10.%d.0.0/16" % (100 + i,),
        node_cidrs=["10.%d.%d.0/24" % (pod, n) for n in range(NODES_PER_CLUSTER)],
        # Simulated nodes' InternalIPs sit on loopback (127.<k>.<i>.<n>) so nothing the fleet or
        # the API server does can send traffic off this machine; real nodes' on the fleet's
        # underlay bridge (hack/fleet/nodes.py), which exists only inside the fleet's namespaces.
        node_ips=[nodes.underlay_ip(FLEET_NUMBER, i, n) if n < REAL_NODES else
                  "127.%d.%d.%d" % (FLEET_NUMBER, i, 11 + n) for n in range(NODES_PER_CLUSTER)],
        real_nodes=[{"name": node_name(i, n), "ip": nodes.underlay_ip(FLEET_NUMBER, i, n),
                     "pod_cidr": "10.%d.%d.0/24" % (pod, n)} for n in range(REAL_NODES)],
        lb_pool=["127.%d.%d.%d" % (FLEET_NUMBER, i, 200 + k) for k in range(50)],
        kubernetes_vip="127.%d.%d.1" % (FLEET_NUMBER, i),
    )


def _write(path, data, mode=0o600):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, mode)


def _kubeconfig(name, server, ca_pem, user):
    return {
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": name, "cluster": {
            "server": server,
            "certificate-authority-data": base64.b64encode(ca_pem).decode()}}],
        "users": [{"name": name, "user": user}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": name,
    }


def _pid_alive(pid, binary):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            argv0 = f.read().split(b"\0")[0].decode(errors="replace")
        with open("/proc/%d/stat" % pid) as f:
            if f.read().split(") ")[-1].startswith("Z"):
                return False
    except OSError:
        return False
    # Popen returns once the child's exec has begun, and the kernel sets up the new program's
    # arguments a moment later: until then /proc/<pid>/cmdline is empty. That is a process
    # starting, not a dead one (seen under load: a fresh `sleep 30` reported dead).
    return not argv0 or os.path.basename(argv0) == os.path.basename(binary)


def _rss_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


class Fleet(object):
    def __init__(self, state=None):
        self.state = state or {"clusters": [], "processes": []}

    # ------------------------------------------------------------------ state
    @classmethod
    def load(cls):
        if not os.path.exists(STATE):
            return None
        with open(STATE) as f:
            return cls(json.load(f))

    def save(self):
        os.makedirs(FLEET_DIR, exist_ok=True)
        tmp = STATE + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.state, f, indent=2)
        os.replace(tmp, STATE)

    # -------------------------------------------------------------- processes
    def spawn(self, name, argv, cluster=None, env=None, preexec_fn=None):
        logdir = os.path.join(FLEET_DIR, "logs")
        os.makedirs(logdir, exist_ok=True)
        logfile = os.path.join(logdir, name + ".log")
        with open(logfile, "ab") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True, cwd=build.REPO, env=env, preexec_fn=preexec_fn)
        entry = {"name": name, "pid": proc.pid, "argv": argv, "log": logfile, "cluster": cluster}
        self.state["processes"] = [p for p in self.state["processes"] if p["name"] != name]
        self.state["processes"].append(entry)
        self.save()
        return entry

    def process(self, name):
        for p in self.state["processes"]:
            if p["name"] == name:
                return p
        return None

    def check_processes(self):
        """Return the processes that died, with the tail of their logs.

        A process stopped on purpose (``stop-apiserver``) is not counted as dead.
        """
        dead = []
        for p in self.state["processes"]:
            if p.get("stopped"):
                continue
            if not _pid_alive(p["pid"], p["argv"][0]):
                dead.append(dict(p, tail=pods.log_tail(p["log"], 1500)))
        return dead

    def stalled_pod_runtime(self, max_age=120):
        """A report when the pod runtime is alive but has not finished a round (it rewrites
        pods.json every round, about every second) for ``max_age`` seconds: it is stuck, and every
        real pod with it. The report holds the stacks of its threads, which it writes to its log
        on SIGUSR1. None when it is running its rounds (or not running at all)."""
        entry = self.process("pod-runtime")
        if entry is None or entry.get("stopped") or not _pid_alive(entry["pid"], entry["argv"][0]):
            return None
        try:
            age = time.time() - os.stat(pods.pods_file(FLEET_DIR)).st_mtime
        except OSError:
            return None
        if age < max_age:
            return None
        os.kill(entry["pid"], signal.SIGUSR1)
        time.sleep(1)
        tail = pods.log_tail(entry["log"], 6000)
        return "the fleet's pod runtime (pid %d) has not finished a round for %.0f s; its log %s ends:\n%s" % (
            entry["pid"], age, entry["log"], tail)

    def stop_process(self, entry, timeout=10):
        pid = entry["pid"]
        if not _pid_alive(pid, entry["argv"][0]):
            return False
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return False
        deadline = time.time() + timeout
        while time.time() < deadline and _pid_alive(pid, entry["argv"][0]):
            time.sleep(0.1)
        if _pid_alive(pid, entry["argv"][0]):
            os.kill(pid, signal.SIGKILL)
        return True

    # ---------------------------------------------------------------- clusters
    def cluster(self, name):
        for c in self.state["clusters"]:
            if c["name"] == name:
                return c
        raise KeyError(name)


def _wait_ready(url, token, ca_file, what, timeout=120, fleet=None):
    ctx = ssl.create_default_context(cafile=ca_file)
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        req = urllib.request.Request(url, headers={"Authorization": "Bearer " + token})
        try:
            with urllib.request.urlopen(req, context=ctx, timeout=5) as r:
                if r.status == 200:
                    return
        except Exception as e:  # noqa: BLE001 - keep polling until the deadline
            last = e
        if fleet is not None:
            dead = fleet.check_processes()
            if dead:
                raise SystemExit(_crash_report(dead))
        time.sleep(0.5)
    raise SystemExit("%s did not become ready within %ds (last error: %s)" % (what, timeout, last))


def _crash_report(dead):
    lines = ["fleet component(s) exited unexpectedly:"]
    for p in dead:
        lines.append("  - %s (pid %d), log %s; last lines:\n%s" % (
            p["name"], p["pid"], p["log"], "\n".join("      " + l for l in p["tail"].splitlines()[-15:])))
    return "\n".join(lines)


def _prepare_cluster(i, ca_cert_ca_key=None):
    """Write PKI, tokens, kubeconfigs and configs for cluster i; return its state entry."""
    name = "mesh-%d" % i
    d = os.path.join(FLEET_DIR, name)
    ports = cluster_ports(i)
    net = cluster_network(i)
    server = "https://127.0.0.1:%d" % ports["apiserver"]
    ca_pem, ca_key_pem, ca, ca_key = pki.make_ca("%s-ca" % name)
    # real pods reach the API server as the `kubernetes` Service at 127.<k>.<i>.1 (hack/fleet/pods.py)
    srv_pem, srv_key = pki.issue(ca, ca_key, "kube-apiserver",
                                 server_names=["127.0.0.1", net["kubernetes_vip"],
                                               "localhost", "kubernetes",
                                               "kubernetes.default", "kubernetes.default.svc"])
    adm_pem, adm_key = pki.issue(ca, ca_key, "fleet-admin", org="system:masters", client=True)
    # kwok's server stands in for every node's kubelet; kube-apiserver dials it as "localhost"
    # (each node's InternalDNS address) and verifies it against the cluster CA.
    kubelet_pem, kubelet_key = pki.issue(ca, ca_key, "kwok-kubelet", server_names=["localhost", "127.0.0.1"])
    sa_key, sa_pub = pki.service_account_keypair()
    tokens = {u: base64.urlsafe_b64encode(os.urandom(24)).decode().rstrip("=")
              for u in ("admin", "fleet:kwok", "fleet:lb", "system:kube-controller-manager",
                        "system:kube-scheduler", AUTOMATION_USER)}
    groups = {"admin": "system:masters", "fleet:kwok": "system:masters", "fleet:lb": "system:masters",
              "system:kube-controller-manager": "", "system:kube-scheduler": "", AUTOMATION_USER: ""}
    files = {
        "ca.crt": ca_pem, "ca.key": ca_key_pem, "apiserver.crt": srv_pem, "apiserver.key": srv_key,
        "admin.crt": adm_pem, "admin.key": adm_key, "sa.key": sa_key, "sa.pub": sa_pub,
        "kubelet.crt": kubelet_pem, "kubelet.key": kubelet_key,
        "audit-policy.yaml": AUDIT_POLICY,
        "tokens.csv": "".join('%s,%s,%s,"%s"\n' % (tokens[u], u, u, groups[u]) for u in tokens),
    }
    for fname, data in files.items():
        _write(os.path.join(d, fname), data)
    for user in ("admin", "fleet:kwok", "fleet:lb", "system:kube-controller-manager",
                 "system:kube-scheduler", AUTOMATION_USER):
        kc = _kubeconfig(name, server, ca_pem, {"token": tokens[user]})
        _write(os.path.join(d, "kubeconfig-%s" % user.replace(":", "-")), yaml.safe_dump(kc))
    _write(os.path.join(d, "kubeconfig"), yaml.safe_dump(_kubeconfig(name, server, ca_pem, {"token": tokens["admin"]})))
    _write(os.path.join(d, "kubeconfig-cert"), yaml.safe_dump(_kubeconfig(name, server, ca_pem, {
        "client-certificate": os.path.join(d, "admin.crt"), "client-key": os.path.join(d, "admin.key")})))
    _write(os.path.join(d, "kwok-stages.yaml"), kwok_stages(net) + agent_standin.cluster_exec_yaml(name, STATE))
    return {
        "name": name, "index": i, "server": server, "dir": d, "ports": ports, "network": net,
        "ca_file": os.path.join(d, "ca.crt"), "kubeconfig": os.path.join(d, "kubeconfig"),
        "admin_token_file": os.path.join(d, "tokens.csv"),
        "audit_log": os.path.join(d, "audit.log"),
        "automation_kubeconfig": os.path.join(d, "kubeconfig-" + AUTOMATION_USER),
    }


def admin_token(cluster):
    with open(cluster["admin_token_file"]) as f:
        for line in f:
            tok, user = line.split(",")[:2]
            if user == "admin":
                return tok
    raise KeyError("admin token")


def _start_control_plane(fleet, c, bins, etcd_url):
    d, ports, net, name = c["dir"], c["ports"], c["network"], c["name"]
    j = lambda f: os.path.join(d, f)  # noqa: E731
    fleet.spawn(name + "-kube-apiserver", [
        bins["kube-apiserver"],
        "--etcd-servers=" + etcd_url, "--etcd-prefix=/" + name,
        "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
        "--secure-port=%d" % ports["apiserver"],
        "--tls-cert-file=" + j("apiserver.crt"), "--tls-private-key-file=" + j("apiserver.key"),
        "--client-ca-file=" + j("ca.crt"), "--token-auth-file=" + j("tokens.csv"),
        "--authorization-mode=RBAC",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        "--service-account-key-file=" + j("sa.pub"),
        "--service-account-signing-key-file=" + j("sa.key"),
        "--service-cluster-ip-range=" + net["service_cidr"],
        "--allow-privileged=true", "--endpoint-reconciler-type=none",
        # The node-lifecycle-controller is off (see kube-controller-manager below), so nothing would
        # lift the not-ready taint this admission plugin puts on every new Node: do not add it.
        "--disable-admission-plugins=TaintNodesByCondition",
        "--audit-policy-file=" + j("audit-policy.yaml"), "--audit-log-path=" + c["audit_log"],
        "--audit-log-maxsize=200", "--audit-log-format=json",
        # exec/logs go to kwok's server: nodes carry InternalDNS "localhost" and kwok's port as
        # their kubelet endpoint; its certificate is checked against the cluster CA.
        "--kubelet-preferred-address-types=InternalDNS,InternalIP",
        "--kubelet-certificate-authority=" + j("ca.crt"),
        "--profiling=false", "--v=1",
    ], cluster=name)


def _start_components(fleet, c, bins):
    d, ports, name = c["dir"], c["ports"], c["name"]
    j = lambda f: os.path.join(d, f)  # noqa: E731
    fleet.spawn(name + "-kube-controller-manager", [
        bins["kube-controller-manager"],
        "--kubeconfig=" + j("kubeconfig-system-kube-controller-manager"),
        "--authentication-skip-lookup=true",
        "--service-account-private-key-file=" + j("sa.key"), "--root-ca-file=" + j("ca.crt"),
        "--use-service-account-credentials=true", "--leader-elect=false",
        "--bind-address=127.0.0.1", "--secure-port=%d" % ports["kcm"],
        # No node-lifecycle-controller: while an API server is stopped (stop-apiserver) kwok cannot
        # renew node leases, and that controller would then mark every pod Ready=False for good
        # (kwok does not set it back), so a restarted cluster would never look ready again.
        "--controllers=*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller,-node-route-controller,"
        "-node-lifecycle-controller",
        "--profiling=false", "--v=1",
    ], cluster=name)
    fleet.spawn(name + "-kube-scheduler", [
        bins["kube-scheduler"], "--kubeconfig=" + j("kubeconfig-system-kube-scheduler"),
        "--authentication-kubeconfig=" + j("kubeconfig-system-kube-scheduler"),
        "--authorization-kubeconfig=" + j("kubeconfig-system-kube-scheduler"),
        "--leader-elect=false", "--bind-address=127.0.0.1", "--secure-port=%d" % ports["scheduler"],
        "--profiling=false", "--v=1",
    ], cluster=name)
    # kwok's server listens on loopback only: its exec runs the requested command on this host
    # (the ClusterExec in kwok-stages.yaml), with the agent stand-ins first on PATH.
    # kwok's Exec objects: the pod runtime names each real pod in one (hack/fleet/pods.py)
    # and Logs objects (`kubectl logs` of a real pod reads its containers' output)
    apply_manifests(c, bins, [build.kwok_crd_file("execs"), build.kwok_crd_file("logs")], "kwok's Exec and Logs CRDs")
    shims = agent_standin.bin_dir(FLEET_DIR)
    argv = [
        bins["kwok"], "--kubeconfig=" + j("kubeconfig-fleet-kwok"), "--config=" + j("kwok-stages.yaml"),
        "--manage-all-nodes=true", "--node-lease-duration-seconds=40", "--enable-crds=Exec,Logs",
        "--server-address=127.0.0.1:%d" % ports["kubelet"],
        "--tls-cert-file=" + j("kubelet.crt"), "--tls-private-key-file=" + j("kubelet.key"),
    ]
    env = dict(os.environ, PATH=shims + os.pathsep + os.environ.get("PATH", ""))
    try:
        fleet.spawn(name + "-kwok", argv, cluster=name, env=env, preexec_fn=_shims_at_image_paths(shims))
    except subprocess.SubprocessError as e:
        # what names the binaries by PATH (our modules) still works; an exec of the image's
        # absolute path (cilium-cli's `clustermesh status`) cannot
        log("%s: kwok's exec sees the shims on PATH only, not at /usr/bin (overlay mount refused: %s)" % (name, e))
        fleet.spawn(name + "-kwok", argv, cluster=name, env=env)


def _shims_at_image_paths(shims):
    """For kwok's process: a private mount namespace in which /usr/bin also holds the fleet's
    shims (a read-only overlay of ``shims`` on /usr/bin; the host's /usr/bin is untouched). An
    exec by the image's absolute path, as cilium-cli runs `/usr/bin/clustermesh-apiserver
    kvstoremesh-dbg status` in the kvstoremesh container, then enters the real container as an
    exec by name does. Runs in the child between fork and exec: only system calls."""
    import ctypes  # noqa: PLC0415
    clone_newns, ms_rdonly, ms_rec, ms_private = 0x20000, 1, 16384, 1 << 18
    options = ("lowerdir=%s:/usr/bin" % shims.replace("\\", "\\\\").replace(":", "\\:").replace(",", "\\,")).encode()
    libc = ctypes.CDLL(None, use_errno=True)

    def setup():
        # unshare(2) through libc: os.unshare needs Python 3.12
        if libc.unshare(clone_newns) != 0 or libc.mount(b"none", b"/", None, ms_rec | ms_private, None) != 0 or \
                libc.mount(b"meshops-fleet-shims", b"/usr/bin", b"overlay", ms_rdonly, options) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, os.strerror(errno))
    return setup


def _create_nodes(c):
    """Create the fake nodes with their pod CIDRs and InternalIPs, as a kubelet would."""
    from kubernetes import client, config  # noqa: PLC0415 - keep module import light

    api = client.CoreV1Api(config.new_client_from_config(config_file=c["kubeconfig"]))
    net = c["network"]
    for n in range(NODES_PER_CLUSTER):
        name = node_name(c["index"], n)
        body = {
            "apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {
                "kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64", "type": "kwok",
                # where Cilium's agent runs for real (hack/fleet/nodes.py)
                "meshops.io/datapath": "real" if n < REAL_NODES else "simulated",
                "topology.kubernetes.io/zone": "%s-zone-%d" % (c["name"], n % 3 + 1)},
                "annotations": {"kwok.x-k8s.io/node": "fake"}},
            "spec": {"podCIDR": net["node_cidrs"][n], "podCIDRs": [net["node_cidrs"][n]]},
        }
        try:
            api.create_node(body)
        except client.ApiException as e:
            if e.status != 409:
                raise
        api.patch_node_status(name, {"status": {
            "addresses": [
                {"type": "InternalIP", "address": net["node_ips"][n]},
                {"type": "Hostname", "address": name},
                # how kube-apiserver reaches this node's "kubelet" (kwok's server) for exec
                {"type": "InternalDNS", "address": "localhost"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": c["ports"]["kubelet"]}}}})
    return api


def _wait_nodes_ready(api, c, fleet, timeout=90):
    deadline = time.time() + timeout
    while time.time() < deadline:
        nodes = api.list_node().items
        ready = [n for n in nodes if any(cd.type == "Ready" and cd.status == "True"
                                         for cd in (n.status.conditions or []))]
        if len(ready) >= NODES_PER_CLUSTER:
            return
        dead = fleet.check_processes()
        if dead:
            raise SystemExit(_crash_report(dead))
        time.sleep(0.5)
    raise SystemExit("%s: nodes not Ready after %ds (is kwok running? see .fleet/logs/%s-kwok.log)"
                     % (c["name"], timeout, c["name"]))


def write_merged_kubeconfig(fleet):
    merged = {"apiVersion": "v1", "kind": "Config", "preferences": {},
              "clusters": [], "users": [], "contexts": []}
    for c in fleet.state["clusters"]:
        with open(c["kubeconfig"]) as f:
            kc = yaml.safe_load(f)
        merged["clusters"] += kc["clusters"]
        merged["users"] += kc["users"]
        merged["contexts"] += kc["contexts"]
    merged["current-context"] = fleet.state["clusters"][0]["name"]
    path = os.path.join(FLEET_DIR, "kubeconfig")
    _write(path, yaml.safe_dump(merged))
    return path


def _link_tools(bins):
    bindir = os.path.join(FLEET_DIR, "bin")
    os.makedirs(bindir, exist_ok=True)
    for tool in ("kubectl", "helm", "helm4"):
        link = os.path.join(bindir, tool)
        if os.path.lexists(link):
            os.unlink(link)
        os.symlink(bins[tool], link)
    return bindir


# Host limits a fleet of real control planes and real pods needs (kind documents the same ones):
# every kube-apiserver, controller and Cilium program holds inotify instances (certificate and
# config watchers), and the default of 128 per user is shared with everything else running as
# root on the machine; once it runs out, programs fail to start with "too many open files".
HOST_SYSCTLS = (("fs/inotify/max_user_instances", 8192), ("fs/inotify/max_user_watches", 524288))


def raise_host_limits():
    """Raise the inotify limits (when lower) and this process's open-file limit to its hard limit,
    which every fleet process inherits. Logs what it changed; a limit it cannot raise is logged."""
    for name, want in HOST_SYSCTLS:
        path = "/proc/sys/" + name
        try:
            with open(path) as f:
                have = int(f.read().split()[0])
            if have < want:
                with open(path, "w") as f:
                    f.write(str(want))
                log("raised %s from %d to %d" % (name.replace("/", "."), have, want))
        except (OSError, ValueError) as e:
            log("cannot raise %s to %d: %s" % (name.replace("/", "."), want, e))
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        log("raised the open-file limit from %d to %d" % (soft, hard))


def up(clusters):
    started = time.time()
    raise_host_limits()
    existing = Fleet.load()
    if existing is not None:
        alive = [p for p in existing.state["processes"] if _pid_alive(p["pid"], p["argv"][0])]
        if alive and len(existing.state["clusters"]) == clusters and not existing.check_processes():
            log("fleet of %d clusters already running (make fleet-down to stop it)" % clusters)
            return existing
        log("stopping the previous fleet first")
        down()
    build.build_all()
    bins = build.binaries()
    ipsec = None
    if REAL_NODES:
        nodes.ensure_host_packages(log)
        ok, why = nodes.ipsec_support()
        ipsec = {"available": ok, "why": why}
        log("IPsec datapath on the real nodes: %s" % (
            "available (%s)" % why if ok else "NOT available, so IPsec is tested as keys and configuration only: " + why))
    if os.path.exists(FLEET_DIR):
        shutil.rmtree(FLEET_DIR)
    os.makedirs(FLEET_DIR)
    fleet = Fleet()
    fleet.state["started"] = time.time()
    fleet.state["binaries"] = bins
    fleet.state["charts_dir"] = build.charts_dir()
    fleet.state["chart_versions"] = list(build.chart_versions())
    fleet.state["kubernetes_version"] = build.kubernetes_version()
    fleet.state["cilium_dir"] = build.cilium_dir()
    fleet.state["cilium_version"] = build.cilium_version()
    fleet.state["ipsec_datapath"] = ipsec

    etcd_port = PORT_BASE
    etcd_url = "http://127.0.0.1:%d" % etcd_port
    log("starting etcd on 127.0.0.1:%d (one etcd, a key prefix per cluster)" % etcd_port)
    fleet.spawn("etcd", [
        bins["etcd"], "--name=fleet", "--data-dir=" + os.path.join(FLEET_DIR, "etcd"),
        "--listen-client-urls=" + etcd_url, "--advertise-client-urls=" + etcd_url,
        "--listen-peer-urls=http://127.0.0.1:%d" % (etcd_port + 1),
        "--initial-advertise-peer-urls=http://127.0.0.1:%d" % (etcd_port + 1),
        "--initial-cluster=fleet=http://127.0.0.1:%d" % (etcd_port + 1),
        "--listen-metrics-urls=http://127.0.0.1:%d" % (etcd_port + 2),
        "--unsafe-no-fsync=true", "--quota-backend-bytes=4294967296", "--log-level=warn",
    ])
    agent_standin.write_shims(FLEET_DIR, sys.executable)
    for i in range(1, clusters + 1):
        c = _prepare_cluster(i)
        fleet.state["clusters"].append(c)
        _start_control_plane(fleet, c, bins, etcd_url)
    fleet.save()
    for c in fleet.state["clusters"]:
        log("%s: waiting for kube-apiserver %s/readyz" % (c["name"], c["server"]))
        _wait_ready(c["server"] + "/readyz", admin_token(c), c["ca_file"], c["name"] + " kube-apiserver",
                    fleet=fleet)
        _start_components(fleet, c, bins)
    for c in fleet.state["clusters"]:
        api = _create_nodes(c)
        _wait_nodes_ready(api, c, fleet)
        log("%s: %d nodes Ready, pod CIDR %s, node IPs %s" % (
            c["name"], NODES_PER_CLUSTER, c["network"]["pod_cidr"], ", ".join(c["network"]["node_ips"])))
    fleet.spawn("lb-controller", [sys.executable, "-m", "hack.fleet", "lb-controller"])
    # the lb controller runs from the repository root
    fleet.save()
    for c in fleet.state["clusters"]:
        apply_cilium_crds(c, bins)
    # the clustermesh-apiserver pods run for real (hack/fleet/pods.py)
    fleet.spawn("pod-runtime", [sys.executable, "-m", "hack.fleet", "pod-runtime"])
    fleet.save()
    time.sleep(2)
    dead = fleet.check_processes()
    if dead:
        raise SystemExit(_crash_report(dead))
    path = write_merged_kubeconfig(fleet)
    bindir = _link_tools(bins)
    fleet.state["kubeconfig"] = path
    fleet.state["bin_dir"] = bindir
    fleet.state["ready_seconds"] = round(time.time() - started, 1)
    fleet.save()
    log("fleet of %d clusters up in %.0fs (Kubernetes %s)" % (clusters, time.time() - started,
                                                            fleet.state["kubernetes_version"]))
    print("export KUBECONFIG=%s PATH=%s:$PATH" % (path, bindir), flush=True)
    return fleet


def apply_manifests(c, bins, files, what):
    started = time.time()
    argv = [bins["kubectl"], "--kubeconfig", c["kubeconfig"], "apply", "--server-side", "--force-conflicts"]
    for f in files:
        argv += ["-f", f]
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    if proc.returncode != 0:
        raise SystemExit("%s: applying %s failed:\n%s" % (c["name"], what, proc.stdout[-3000:]))
    log("%s: applied %s in %.1fs" % (c["name"], what, time.time() - started))


def apply_cilium_crds(c, bins):
    """Cilium's real CRDs (v2, v2alpha1) from the cilium build, as the operator would install them."""
    files = build.cilium_crd_files()
    apply_manifests(c, bins, files, "Cilium's %d CRDs" % len(files))


def down():
    fleet = Fleet.load()
    if fleet is None:
        log("no fleet state in %s: nothing to stop" % FLEET_DIR)
        pods.stop_leftovers(FLEET_DIR)
        return
    dead = fleet.check_processes()
    for p in dead:
        log("note: %s (pid %d) had already exited; see %s" % (p["name"], p["pid"], p["log"]))
    runtime = fleet.process("pod-runtime")
    if runtime is not None:
        # the runtime stops its real pods itself; give it time for a graceful stop
        fleet.stop_process(runtime, timeout=30)
    killed, namespaces = pods.stop_leftovers(FLEET_DIR)
    if killed or namespaces:
        log("removed what the pod runtime left: %d processes, %d network namespaces" % (killed, namespaces))
    # controllers first, then API servers, etcd last
    order = sorted(fleet.state["processes"], key=lambda p: (p["name"] == "etcd", "apiserver" in p["name"]))
    stopped = 0
    for p in order:
        if fleet.stop_process(p):
            stopped += 1
    log("stopped %d processes" % stopped)
    shutil.rmtree(FLEET_DIR, ignore_errors=True)
    log("removed %s" % FLEET_DIR)
    return dead


def _etcd_url(fleet):
    etcd = fleet.process("etcd")
    for arg in etcd["argv"]:
        if arg.startswith("--listen-client-urls="):
            return arg.split("=", 1)[1]
    raise KeyError("etcd client URL")


def stop_apiserver(name, sig=signal.SIGKILL):
    """Make cluster ``name``'s API server fail: kill its kube-apiserver (SIGKILL by default, a
    crash; SIGTERM for a graceful stop). Its other components keep running and retrying, as
    they would against a real failed control plane. The process stays in state.json marked
    ``stopped`` so ``status`` shows it and the fleet is not reported as crashed."""
    fleet = Fleet.load()
    if fleet is None:
        raise SystemExit("no fleet running")
    fleet.cluster(name)  # KeyError for an unknown cluster
    entry = fleet.process(name + "-kube-apiserver")
    pid, binary = entry["pid"], entry["argv"][0]
    if _pid_alive(pid, binary):
        os.kill(pid, sig)
        deadline = time.time() + 15
        while time.time() < deadline and _pid_alive(pid, binary):
            time.sleep(0.05)
        if _pid_alive(pid, binary):
            os.kill(pid, signal.SIGKILL)
    entry["stopped"] = True
    fleet.save()
    log("%s: kube-apiserver (pid %d) stopped" % (name, pid))
    return entry


def start_apiserver(name, timeout=120):
    """Start cluster ``name``'s kube-apiserver again (same flags, same etcd prefix) and wait
    until it is ready. A running API server is left alone."""
    fleet = Fleet.load()
    if fleet is None:
        raise SystemExit("no fleet running")
    c = fleet.cluster(name)
    entry = fleet.process(name + "-kube-apiserver")
    if entry is not None and not entry.get("stopped") and _pid_alive(entry["pid"], entry["argv"][0]):
        log("%s: kube-apiserver already running (pid %d)" % (name, entry["pid"]))
        return entry
    started = time.time()
    _start_control_plane(fleet, c, fleet.state["binaries"], _etcd_url(fleet))
    _wait_ready(c["server"] + "/readyz", admin_token(c), c["ca_file"], name + " kube-apiserver",
                timeout=timeout, fleet=fleet)
    entry = fleet.process(name + "-kube-apiserver")
    log("%s: kube-apiserver (pid %d) ready in %.1fs" % (name, entry["pid"], time.time() - started))
    restart_controllers(fleet, name)
    return entry


# The components a real control plane restarts after an API server outage.
RESTARTED_AFTER_OUTAGE = ("kube-controller-manager", "kube-scheduler")


def restart_controllers(fleet, name):
    """Restart cluster ``name``'s controller-manager and scheduler, as a real control plane does
    after its API server was down: they run with leader election there, lose their lease once the
    API server is gone longer than the renew deadline (10 s), exit, and their kubelet starts them
    again. The fleet runs one of each without leader election, so nothing restarts them, and
    after a long outage the controller-manager can stay wedged although connected again (measured
    once: after 90 s down, a new Deployment got no ReplicaSet for over a minute and a deleted one
    kept its pods, until the controller-manager was restarted). kwok (the kubelets) reconnects by
    itself."""
    for component in RESTARTED_AFTER_OUTAGE:
        entry = fleet.process("%s-%s" % (name, component))
        if entry is None:
            continue
        fleet.stop_process(entry)
        fresh = fleet.spawn(entry["name"], entry["argv"], cluster=entry.get("cluster"))
        log("%s: %s restarted after the outage (pid %d)" % (name, component, fresh["pid"]))


def status():
    fleet = Fleet.load()
    if fleet is None:
        log("no fleet running")
        return 1
    dead = {p["name"] for p in fleet.check_processes()}
    total = 0
    for c in fleet.state["clusters"]:
        procs = [p for p in fleet.state["processes"] if p.get("cluster") == c["name"]]
        rss = sum(_rss_kib(p["pid"]) for p in procs)
        total += rss
        states = ", ".join("%s:%s" % (p["name"].split(c["name"] + "-")[-1],
                                      "stopped" if p.get("stopped") else "DEAD" if p["name"] in dead else "up")
                           for p in procs)
        print("%-8s %s  rss=%.0f MiB  [%s]" % (c["name"], c["server"], rss / 1024.0, states))
    for key, pod in sorted(pods.load_pods(FLEET_DIR).items()):
        ctrs = pod.get("containers") or {}
        rss = sum(_rss_kib(c["pid"]) for c in ctrs.values() if c.get("pid"))
        total += rss
        print("%-8s real pod %s ip=%s %s%s rss=%.0f MiB  [%s]" % (
            pod["cluster"], pod["name"], pod["ip"], pod["phase"], " Ready" if pod["ready"] else " NOT ready",
            rss / 1024.0, ", ".join("%s:%s%s" % (n, "up" if c.get("pid") else "done" if c.get("init") else "DOWN",
                                                 "(restarts %d)" % c["restarts"] if c.get("restarts") else "")
                                    for n, c in ctrs.items())))
        for n, c in ctrs.items():
            if c.get("restarts") and c.get("last_exit"):
                print("    %s last exit %s:\n%s" % (n, c["last_exit"].get("exitCode"), "\n".join(
                    "      " + ln for ln in (c["last_exit"].get("message") or "").splitlines()[-8:])))
    etcd = fleet.process("etcd")
    lbc = fleet.process("lb-controller")
    runtime = fleet.process("pod-runtime")
    shared = sum(_rss_kib(p["pid"]) for p in (etcd, lbc, runtime) if p)
    print("shared   etcd+lb-controller+pod-runtime rss=%.0f MiB; clusters total %.0f MiB (%.0f MiB per cluster)" % (
        shared / 1024.0, total / 1024.0, total / 1024.0 / max(1, len(fleet.state["clusters"]))))
    ipsec = fleet.state.get("ipsec_datapath")
    if ipsec:
        print("ipsec    datapath %s" % ("available" if ipsec["available"] else "NOT available: " + ipsec["why"]))
    stalled = fleet.stalled_pod_runtime()
    if stalled:
        print("STALLED: " + stalled)
    if dead:
        print("DEAD: " + ", ".join(sorted(dead)))
    return 1 if dead or stalled else 0
