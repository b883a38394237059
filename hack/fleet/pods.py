"""Real pods on the fleet: the pods of each cluster's `clustermesh-apiserver` Deployment run
Cilium's own programs as host processes, the way a kubelet and a container runtime would run
them; so do, on the fleet's real nodes (hack/fleet/nodes.py), the pods of Cilium's agent
DaemonSet and workloads of the images in WORKLOAD_IMAGES (agnhost, busybox), whose networks
the real cilium-cni makes. Every other pod stays simulated by kwok (see hack/fleet/README.md).

One `pod-runtime` process per fleet (started by `up`, stopped by `down`) does, every second (and
at once when one of its containers exits, so that the next init container starts without delay, as
a kubelet's pod lifecycle events make it) and for every cluster:

* pods: for each pod labelled `k8s-app=clustermesh-apiserver` in kube-system that the scheduler
  bound to a (kwok) node, it creates
  - a network namespace of its own (`ip netns`, named `meshops-<fleet tag>-<pod hash>`) whose
    only links are `lo` (127.0.0.1 only) and one end of a veth pair, with a pod IP from its
    node's pod CIDR (.200+ in the node's /24). The host end carries `route_localnet` so that
    the pod reaches the host's loopback addresses (the fleet's node IPs 127.k.N.11-13, LB IPs
    127.k.N.200+; k is the fleet's number, from its port base) by ordinary routing: a peer dialled at a wrong port is refused by the kernel,
    as it would be on a real network;
  - per container, a private mount namespace and root directory (`rootfs/<container>`): the
    image's files (`/usr/bin/clustermesh-apiserver` = our Cilium build, `/usr/bin/etcd` = our
    pinned etcd, `/var/lib/cilium/etcd-config.yaml` from Cilium's module), the pod's volumes
    bind-mounted at the containers' mountPaths, and an /etc/hosts made from the pod's
    hostAliases, as a kubelet writes it;
  - the processes: init containers in order, to completion (`etcd-init` runs
    `clustermesh-apiserver etcdinit`), then the containers, each with the command, args and env
    of the pod spec the real chart rendered (`$(VAR)` expanded, valueFrom resolved), restarted
    with back-off when they exit (restartPolicy Always), their output in
    .fleet/logs/<cluster>-<pod>-<container>.log.
* volumes: Secret, ConfigMap and projected volumes (including the ServiceAccount token from the
  TokenRequest API) are rewritten when their objects change, all files of a volume at once
  (``..data`` symlink switch, as the kubelet's atomic writer does).
* status: the pod's status (phase, podIP, conditions, container statuses with restart counts
  and the last exit's log tail) is patched from the real processes; Ready follows each
  container's readinessProbe (HTTP GET on the pod IP), so the Deployment's readiness and the
  endpoints below follow the real health endpoints.
* services: a user-space proxy (what kube-proxy does for a cloud LB and NodePorts) listens on
  every LoadBalancer ingress IP:port and every node IP:nodePort of a Service selecting a real
  pod and forwards to the Ready pods' IP:targetPort. With no Ready pod it does not listen, so
  a client is refused. The `kubernetes` Service is reached at 127.k.N.1:<API server port>.

`hack.fleet down` stops the runtime, which stops its pods; anything left (pods.json) is killed
and the namespaces and veths of this fleet are deleted.
"""
import base64
import faulthandler
import hashlib
import json
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

from . import build
from . import nodes as fleet_nodes
from .enter import load_pods, pods_file

NS = "kube-system"
REAL_LABEL = ("k8s-app", "clustermesh-apiserver")
# The agent pods (DaemonSet `cilium`) run for real on the fleet's real nodes (hack/fleet/nodes.py).
AGENT_LABEL = ("k8s-app", "cilium")
# Init containers of the agent pod that set up the host itself through the host's PID 1 (mount
# the cgroup2 hierarchy, rewrite systemd-networkd's sysctl files): on the fleet, creating the
# real node did the former and the latter does not apply; they are reported completed.
NODE_SETUP_INITS = ("mount-cgroup", "apply-sysctl-overwrites")
# Workloads: a pod in any namespace that the scheduler bound to a real node and whose every
# container runs one of these images runs for real there (Kubernetes' e2e test images: agnhost
# serves netexec for the traffic check, busybox runs its client); every other pod stays simulated.
WORKLOAD_IMAGES = ("agnhost", "busybox")
HOSTS_HEADER = "# Kubernetes-managed hosts file (meshops fleet pod runtime).\n"
# after a child process's exit woke the runtime, this long before its round
WAKE_PAUSE = 0.05


def log(msg):
    print("[pods] %s %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


def fleet_tag(fleet_dir):
    return hashlib.sha1(os.path.abspath(fleet_dir).encode()).hexdigest()[:4]


def kubernetes_vip(cluster):
    """Where pods reach their cluster's API server (the `kubernetes` Service)."""
    return cluster["network"]["kubernetes_vip"], cluster["ports"]["apiserver"]


# one command runner for the runtime and the real nodes (hack/fleet/nodes.py)
_run = fleet_nodes._run


def _write_atomic(path, data, mode=0o644, staging=None):
    """Write ``path`` by renaming a complete file over it. ``staging`` (same filesystem) holds
    the temporary file: a volume's own directory must not, since programs watching it (Cilium's
    clustermesh config watcher reads every file holding "endpoints:") would see it."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if os.path.exists(path):
        with open(path, "rb") as f:
            if f.read() == data:
                if os.stat(path).st_mode & 0o777 != mode:
                    os.chmod(path, mode)
                return False
    tmp_dir = staging or os.path.dirname(path)
    os.makedirs(tmp_dir, exist_ok=True)
    tmp = os.path.join(tmp_dir, ".%s.tmp" % os.path.basename(path))
    with open(tmp, "wb") as f:
        f.write(data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)
    return True


def _volume_files_now(d):
    data_dir = os.path.join(d, "..data")
    out = {}
    for dirpath, _, names in os.walk(data_dir):
        for n in names:
            path = os.path.join(dirpath, n)
            with open(path, "rb") as f:
                out[os.path.relpath(path, data_dir)] = (f.read(), os.stat(path).st_mode & 0o777)
    return out


def write_volume(d, files):
    """Update a Secret/ConfigMap/projected volume the way the kubelet's atomic writer does: all
    files of one version in a hidden directory ``..<time>``, the symlink ``..data`` switched to it
    in one rename, and each visible entry a symlink through ``..data``. A reader never sees a
    certificate of one version with the key of another. True when something changed."""
    if os.path.islink(os.path.join(d, "..data")) and _volume_files_now(d) == files:
        return False
    version = "..%s.%06d" % (time.strftime("%Y_%m_%d_%H_%M_%S"), int(time.time() * 1e6) % 1000000)
    vdir = os.path.join(d, version)
    for rel, (data, mode) in files.items():
        path = os.path.join(vdir, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        os.chmod(path, mode)
    os.makedirs(vdir, exist_ok=True)
    old = os.readlink(os.path.join(d, "..data")) if os.path.islink(os.path.join(d, "..data")) else None
    tmp = os.path.join(d, "..data_tmp")
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(version, tmp)
    os.replace(tmp, os.path.join(d, "..data"))
    top = set(rel.split("/")[0] for rel in files)
    for name in top:
        link = os.path.join(d, name)
        if not os.path.islink(link):
            if os.path.lexists(link):
                os.unlink(link)
            os.symlink(os.path.join("..data", name), link)
    for name in os.listdir(d):
        if not name.startswith("..") and name not in top:
            os.unlink(os.path.join(d, name))
    if old and old != version:
        shutil.rmtree(os.path.join(d, old), ignore_errors=True)
    return True


def log_tail(path, n=2000):
    """The last ``n`` bytes of a log file as text ("" when it cannot be read)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - n))
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def _pid_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return not f.read().split(") ")[-1].startswith("Z")
    except OSError:
        return False


def _now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# ----------------------------------------------------------------------------- network
class Netns(object):
    """One pod's network namespace and veth pair (names of this fleet only)."""

    def __init__(self, tag, key, ip):
        h = hashlib.sha1((tag + key).encode()).hexdigest()[:6]
        self.name = "meshops-%s-%s" % (tag, h)
        self.host_if = "mh%s%s" % (tag, h)
        self.ip = ip

    def create(self):
        self.delete()
        ns, host = self.name, self.host_if
        inside = ["ip", "netns", "exec", ns]
        _run("ip", "netns", "add", ns)
        _run("ip", "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", ns)
        _run(*inside, "ip", "link", "set", "lo", "up")
        # only 127.0.0.1 is local inside the pod: the fleet's other loopback addresses (node and
        # LB IPs) are routed to the host like any remote address
        _run(*inside, "ip", "addr", "del", "127.0.0.1/8", "dev", "lo", check=False)
        _run(*inside, "ip", "addr", "add", "127.0.0.1/32", "dev", "lo", check=False)
        _run(*inside, "ip", "addr", "add", self.ip + "/32", "dev", "eth0")
        _run(*inside, "ip", "link", "set", "eth0", "up")
        _run("ip", "link", "set", host, "up")
        host_mac = open("/sys/class/net/%s/address" % host).read().strip()
        pod_mac = _run(*inside, "cat", "/sys/class/net/eth0/address").stdout.strip()
        _run(*inside, "ip", "route", "add", "default", "via", "169.254.1.1", "dev", "eth0", "onlink")
        _run(*inside, "ip", "neigh", "add", "169.254.1.1", "lladdr", host_mac, "dev", "eth0", "nud", "permanent")
        _run("ip", "route", "replace", self.ip + "/32", "dev", host)
        _run("ip", "neigh", "replace", self.ip, "lladdr", pod_mac, "dev", host, "nud", "permanent")
        _run("sysctl", "-qw", "net.ipv4.conf.%s.route_localnet=1" % host)
        # real nodes reach this pod through the host: forwarding on this link only (the host's
        # own net.ipv4.ip_forward stays as it is)
        _run("sysctl", "-qw", "net.ipv4.conf.%s.forwarding=1" % host)
        _run(*inside, "sysctl", "-qw", "net.ipv4.conf.eth0.route_localnet=1")

    def delete(self):
        _run("ip", "link", "del", self.host_if, check=False)
        _run("ip", "netns", "del", self.name, check=False)


class NodeNetwork(object):
    """The network of a hostNetwork pod on a real node: the node's own namespace (created and
    deleted with the node, not with the pod)."""

    def __init__(self, node):
        self.node = node
        self.name = node.netns
        self.host_if = node.host_if
        self.ip = node.ip

    def create(self):
        if not self.node.created:
            self.node.create()

    def delete(self):
        pass


def cni_netconf(conflist, log_file):
    """The network configuration a kubelet (libcni) hands the first plugin of a conflist: the
    plugin's entry with the list's cniVersion and name. ``log_file`` replaces the plugin's log
    path (on the fleet that path is the node's, not this host's)."""
    conf = dict(conflist["plugins"][0], cniVersion=conflist.get("cniVersion", "0.3.1"), name=conflist["name"])
    if "log-file" in conf:
        conf["log-file"] = log_file
    return conf


def cni_env(command, pod, netns, cni_path, sock):
    """The CNI_* environment of a plugin call for ``pod`` (as the kubelet's CRI runtime sets it),
    with the node agent's API socket (CILIUM_SOCK) where cilium-cni finds it on the fleet."""
    meta = pod["metadata"]
    return dict(PATH=os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), CNI_COMMAND=command,
                CNI_CONTAINERID=meta["uid"], CNI_NETNS="/var/run/netns/" + netns, CNI_IFNAME="eth0",
                CNI_PATH=cni_path, CILIUM_SOCK=sock,
                CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAMESPACE=%s;K8S_POD_NAME=%s;K8S_POD_INFRA_CONTAINER_ID=%s;"
                         "K8S_POD_UID=%s" % (meta["namespace"], meta["name"], meta["uid"], meta["uid"]))


CNI_TIMEOUT = 30


class CniNetwork(object):
    """The network of a pod on a real node, made as a kubelet makes it: an empty network
    namespace, then the node's CNI plugin (the real cilium-cni that the agent pod's init container
    installed, with the configuration the agent wrote) called with ADD, which asks the node's
    agent for an address and wires the pod into Cilium's datapath; DEL when the pod goes."""

    def __init__(self, tag, key, node, pod_obj, agent_ready):
        h = hashlib.sha1((tag + key).encode()).hexdigest()[:6]
        self.name = "meshops-%s-%s" % (tag, h)
        self.host_if = None
        self.node, self.pod = node, pod_obj
        self.agent_ready = agent_ready
        self.ip = None
        # after a failed ADD, the next one waits (a kubelet backs off the same way): a plugin
        # that hangs must not hold the runtime's loop every second
        self.retry_at, self.last_error = 0, None

    def _cni(self, command):
        conf_path = os.path.join(self.node.root, "etc/cni/net.d/05-cilium.conflist")
        sock = os.path.join(self.node.root, "var/run/cilium/cilium.sock")
        plugin = os.path.join(self.node.root, "opt/cni/bin/cilium-cni")
        if command == "ADD" and not self.agent_ready():
            # as a kubelet waits for "network ready": the node's agent answers CNI calls only
            # once it is up (a call before that blocks until the plugin's own timeout)
            raise Missing("the network of node %s (its Cilium agent is not Ready)" % self.node.name)
        if not (os.path.exists(conf_path) and os.path.exists(plugin) and os.path.exists(sock)):
            raise Missing("the CNI plugin of node %s (its Cilium agent is not ready: no %s)" % (
                self.node.name, os.path.relpath(conf_path, self.node.root)))
        with open(conf_path) as f:
            conf = cni_netconf(json.load(f), os.path.join(self.node.root, "var/run/cilium/cilium-cni.log"))
        env = cni_env(command, self.pod, self.name, os.path.dirname(plugin), sock)
        # a session of its own: on timeout the whole group is killed. subprocess.run's own timeout kills
        # only `ip`, and then waits for the end of output that a child left behind still holds open:
        # that wait once kept the runtime's loop (every cluster's pods) stuck for good.
        proc = subprocess.Popen(["ip", "netns", "exec", self.node.netns, plugin], env=env, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                                start_new_session=True)
        try:
            out, err = proc.communicate(json.dumps(conf), timeout=CNI_TIMEOUT)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except OSError:
                pass
            try:
                proc.communicate(timeout=5)
            except subprocess.TimeoutExpired:
                pass  # a child that left the group: its output is not waited for
            raise Missing("CNI %s on node %s (cilium-cni gave no answer in %ds)" % (command, self.node.name, CNI_TIMEOUT))
        if proc.returncode != 0:
            raise Missing("CNI %s on node %s (cilium-cni exit %d: %s)" % (
                command, self.node.name, proc.returncode, (out + err).strip()[-400:]))
        return json.loads(out) if out.strip() else {}

    def create(self):
        if time.time() < self.retry_at:
            raise Missing(self.last_error)
        if not self.node.created:
            self.node.create()
        _run("ip", "netns", "del", self.name, check=False)
        _run("ip", "netns", "add", self.name)
        inside = ["ip", "netns", "exec", self.name]
        _run(*inside, "ip", "link", "set", "lo", "up")
        # as for every fleet pod: only 127.0.0.1 is local, the fleet's other loopback addresses
        # (API server VIP, load-balancer IPs) are routed out like any remote address
        _run(*inside, "ip", "addr", "del", "127.0.0.1/8", "dev", "lo", check=False)
        _run(*inside, "ip", "addr", "add", "127.0.0.1/32", "dev", "lo", check=False)
        try:
            result = self._cni("ADD")
        except Exception as e:
            _run("ip", "netns", "del", self.name, check=False)
            if "gave no answer" in str(e) or "exit" in str(e):
                self.retry_at, self.last_error = time.time() + CNI_TIMEOUT, str(e).replace("Missing: ", "")
            raise
        ips = [i["address"].split("/")[0] for i in result.get("ips") or []]
        if not ips:
            self.delete()
            raise Missing("an address from the CNI plugin of node %s (ADD returned %s)" % (self.node.name, result))
        self.ip = ips[0]
        _run(*inside, "sysctl", "-qw", "net.ipv4.conf.eth0.route_localnet=1")

    def delete(self):
        if self.ip is not None:
            try:
                self._cni("DEL")
            except Exception as e:  # noqa: BLE001 - the agent may be gone; the namespace goes anyway
                log("CNI DEL of %s on %s: %s" % (self.name, self.node.name, e))
        _run("ip", "netns", "del", self.name, check=False)
        self.ip = None


def cleanup_namespaces(fleet_dir):
    """Delete every network namespace and veth of this fleet (by its name prefix)."""
    tag = fleet_tag(fleet_dir)
    out = _run("ip", "-o", "link", "show", check=False).stdout
    for m in re.finditer(r"^\d+: (mh%s[0-9a-f]{6})[@:]" % tag, out, re.M):
        _run("ip", "link", "del", m.group(1), check=False)
    out = _run("ip", "netns", "list", check=False).stdout
    n = 0
    for line in out.splitlines():
        name = line.split()[0] if line.split() else ""
        if name.startswith("meshops-%s-" % tag):
            _run("ip", "netns", "del", name, check=False)
            n += 1
    fleet_nodes.cleanup(fleet_dir, tag)
    return n


# ----------------------------------------------------------------------------- TCP proxy
def _where(key):
    """A listener key: (addr, port) on this host, (addr, port, netns) inside a real node."""
    return "%s:%d" % key[:2] + (" in %s" % key[2] if len(key) > 2 else "")


class Listener(object):
    def __init__(self, addr, port, netns=None):
        self.addr, self.port = addr, port
        self.backends = []
        if netns:
            # a Service's ClusterIP inside a real node (the node routes its Service CIDR locally)
            self.sock = fleet_nodes.netns_socket(netns, socket.AF_INET, socket.SOCK_STREAM)
        else:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((addr, port))
        self.sock.listen(64)
        self.closed = False
        self.rr = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self.closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            backends = list(self.backends)
            if not backends:
                conn.close()
                continue
            self.rr += 1
            target = backends[self.rr % len(backends)]
            threading.Thread(target=self._serve, args=(conn, target), daemon=True).start()

    @staticmethod
    def _serve(conn, target):
        try:
            up = socket.create_connection(target, timeout=5)
            up.settimeout(None)
        except OSError:
            conn.close()  # the backend refused: so does the service address
            return

        def pump(a, b):
            try:
                while True:
                    data = a.recv(65536)
                    if not data:
                        break
                    b.sendall(data)
            except OSError:
                pass
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        t = threading.Thread(target=pump, args=(up, conn), daemon=True)
        t.start()
        pump(conn, up)
        t.join()
        conn.close()
        up.close()

    def close(self):
        self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


class Proxy(object):
    def __init__(self):
        self.listeners = {}
        self.failed = {}

    def reconcile(self, desired):
        """desired: {(addr, port): [(backend addr, port), ...]} with at least one backend each."""
        for key in list(self.listeners):
            if key not in desired:
                self.listeners.pop(key).close()
                log("proxy: %s closed (no Ready backend)" % _where(key))
        for key, backends in desired.items():
            lst = self.listeners.get(key)
            if lst is None:
                try:
                    lst = self.listeners[key] = Listener(*key)
                    self.failed.pop(key, None)
                    log("proxy: %s -> %s" % (_where(key), ", ".join("%s:%d" % b for b in backends)))
                except OSError as e:
                    if key not in self.failed:
                        log("proxy: cannot listen on %s: %s (another fleet with real pods on these "
                            "addresses?)" % (_where(key), e))
                    self.failed[key] = str(e)
                    continue
            lst.backends = list(backends)

    def close(self):
        for lst in self.listeners.values():
            lst.close()
        self.listeners = {}


# ----------------------------------------------------------------------------- pod specs
def _b64(data):
    return base64.b64decode(data or "")


def _items(data, items, decode):
    """{relative path: bytes} of a Secret/ConfigMap volume source (all keys, or ``items``)."""
    out = {}
    if items:
        for it in items:
            if it["key"] in data:
                out[it["path"]] = (decode(data[it["key"]]), it.get("mode"))
    else:
        for k, v in data.items():
            out[k] = (decode(v), None)
    return out


def _obj_data(obj, kind):
    if kind == "secret":
        return dict((k, v) for k, v in ((obj or {}).get("data") or {}).items()), _b64
    data = dict((k, v) for k, v in ((obj or {}).get("data") or {}).items())
    return data, lambda v: (v or "").encode()


def _field(pod, path):
    meta, spec, status = pod["metadata"], pod["spec"], pod.get("status") or {}
    return {"metadata.name": meta["name"], "metadata.namespace": meta["namespace"],
            "metadata.uid": meta["uid"], "spec.nodeName": spec.get("nodeName", ""),
            "spec.serviceAccountName": spec.get("serviceAccountName", ""),
            "status.podIP": status.get("podIP", ""), "status.hostIP": status.get("hostIP", "")}.get(path, "")


class Missing(Exception):
    """An object a volume or env needs does not exist (yet)."""


def _source_files(key, ref, secrets, configmaps, name_key):
    """Files of one Secret (``key`` "secret") or ConfigMap ("configMap") reference; {} when it is
    optional and missing; raises Missing."""
    kind = "secret" if key == "secret" else "configmap"
    obj = (secrets if kind == "secret" else configmaps).get(ref[name_key])
    if obj is None:
        if ref.get("optional"):
            return {}
        raise Missing("%s %s" % ("Secret" if kind == "secret" else "ConfigMap", ref[name_key]))
    data, dec = _obj_data(obj, kind)
    return _items(data, ref.get("items"), dec)


def volume_files(pod, vol, secrets, configmaps, token_fn):
    """{relative path: (bytes, mode)} of one volume, None for emptyDir; raises Missing."""
    default_mode = None
    if "secret" in vol or "configMap" in vol:
        key = "secret" if "secret" in vol else "configMap"
        src = vol[key]
        files = _source_files(key, src, secrets, configmaps, "secretName" if key == "secret" else "name")
        default_mode = src.get("defaultMode")
    elif "projected" in vol:
        files, default_mode = {}, vol["projected"].get("defaultMode")
        for s in vol["projected"].get("sources") or []:
            if "secret" in s or "configMap" in s:
                key = "secret" if "secret" in s else "configMap"
                files.update(_source_files(key, s[key], secrets, configmaps, "name"))
            elif "serviceAccountToken" in s:
                t = s["serviceAccountToken"]
                files[t["path"]] = (token_fn(t.get("audience"), t.get("expirationSeconds") or 3600).encode(), None)
            elif "downwardAPI" in s:
                for it in s["downwardAPI"].get("items") or []:
                    if it.get("fieldRef"):
                        files[it["path"]] = (_field(pod, it["fieldRef"]["fieldPath"]).encode(), None)
    elif "emptyDir" in vol or "hostPath" in vol:
        return None
    else:
        raise Missing("volume type of %s (not supported by the fleet)" % vol.get("name"))
    mode = default_mode if default_mode is not None else 0o644
    return dict((p, (b, m if m is not None else mode)) for p, (b, m) in files.items())


_VAR = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(text, env):
    """Kubernetes' $(VAR) expansion of command, args and env values ($$ escapes)."""
    def sub(m):
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))
    return _VAR.sub(sub, text)


def container_env(pod, ctr, secrets, configmaps, base):
    env = dict(base)
    for e in ctr.get("env") or []:
        if "valueFrom" not in e:
            env[e["name"]] = expand(e.get("value", ""), env)
            continue
        vf = e["valueFrom"]
        if "fieldRef" in vf:
            env[e["name"]] = _field(pod, vf["fieldRef"]["fieldPath"])
        elif "configMapKeyRef" in vf or "secretKeyRef" in vf:
            ref = vf.get("configMapKeyRef") or vf.get("secretKeyRef")
            kind = "configmap" if "configMapKeyRef" in vf else "secret"
            obj = (configmaps if kind == "configmap" else secrets).get(ref["name"])
            data, dec = _obj_data(obj, kind)
            if ref["key"] not in data:
                if ref.get("optional"):
                    continue
                raise Missing("%s %s key %s" % (kind, ref["name"], ref["key"]))
            env[e["name"]] = dec(data[ref["key"]]).decode()
    return env


def service_hosts(services):
    """((ClusterIP, [names]), ...) of ``services`` for the pods' /etc/hosts, the fleet's stand-in
    for cluster DNS: <name>.<namespace>, .svc and .svc.cluster.local."""
    out = []
    for svc in services:
        ip = svc["spec"].get("clusterIP")
        if ip in (None, "", "None"):
            continue
        base = "%s.%s" % (svc["metadata"]["name"], svc["metadata"]["namespace"])
        out.append((ip, [base + ".svc", base + ".svc.cluster.local", base]))
    return out


def etc_hosts(pod, ip, services=()):
    """The pod's /etc/hosts as a kubelet writes it; ``services`` ((ClusterIP, names), ...) stand
    for the cluster DNS the fleet does not run (host-network pods on real nodes get them)."""
    lines = [HOSTS_HEADER, "127.0.0.1\tlocalhost\n", "::1\tlocalhost ip6-localhost ip6-loopback\n",
             "%s\t%s\n" % (ip, pod["metadata"]["name"])]
    if services:
        lines.append("\n# Services of the cluster (the fleet runs no cluster DNS).\n")
        lines += ["%s\t%s\n" % (addr, "\t".join(names)) for addr, names in services]
    aliases = pod["spec"].get("hostAliases") or []
    if aliases:
        lines.append("\n# Entries added by HostAliases.\n")
        for a in aliases:
            lines.append("%s\t%s\n" % (a["ip"], "\t".join(a.get("hostnames") or [])))
    return "".join(lines).encode()


# ----------------------------------------------------------------------------- images
class Image(object):
    """What a container image gives a container: ``binds`` (path in the container -> file or
    directory of this machine: our builds of the image's programs, the image's own files),
    ``env`` (the image's ENV) and, with ``base_os``, the operating system the image is built on,
    which here is this machine's ``/usr`` (read-only: clang, llc, iptables, ip, bash that
    Cilium's agent image carries) with the usual ``/bin`` ``/lib`` ... links."""

    def __init__(self, name, binds, env, base_os=False, copies=None, entrypoint=None, cmd=None, writable=None):
        self.name, self.binds, self.env, self.base_os = name, binds, env, base_os
        # directories of this machine bound read-write (a cache shared by every container of the image)
        self.writable = writable or {}
        # the image's ENTRYPOINT and CMD, which a container's command and args replace
        self.entrypoint, self.cmd = list(entrypoint or []), list(cmd or [])
        # directories the image's programs write into (its writable layer): copied into each
        # container's root once, not bound
        self.copies = copies or {}

    def mounts(self):
        """[source, path in the container, read-only] of the image, parents first."""
        out = []
        if self.base_os:
            for entry in sorted(os.listdir("/usr")):
                if entry != "local" and os.path.isdir(os.path.join("/usr", entry)):
                    out.append([os.path.join("/usr", entry), "/usr/" + entry, True])
            for path in ("/etc/alternatives", "/etc/ld.so.cache"):
                if os.path.exists(path):
                    out.append([path, path, True])
        out += [[src, path, True] for path, src in sorted(self.binds.items())]
        for path, src in sorted(self.writable.items()):
            os.makedirs(src, exist_ok=True)
            out.append([src, path, False])
        return out

    def prepare(self, root):
        for path, src in self.copies.items():
            dst = os.path.join(root, path.lstrip("/"))
            if not os.path.exists(dst):
                os.makedirs(os.path.dirname(dst), exist_ok=True)
                shutil.rmtree(dst + ".tmp", ignore_errors=True)
                shutil.copytree(src, dst + ".tmp", copy_function=shutil.copyfile)
                os.replace(dst + ".tmp", dst)
        if self.base_os:
            for link in ("bin", "sbin", "lib", "lib64"):
                path = os.path.join(root, link)
                if not os.path.lexists(path) and os.path.isdir(os.path.join("/usr", link)):
                    os.symlink("usr/" + link, path)


def cri_log_line(line, stream="stdout"):
    """One line of the CRI container log format: ``<RFC 3339 time> <stream> F <line>``."""
    now = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + ".%09dZ" % int((now % 1) * 1e9)
    return b"%s %s F %s\n" % (stamp.encode(), stream.encode(), line)


def container_argv(spec, image):
    """What a container runs, as the container runtime decides it: ``command`` replaces the
    image's ENTRYPOINT (and drops its CMD), ``args`` replace the image's CMD."""
    command = spec.get("command")
    if command:
        return list(command) + list(spec.get("args") or [])
    return image.entrypoint + list(spec.get("args") or image.cmd)


def is_workload(pod, images=WORKLOAD_IMAGES):
    """Whether every container (init containers too) of ``pod`` runs an image of WORKLOAD_IMAGES
    (and of ``images``: those the fleet has)."""
    ctrs = (pod["spec"].get("initContainers") or []) + (pod["spec"].get("containers") or [])
    return bool(ctrs) and all(image_of(c) in WORKLOAD_IMAGES and image_of(c) in images for c in ctrs)


def image_of(ctr):
    """The image name of a container spec without registry, tag and digest:
    quay.io/cilium/cilium:v1.20.2@sha256:... -> cilium."""
    ref = ctr.get("image") or ""
    return ref.split("@")[0].rsplit("/", 1)[-1].split(":")[0]


def http_probe(netns, host, port, path, headers, timeout):
    """GET from inside a network namespace (a probe of 127.0.0.1 means the pod's own)."""
    import http.client  # noqa: PLC0415
    try:
        sock = fleet_nodes.netns_socket(netns, socket.AF_INET, socket.SOCK_STREAM)
    except OSError:
        return False
    try:
        sock.settimeout(timeout)
        sock.connect((host, int(port)))
        conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
        conn.sock = sock
        conn.request("GET", path, headers=headers)
        r = conn.getresponse()
        r.read()
        return 200 <= r.status < 400
    except (OSError, http.client.HTTPException):
        return False
    finally:
        sock.close()


# ----------------------------------------------------------------------------- one pod
class Container(object):
    def __init__(self, pod, spec, init=False):
        self.pod, self.spec, self.init = pod, spec, init
        self.name = spec["name"]
        self.image = pod.rt.images.get(image_of(spec))
        self.proc = None
        self.pid = None
        self.restarts = 0
        self.started_at = None
        self.next_start = 0
        self.last_exit = None
        self.ready = False
        self.done = False
        # a container that exited for good (restartPolicy Never, or OnFailure after exit 0)
        self.finished = False
        self.log = os.path.join(pod.rt.fleet_dir, "logs", "%s-%s-%s.log" % (pod.cluster["name"], pod.name, self.name))
        # the same output in the CRI log format, which the kubelet's log endpoint (kwok's Logs) reads
        self.cri_log = os.path.join(pod.dir, "logs", "%s.log" % self.name)
        # where this container's output starts in self.log (None until it first started: what is
        # there before is an earlier pod's of the same name), then how far the CRI log has it
        self.cri_offset = None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self, secrets, configmaps):
        pod = self.pod
        if self.image is None:
            raise Missing("image %s (the fleet runs the images %s)" % (
                self.spec.get("image"), ", ".join(sorted(pod.rt.images))))
        env = container_env(pod.obj, self.spec, secrets, configmaps, pod.base_env(self.image))
        argv = [expand(a, env) for a in container_argv(self.spec, self.image)]
        if not argv:
            raise Missing("container %s has no command and image %s no entrypoint" % (self.name, self.image.name))
        rootfs = pod.rootfs(self)
        spec = {"rootfs": rootfs, "binds": pod.binds(self), "argv": argv, "env": env,
                "workdir": self.spec.get("workingDir") or "/", "hostname": env.get("HOSTNAME")}
        spec_file = os.path.join(pod.dir, "%s.json" % self.name)
        with open(spec_file, "w") as f:
            json.dump(spec, f, indent=1)
        os.makedirs(os.path.dirname(self.log), exist_ok=True)
        with open(self.log, "ab") as out:
            if self.cri_offset is None:
                self.cri_offset = out.tell()
            out.write(("---- %s start %s (restart %d): %s\n" % (_now(), self.name, self.restarts, " ".join(argv))).encode())
            out.flush()
            self.proc = subprocess.Popen(
                # its own UTS namespace too: the container's hostname is the pod's name (the node's for
                # a host-network pod), which agnhost's /hostname answers
                ["ip", "netns", "exec", pod.netns.name, "unshare", "--uts", sys.executable, "-m", "hack.fleet.pods",
                 "run-container", spec_file],
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
                cwd=pod.rt.repo)
        self.pid = self.proc.pid
        self.started_at = _now()
        self.ready = False

    def sync_cri_log(self):
        """Append the container's new complete lines to its CRI log (the runtime's own "---- start"
        lines left out); after the program ended, whatever it wrote last too."""
        if self.cri_offset is None:
            return
        try:
            size = os.path.getsize(self.log)
        except OSError:
            return
        if size <= self.cri_offset:
            return
        with open(self.log, "rb") as f:
            f.seek(self.cri_offset)
            data = f.read(size - self.cri_offset)
        cut = len(data) if not self.running() else data.rfind(b"\n") + 1
        if not cut:
            return
        header = b"---- "
        marker = (" start %s (restart " % self.name).encode()
        lines = [ln for ln in data[:cut].splitlines() if not (ln.startswith(header) and marker in ln)]
        os.makedirs(os.path.dirname(self.cri_log), exist_ok=True)
        with open(self.cri_log, "ab") as f:
            f.write(b"".join(cri_log_line(ln) for ln in lines))
        self.cri_offset += cut

    def check_exit(self):
        """None while running; the exit code once it exited (and records it)."""
        if self.proc is None:
            return None
        rc = self.proc.poll()
        if rc is None:
            return None
        self.proc = None
        tail = log_tail(self.log, 1500)
        self.last_exit = {"exitCode": rc, "finishedAt": _now(), "startedAt": self.started_at,
                          "reason": "Completed" if rc == 0 else "Error", "message": tail[-1000:]}
        return rc

    def stop(self, timeout=5):
        if self.proc is None or self.proc.poll() is not None:
            self.proc = None
            return
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except OSError:
            pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except OSError:
                pass
            self.proc.wait(5)
        self.proc = None


class Pod(object):
    def __init__(self, rt, cluster, obj, ip, node=None):
        self.rt, self.cluster, self.obj = rt, cluster, obj
        self.name = obj["metadata"]["name"]
        self.namespace = obj["metadata"].get("namespace") or NS
        self.uid = obj["metadata"]["uid"]
        self.key = "%s/%s" % (cluster["name"], self.name)
        self.dir = os.path.join(rt.fleet_dir, "pods", cluster["name"], self.name)
        self.node = node
        if node is not None and obj["spec"].get("hostNetwork"):
            self.netns = NodeNetwork(node)
            ip = node.ip
        elif node is not None:
            self.netns = CniNetwork(rt.tag, self.key + self.uid, node, obj, lambda: rt.agent_ready(node))
            ip = None
        else:
            self.netns = Netns(rt.tag, self.key + self.uid, ip)
        self.ip = ip
        self.exec_object = False
        self.inits = [Container(self, c, init=True) for c in obj["spec"].get("initContainers") or []]
        self.containers = [Container(self, c) for c in obj["spec"].get("containers") or []]
        self.phase = "Pending"
        self.waiting = None
        self.created = False
        self.start_time = None
        self.tokens = {}
        self.status_sent = None
        self.stopped = False

    # files -------------------------------------------------------------
    def base_env(self, image):
        host, port = kubernetes_vip(self.cluster)
        # HOME as container runtimes set it for root
        env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root",
               "HOSTNAME": self.node.name if isinstance(self.netns, NodeNetwork) else self.name,
               "KUBERNETES_SERVICE_HOST": host, "KUBERNETES_SERVICE_PORT": str(port),
               "KUBERNETES_SERVICE_PORT_HTTPS": str(port),
               "KUBERNETES_PORT": "tcp://%s:%d" % (host, port)}
        env.update(image.env)
        return env

    def token(self, audience, seconds):
        key = (audience, seconds)
        tok, exp = self.tokens.get(key, (None, 0))
        if tok is None or time.time() > exp - seconds * 0.2:
            sa = self.obj["spec"].get("serviceAccountName") or "default"
            body = {"spec": {"audiences": [audience] if audience else None, "expirationSeconds": max(600, seconds),
                             "boundObjectRef": {"kind": "Pod", "apiVersion": "v1", "name": self.name, "uid": self.uid}}}
            r = self.rt.api(self.cluster).create_namespaced_service_account_token(sa, self.namespace, body)
            tok, exp = r.status.token, time.time() + max(600, seconds)
            self.tokens[key] = (tok, exp)
        return tok

    def sync_volumes(self, secrets, configmaps):
        """Write every volume's files; True when something changed."""
        changed = False
        for vol in self.obj["spec"].get("volumes") or []:
            if "hostPath" in vol:
                self.host_path(vol)
                continue
            d = os.path.join(self.dir, "volumes", vol["name"])
            files = volume_files(self.obj, vol, secrets, configmaps, self.token)
            os.makedirs(d, exist_ok=True)
            if files is not None and write_volume(d, files):
                changed = True
        return changed

    def host_path(self, vol):
        """Where a hostPath volume is on this machine: the real node's own directory (created as
        its ``type`` asks); pods on simulated nodes have no host."""
        hp = vol["hostPath"]
        if self.node is None:
            raise Missing("a node for hostPath volume %s (only the fleet's real nodes have one)" % vol["name"])
        path = self.node.host_path(hp["path"])
        kind = hp.get("type") or ""
        if kind == "FileOrCreate" and not os.path.exists(path):
            os.makedirs(os.path.dirname(path), exist_ok=True)
            open(path, "a").close()
        elif kind == "DirectoryOrCreate" or (kind == "" and not os.path.exists(path)):
            os.makedirs(path, exist_ok=True)
        elif not os.path.exists(path):
            raise Missing("hostPath %s (type %s) on node %s" % (hp["path"], kind, self.node.name))
        return path

    def rootfs(self, ctr):
        root = os.path.join(self.dir, "rootfs", ctr.name)
        for d in ("proc", "sys", "dev", "tmp", "etc", "run", "var/run/cilium"):
            os.makedirs(os.path.join(root, d), exist_ok=True)
        os.chmod(os.path.join(root, "tmp"), 0o1777)
        ctr.image.prepare(root)
        self.write_hosts(root)
        _write_atomic(os.path.join(root, "etc/nsswitch.conf"), b"hosts: files dns\n")
        _write_atomic(os.path.join(root, "etc/passwd"), b"root:x:0:0:root:/root:/bin/sh\n")
        _write_atomic(os.path.join(root, "etc/group"), b"root:x:0:\n")
        os.makedirs(os.path.join(root, "root"), exist_ok=True)
        _write_atomic(os.path.join(root, "etc/resolv.conf"), b"nameserver 127.0.0.1\noptions ndots:5\n")
        return root

    def write_hosts(self, root):
        services = self.rt.service_names.get(self.cluster["name"], ()) if self.node is not None else ()
        _write_atomic(os.path.join(root, "etc/hosts"), etc_hosts(self.obj, self.ip, services))

    def binds(self, ctr):
        out = ctr.image.mounts()
        vols = dict((v["name"], v) for v in self.obj["spec"].get("volumes") or [])
        for m in ctr.spec.get("volumeMounts") or []:
            vol = vols.get(m["name"]) or {}
            if "hostPath" in vol:
                src = self.host_path(vol)
            else:
                src = os.path.join(self.dir, "volumes", m["name"])
            if m.get("subPath"):
                src = os.path.join(src, m["subPath"])
            out.append([src, m["mountPath"], bool(m.get("readOnly"))])
        return out

    # lifecycle ---------------------------------------------------------
    def create(self):
        os.makedirs(self.dir, exist_ok=True)
        self.netns.create()
        self.ip = self.netns.ip
        self.created = True
        self.start_time = _now()
        log("%s: network namespace %s, pod IP %s" % (self.key, self.netns.name, self.ip))

    def step(self, secrets, configmaps):
        """Advance the pod: volumes, init containers in order, containers (restart with back-off)."""
        if not self.created:
            self.create()
        try:
            self.sync_volumes(secrets, configmaps)
            self.waiting = None
        except Missing as e:
            self.waiting = "waiting for %s" % e
            return
        now = time.time()
        for c in self.inits:
            if c.done:
                continue
            if self.node is not None and c.name in NODE_SETUP_INITS:
                c.done = True
                c.last_exit = {"exitCode": 0, "finishedAt": _now(), "startedAt": _now(), "reason": "Completed",
                               "message": "the fleet's real node did this (hack/fleet/nodes.py), not the image"}
                log("%s: init container %s: done by the fleet's node setup" % (self.key, c.name))
                continue
            if c.proc is None and now >= c.next_start:
                c.start(secrets, configmaps)
                log("%s: init container %s started (pid %d)" % (self.key, c.name, c.pid))
                return
            rc = c.check_exit()
            if rc is None:
                return
            if rc == 0:
                c.done = True
                log("%s: init container %s completed" % (self.key, c.name))
                continue
            log("%s: init container %s FAILED (exit %d); last lines:\n%s" % (
                self.key, c.name, rc, _indent(c.last_exit["message"])))
            if self.restart_policy == "Never":
                self.phase = "Failed"
                return
            c.restarts += 1
            c.next_start = now + min(60, 2 ** min(c.restarts, 6))
            return
        if self.phase in ("Succeeded", "Failed"):
            return
        self.phase = "Running"
        if self.node is not None:
            for c in self.containers:
                if os.path.isdir(os.path.join(self.dir, "rootfs", c.name, "etc")):
                    self.write_hosts(os.path.join(self.dir, "rootfs", c.name))
        for c in self.containers:
            rc = c.check_exit()
            if rc is not None and (self.restart_policy == "Never" or (self.restart_policy == "OnFailure" and rc == 0)):
                c.finished = True
                log("%s: container %s exited %d (restartPolicy %s)" % (self.key, c.name, rc, self.restart_policy))
            elif rc is not None:
                c.restarts += 1
                c.next_start = now + min(60, 2 ** min(c.restarts, 6))
                log("%s: container %s exited %d (restart %d in %ds); last lines:\n%s" % (
                    self.key, c.name, rc, c.restarts, c.next_start - now, _indent(c.last_exit["message"])))
            if c.proc is None and not c.finished and now >= c.next_start:
                c.start(secrets, configmaps)
                log("%s: container %s started (pid %d)" % (self.key, c.name, c.pid))
        for c in self.containers:
            c.sync_cri_log()
        if self.containers and all(c.finished for c in self.containers):
            self.phase = "Succeeded" if all(c.last_exit["exitCode"] == 0 for c in self.containers) else "Failed"
            log("%s: %s" % (self.key, self.phase))

    @property
    def restart_policy(self):
        return self.obj["spec"].get("restartPolicy") or "Always"

    def probe(self):
        for c in self.containers:
            if not c.running():
                c.ready = False
                continue
            probe = c.spec.get("readinessProbe")
            if not probe or "httpGet" not in probe:
                c.ready = True
                continue
            get = probe["httpGet"]
            port = get.get("port")
            if not str(port).isdigit():
                port = [p["containerPort"] for p in c.spec.get("ports") or [] if p.get("name") == port]
                port = port[0] if port else 0
            if self.node is not None or get.get("host"):
                # on a real node the kubelet probes from the node's network namespace (Cilium lets
                # the node reach its pods whatever the policy); a probe naming a host is dialled
                # from inside the pod's namespace: 127.0.0.1 there is the pod's own
                where = self.node.netns if self.node is not None and not get.get("host") else self.netns.name
                headers = dict((h["name"], h["value"]) for h in get.get("httpHeaders") or [])
                c.ready = http_probe(where, get.get("host") or self.ip, port, get.get("path", "/"),
                                     headers, probe.get("timeoutSeconds") or 1)
                continue
            url = "%s://%s:%s%s" % (get.get("scheme", "HTTP").lower(), self.ip, port, get.get("path", "/"))
            try:
                with urllib.request.urlopen(url, timeout=probe.get("timeoutSeconds") or 1) as r:
                    c.ready = 200 <= r.status < 400
            except Exception:  # noqa: BLE001 - any failure is "not ready"
                c.ready = False

    def ready(self):
        return self.phase == "Running" and all(c.ready for c in self.containers)

    def status(self):
        image = lambda c: c.spec.get("image", "")  # noqa: E731

        def cstatus(c):
            st = {"name": c.name, "image": image(c), "imageID": "", "restartCount": c.restarts,
                  "ready": bool(c.ready) if not c.init else c.done, "started": c.running()}
            if c.running():
                st["state"] = {"running": {"startedAt": c.started_at}}
            elif (c.init and c.done) or c.finished:
                st["state"] = {"terminated": c.last_exit}
            else:
                st["state"] = {"waiting": {"reason": "CrashLoopBackOff" if c.restarts else "PodInitializing"}}
            if c.last_exit and not (c.init and c.done) and not c.finished:
                st["lastState"] = {"terminated": c.last_exit}
            return st
        ready = self.ready()
        initialized = all(c.done for c in self.inits)
        cond = lambda t, ok: {"type": t, "status": "True" if ok else "False"}  # noqa: E731
        node_ip = self.rt.node_ip(self.cluster, self.obj["spec"].get("nodeName"))
        st = {"phase": self.phase, "startTime": self.start_time,
              "conditions": [cond("PodScheduled", True), cond("Initialized", initialized),
                             cond("ContainersReady", ready), cond("Ready", ready)],
              "initContainerStatuses": [cstatus(c) for c in self.inits],
              "containerStatuses": [cstatus(c) for c in self.containers]}
        if self.ip:
            st["podIP"], st["podIPs"] = self.ip, [{"ip": self.ip}]
        if node_ip:
            st["hostIP"], st["hostIPs"] = node_ip, [{"ip": node_ip}]
        if self.waiting:
            st["message"] = self.waiting
        return st

    def stop(self):
        self.stopped = True
        for c in reversed(self.containers + self.inits):
            c.stop()
        if self.created:
            self.netns.delete()
        # the mounts lived in the containers' own mount namespaces, gone with their processes
        shutil.rmtree(self.dir, ignore_errors=True)
        log("%s: stopped" % self.key)

    def describe(self):
        return {"cluster": self.cluster["name"], "name": self.name, "uid": self.uid, "ip": self.ip,
                "netns": self.netns.name, "veth": self.netns.host_if, "phase": self.phase,
                "ready": self.ready(), "waiting": self.waiting,
                "containers": dict((c.name, {"pid": c.pid if c.running() else None, "log": c.log,
                                             "restarts": c.restarts, "ready": c.ready, "init": c.init,
                                             "last_exit": c.last_exit})
                                   for c in self.inits + self.containers)}


def _indent(text):
    return "\n".join("      " + ln for ln in text.splitlines()[-15:])


# ----------------------------------------------------------------------------- the runtime
CLANG_CACHE_MOUNT = "/var/cache/meshops-clang"
CLANG_CACHE_KEEP = 400  # objects (1 to 3 MB each): the newest used are kept


def clang_cache_dir():
    """Where the agents' compiled BPF objects are kept (hack/fleet/images/clang-cache), beside
    the Go builds: kept across fleets, so a warm machine's agents start without compiling."""
    return os.path.join(build.CACHE, "clang-bpf")


def trim_clang_cache(keep=CLANG_CACHE_KEEP):
    """Keep the ``keep`` objects used last; returns how many were removed."""
    top = clang_cache_dir()
    objs = []
    for d, _, files in os.walk(top):
        objs += [os.path.join(d, f) for f in files]
    def mtime(p):
        try:
            return os.stat(p).st_mtime
        except OSError:
            return 0
    objs.sort(key=mtime, reverse=True)
    for p in objs[keep:]:
        try:
            os.unlink(p)
        except OSError:
            pass
    return max(0, len(objs) - keep)


def images(state):
    """The images the fleet runs, by name (see Image)."""
    bins = state["binaries"]
    files = os.path.join(state["cilium_dir"], "image")
    out = {
        # images/clustermesh-apiserver/Dockerfile: the program, etcd, the etcd config, the ENV
        "clustermesh-apiserver": Image("clustermesh-apiserver", {
            "/usr/bin/clustermesh-apiserver": bins["clustermesh-apiserver"], "/usr/bin/etcd": bins["etcd"],
            "/var/lib/cilium/etcd-config.yaml": os.path.join(files, "var/lib/cilium/etcd-config.yaml")},
            {"GOPS_CONFIG_DIR": "/tmp/gops"}),
    }
    here = os.path.dirname(os.path.abspath(__file__))
    llvm = fleet_nodes.llvm_bin()
    if "cilium-agent" in bins and llvm:
        # images/cilium/Dockerfile: the agent and its tools, the CNI plugin, the BPF sources
        # (--lib-dir /var/lib/cilium), the init scripts, LLVM; built on an OS image (ours: /usr)
        binds = dict(("/usr/local/bin/" + b, bins[b]) for b in ("cilium-agent", "cilium-dbg", "cilium-health-responder"))
        # clang: the real one behind hack/fleet/images/clang-cache, which remembers the objects it
        # compiled (keyed by the preprocessed source and flags) across the fleet's many installs
        binds.update({"/usr/local/bin/clang": os.path.join(here, "images", "clang-cache"),
                      "/usr/local/bin/clang_cache.py": os.path.join(here, "images", "clang_cache.py"),
                      "/usr/local/bin/llc": os.path.join(llvm, "llc"),
                      "/opt/cni/bin/cilium-cni": bins["cilium-cni"]})
        for script in ("init-container.sh", "install-plugin.sh", "cni-uninstall.sh"):
            binds["/" + script] = os.path.join(files, script)
        # the agent writes its feature headers into bpf/: a copy per container
        out["cilium"] = Image("cilium", binds, {"HUBBLE_SERVER": "unix:///var/run/cilium/hubble.sock",
                                                "INITSYSTEM": "SYSTEMD",
                                                "MESHOPS_CLANG": os.path.join(llvm, "clang"),
                                                "MESHOPS_CLANG_CACHE": CLANG_CACHE_MOUNT}, base_os=True,
                              copies={"/var/lib/cilium/bpf": os.path.join(files, "var/lib/cilium/bpf")},
                              writable={CLANG_CACHE_MOUNT: clang_cache_dir()})
    if "agnhost" in bins:
        # test/images/agnhost/Dockerfile: ENTRYPOINT ["/agnhost"], our build of the same program
        out["agnhost"] = Image("agnhost", {"/agnhost": bins["agnhost"]}, {}, entrypoint=["/agnhost"])
    # e2e-test-images/busybox: CMD ["sh"]. Its shell and tools (sh, wget, tr, sleep) are this
    # machine's (Debian's dash and GNU wget): Debian's busybox 1.35 ends `wget -T` with a
    # segmentation fault here (exit 139), and the fleet downloads no image. wget is wrapped to
    # try once, as busybox's does.
    out["busybox"] = Image("busybox", {"/usr/local/bin/wget": os.path.join(here, "images", "busybox-wget")}, {},
                           base_os=True, cmd=["sh"])
    return out


class Runtime(object):
    def __init__(self, state, fleet_dir, repo):
        self.state, self.fleet_dir, self.repo = state, fleet_dir, repo
        self.tag = fleet_tag(fleet_dir)
        self.clusters = state["clusters"]
        self.images = images(state)
        trim_clang_cache()
        self.real_nodes = {}
        for c in self.clusters:
            for n in c["network"].get("real_nodes") or []:
                self.real_nodes[(c["name"], n["name"])] = fleet_nodes.Node(fleet_dir, self.tag, c, n)
        self.pods = {}
        self.service_names = {}
        self.proxy = Proxy()
        self._apis = {}
        self.nodes = {}
        self.errors = {}
        self.stopping = False

    def api(self, cluster):
        if cluster["name"] not in self._apis:
            from kubernetes import client, config  # noqa: PLC0415
            kc = os.path.join(cluster["dir"], "kubeconfig-fleet-kwok")
            self._apis[cluster["name"]] = client.CoreV1Api(config.new_client_from_config(config_file=kc))
        return self._apis[cluster["name"]]

    def node_ip(self, cluster, node_name):
        for n in self.nodes.get(cluster["name"], []):
            if n["metadata"]["name"] == node_name:
                for a in (n.get("status") or {}).get("addresses") or []:
                    if a["type"] == "InternalIP":
                        return a["address"]
        return None

    def reset_nodes_after_uninstall(self, cluster):
        """Once Cilium is uninstalled (no DaemonSet `cilium`) and nothing of it runs on a real
        node any more, the node starts afresh: new network namespace, BPF filesystem and cgroup,
        as after a reboot or `cilium-dbg post-uninstall-cleanup`. Without this, what an agent
        pinned and attached outlives it: an agent installed later with socket LB off cannot
        detach the cgroup programs one with socket LB on left ("can't detach program"), and
        never initialises its datapath."""
        nodes = [n for n in self.real_nodes.values() if n.cluster["name"] == cluster["name"] and n.created
                 and not any(p.node is n for p in self.pods.values())]
        if not nodes:
            return
        from kubernetes import client  # noqa: PLC0415
        apps = client.AppsV1Api(self.api(cluster).api_client)
        if any(d.metadata.name == "cilium" for d in apps.list_namespaced_daemon_set(NS, _request_timeout=5).items):
            return
        for node in nodes:
            node.delete()
            log("%s: Cilium uninstalled: node %s starts afresh (network namespace, BPF filesystem, cgroup)" % (
                cluster["name"], node.name))

    def agent_ready(self, node):
        """Whether the real agent pod on ``node`` is Ready (its readiness probe answered)."""
        return any(p.node is node and p.ready() and
                   (p.obj["metadata"].get("labels") or {}).get(AGENT_LABEL[0]) == AGENT_LABEL[1]
                   for p in self.pods.values())

    def is_real(self, cluster, pod):
        """The clustermesh-apiserver pods everywhere; on real nodes, the agent pods and workloads
        (every container of an image of WORKLOAD_IMAGES)."""
        labels = pod["metadata"].get("labels") or {}
        if labels.get(REAL_LABEL[0]) == REAL_LABEL[1] and pod["metadata"].get("namespace") == NS:
            return True
        if (cluster["name"], pod["spec"].get("nodeName")) not in self.real_nodes:
            return False
        if labels.get(AGENT_LABEL[0]) == AGENT_LABEL[1] and pod["metadata"].get("namespace") == NS:
            return "cilium" in self.images
        return is_workload(pod, self.images)

    def custom(self, cluster):
        from kubernetes import client  # noqa: PLC0415
        return client.CustomObjectsApi(self.api(cluster).api_client)

    def create_exec(self, cluster, pod):
        """A kwok Exec for this pod (kwok passes the pod's name to nothing else): `kubectl exec`
        into any of its containers runs our shims with the pod named, which enter the real
        container (hack/fleet/enter.py)."""
        env = [{"name": "MESHOPS_FLEET_CLUSTER", "value": cluster["name"]},
               {"name": "MESHOPS_FLEET_POD", "value": pod.name},
               {"name": "MESHOPS_FLEET_STATE", "value": os.path.join(self.fleet_dir, "state.json")}]
        execs = [{"containers": [c.name], "local": {"envs": env + [{"name": "MESHOPS_FLEET_CONTAINER", "value": c.name}]}}
                 for c in pod.containers]
        # and a kwok Logs object: `kubectl logs` (the API server's pod log endpoint) reads each
        # container's output
        logs = [{"containers": [c.name], "logsFile": c.cri_log} for c in pod.containers]
        for plural, kind, spec in (("execs", "Exec", {"execs": execs}), ("logs", "Logs", {"logs": logs})):
            body = {"apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": kind,
                    "metadata": {"name": pod.name, "namespace": pod.namespace}, "spec": spec}
            try:
                self.custom(cluster).create_namespaced_custom_object("kwok.x-k8s.io", "v1alpha1", pod.namespace,
                                                                     plural, body, _request_timeout=5)
            except Exception as e:  # noqa: BLE001 - 409 (exists) is fine; others are retried next round
                if getattr(e, "status", None) != 409:
                    raise
        pod.exec_object = True

    def delete_exec(self, cluster, pod):
        for plural in ("execs", "logs"):
            try:
                self.custom(cluster).delete_namespaced_custom_object("kwok.x-k8s.io", "v1alpha1", pod.namespace,
                                                                     plural, pod.name, _request_timeout=5)
            except Exception:  # noqa: BLE001 - gone already, or the API server is down: kwok ignores it
                pass

    def _pod_ip(self, cluster, node_name):
        idx = [n["metadata"]["name"] for n in self.nodes.get(cluster["name"], [])]
        node = sorted(idx).index(node_name) if node_name in idx else 0
        used = set(p.ip for p in self.pods.values())
        for k in range(200, 250):
            ip = "%s.%d" % (cluster["network"]["node_cidrs"][node].rsplit(".", 1)[0], k)
            if ip not in used:
                return ip
        raise OSError("no free pod IP on %s" % node_name)

    def sync_cluster(self, cluster, desired):
        api = self.api(cluster)
        name = cluster["name"]
        pods = listed(api.list_namespaced_pod, NS, label_selector="%s=%s" % REAL_LABEL)
        # everything bound to a real node (agents and workloads), in every namespace
        for node in self.real_nodes.values():
            if node.cluster["name"] == name:
                pods += listed(api.list_pod_for_all_namespaces, field_selector="spec.nodeName=%s" % node.name)
        live = {}
        for p in pods:
            if p["metadata"].get("deletionTimestamp") or not p["spec"].get("nodeName"):
                continue
            if not self.is_real(cluster, p):
                continue
            live[p["metadata"]["uid"]] = p
        for uid, pod in list(self.pods.items()):
            if pod.cluster["name"] == name and uid not in live:
                pod.stop()
                self.delete_exec(cluster, pod)
                del self.pods[uid]
        self.reset_nodes_after_uninstall(cluster)
        if not live:
            # nothing runs for real here (no Cilium, or not yet): no volume to write, no Service to serve but
            # the API server. A cluster of the fleet without Cilium costs a round its pod lists, not six lists.
            desired.update(self.api_server_listeners(cluster))
            return
        self.nodes[name] = listed(api.list_node)
        # the Secrets and ConfigMaps of the namespaces with a real pod (volumes, env)
        secrets, configmaps = {}, {}
        for ns in sorted(set(p["metadata"]["namespace"] for p in live.values()) | {NS}):
            # not Helm's release records (labelled owner=helm): no pod mounts them, and with their
            # charts they are most of a namespace's Secrets (about 0.6 MB per Cilium revision), listed
            # every round of every cluster
            secrets[ns] = dict((x["metadata"]["name"], x)
                               for x in listed(api.list_namespaced_secret, ns, label_selector="owner!=helm"))
            configmaps[ns] = dict((x["metadata"]["name"], x) for x in listed(api.list_namespaced_config_map, ns))
        for uid, p in live.items():
            pod = self.pods.get(uid)
            if pod is None:
                node = self.real_nodes.get((name, p["spec"]["nodeName"]))
                pod = self.pods[uid] = Pod(self, cluster, p, self._pod_ip(cluster, p["spec"]["nodeName"]), node)
            pod.obj = p
            if not pod.exec_object:
                self.create_exec(cluster, pod)
            try:
                pod.step(secrets[pod.namespace], configmaps[pod.namespace])
            except Missing as e:
                pod.waiting = "waiting for %s" % e
            except Exception as e:  # noqa: BLE001 - one pod's failure must not hold the cluster's others
                msg = "%s: %s" % (type(e).__name__, str(e).splitlines()[0][:300] if str(e) else "")
                if pod.waiting != msg:
                    log("%s: %s" % (pod.key, msg))
                pod.waiting = msg
            pod.probe()
            st = pod.status()
            if st != pod.status_sent:
                try:
                    api.patch_namespaced_pod_status(pod.name, pod.namespace, {"status": st}, _request_timeout=5)
                except Exception as e:  # noqa: BLE001 - one pod's refusal must not hold the others
                    self.status_refused(api, pod, e)
                    continue
                if (pod.status_sent or {}).get("conditions") != st["conditions"]:
                    log("%s: %s, Ready=%s" % (pod.key, st["phase"], pod.ready()))
                pod.status_sent = st
        # Services selecting a real pod: LB ingress IP:port and node IP:nodePort -> Ready pods
        services = listed(api.list_service_for_all_namespaces)
        self.service_names[name] = service_hosts(services)
        # the proxy below stands in for kube-proxy for the kube-system Services of real pods
        # (clustermesh-apiserver); the workloads' Services are Cilium's to serve
        for svc in services:
            if svc["metadata"]["namespace"] != NS:
                continue
            sel = svc["spec"].get("selector") or {}
            if not sel:
                continue
            backends_pods = [pod for pod in self.pods.values() if pod.cluster["name"] == name and pod.ready()
                             and all((pod.obj["metadata"].get("labels") or {}).get(k) == v for k, v in sel.items())]
            if not backends_pods:
                continue
            ingress = [i.get("ip") for i in ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []
                       if i.get("ip")]
            node_ips = [self.node_ip(cluster, n["metadata"]["name"]) for n in self.nodes[name]]
            for port in svc["spec"].get("ports") or []:
                if port.get("protocol", "TCP") != "TCP":
                    continue
                backends = [(pod.ip, _target_port(pod, port)) for pod in backends_pods]
                backends = [b for b in backends if b[1]]
                if not backends:
                    continue
                if svc["spec"].get("type") == "LoadBalancer":
                    for ip in ingress:
                        desired[(ip, int(port["port"]))] = backends
                # the ClusterIP inside each real node, as kube-proxy serves it there
                cluster_ip = svc["spec"].get("clusterIP")
                if cluster_ip and cluster_ip != "None":
                    for node in self.real_nodes.values():
                        if node.cluster["name"] == name and node.created:
                            desired[(cluster_ip, int(port["port"]), node.netns)] = backends
                if svc["spec"].get("type") in ("NodePort", "LoadBalancer") and port.get("nodePort"):
                    for ip in node_ips:
                        # real nodes' IPs are on the underlay, not on this host
                        if ip and ip.startswith("127."):
                            desired[(ip, int(port["nodePort"]))] = backends
        desired.update(self.api_server_listeners(cluster))

    def status_refused(self, api, pod, error):
        """The API server refused a pod's status. A pod whose network was made anew (after a
        restart of this runtime, the CNI plugin gives another address) cannot change its podIP:
        it is deleted, and its owner makes a new one, as after a lost sandbox. Other refusals are
        logged once and retried next round."""
        body = str(getattr(error, "body", "") or error)
        if getattr(error, "status", None) == 422 and "podIP" in body:
            log("%s: its address changed to %s (network made anew) and a pod's IP cannot change: deleting it "
                "for its owner to replace" % (pod.key, pod.ip))
            try:
                api.delete_namespaced_pod(pod.name, pod.namespace, grace_period_seconds=0, _request_timeout=5)
            except Exception as e:  # noqa: BLE001 - gone already; or retried next round
                log("%s: delete: %s" % (pod.key, str(e).splitlines()[0][:200]))
            return
        msg = "%s: status refused: %s" % (pod.key, " ".join(body.split())[:300])
        if pod.waiting != msg:
            log(msg)
        pod.waiting = msg

    def api_server_listeners(self, cluster):
        """Where pods and nodes reach their API server: the `kubernetes` VIP on this host, and
        on each real node the address of the fleet's kubeconfigs (127.0.0.1:<port>), which
        inventories give as k8sServiceHost/Port; both lead to the API server on this host."""
        port = cluster["ports"]["apiserver"]
        out = {kubernetes_vip(cluster): [("127.0.0.1", port)]}
        for node in self.real_nodes.values():
            if node.cluster["name"] == cluster["name"] and node.created:
                out[("127.0.0.1", port, node.netns)] = [("127.0.0.1", port)]
        return out

    def exited_clusters(self):
        """Names of the clusters with a container whose process has exited and is not handled yet."""
        return set(pod.cluster["name"] for pod in self.pods.values()
                   for c in pod.inits + pod.containers if c.proc is not None and c.proc.poll() is not None)

    def due_clusters(self, only, synced_at, now, interval):
        """Names of the clusters a round syncs: all of them in a round of the interval (``only`` None);
        in a round woken by exits, the clusters in ``only`` and every cluster not synced for
        ``interval`` seconds (``synced_at``: name -> time of its last sync). A stream of exits in one
        cluster (its init containers completing one after another) wakes round after round before the
        interval is out: without the second rule, the other clusters' pods would wait for it to end."""
        names = [c["name"] for c in self.clusters]
        if only is None:
            return set(names)
        return set(n for n in names if n in only or now - synced_at.get(n, 0) >= interval)

    def save(self):
        data = dict((p.key, p.describe()) for p in self.pods.values())
        tmp = pods_file(self.fleet_dir) + ".tmp"
        with open(tmp, "w") as f:
            json.dump(data, f, indent=1)
        os.replace(tmp, pods_file(self.fleet_dir))

    def run(self, interval=1.0):
        # a round every `interval` seconds, and at once when a child process exits (an init container
        # completed, a container crashed): as a kubelet's pod lifecycle events do, the next init
        # container starts without waiting out the interval. Exits during a round (its own helper
        # processes: ip, the CNI plugin) are that round's own business and wake nothing.
        # Woken through a pipe that Python's own C-level signal handler writes to (set_wakeup_fd): a
        # Python handler that took a lock (threading.Event.set) deadlocked the runtime for good when a
        # second SIGCHLD arrived while the first one's handler held it (seen in CI: every pod stuck).
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)

        def stop(*_):
            self.stopping = True
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        # `hack.fleet` and the tests send SIGUSR1 when no round ends: the stacks go to the log
        faulthandler.register(signal.SIGUSR1, file=sys.stderr, all_threads=True)
        log("pod runtime for %d clusters (fleet tag %s): real pods are those labelled %s=%s in %s" % (
            len(self.clusters), self.tag, REAL_LABEL[0], REAL_LABEL[1], NS))
        # each cluster's proxy entries from its last sync: a round woken by an exit syncs only the
        # clusters whose containers exited (the next init container of a pod starts after one
        # cluster's lists, not every cluster's); the rounds of the interval sync them all
        desired_by = {}
        synced_at = {}  # name -> when it was last synced
        only = None
        while not self.stopping:
            due = self.due_clusters(only, synced_at, time.time(), interval)
            for c in self.clusters:
                if c["name"] not in due:
                    continue
                synced_at[c["name"]] = time.time()
                mine = {}
                try:
                    self.sync_cluster(c, mine)
                    if self.errors.pop(c["name"], None):
                        log("%s: reachable again" % c["name"])
                except Exception as e:  # noqa: BLE001 - a stopped API server must not stop the loop
                    msg = str(e).splitlines()[0][:300] if str(e) else type(e).__name__
                    if self.errors.get(c["name"]) != msg:
                        log("%s: %s: %s" % (c["name"], type(e).__name__, msg))
                    self.errors[c["name"]] = msg
                    # keep the listeners of a cluster whose API server cannot be read
                    api_keys = self.api_server_listeners(c)
                    for key, lst in self.proxy.listeners.items():
                        if any(p.ip == b[0] for p in self.pods.values() if p.cluster["name"] == c["name"]
                               for b in lst.backends) or key in api_keys:
                            mine.setdefault(key, lst.backends)
                desired_by[c["name"]] = mine
            desired = {}
            for name in sorted(desired_by):
                desired.update(desired_by[name])
            try:
                self.proxy.reconcile(desired)
                self.save()
            except Exception as e:  # noqa: BLE001 - one bad round must not stop every real pod
                log("round failed: %s: %s" % (type(e).__name__, e))
            # the exits during the round (its own helper processes) wake nothing
            drain(wake_r)
            if self.stopping:
                break
            if not select.select([wake_r], [], [], interval)[0]:
                only = None
                continue
            drain(wake_r)
            # woken by an exit: a short pause lets the exits of one moment share the next round
            time.sleep(WAKE_PAUSE)
            only = self.exited_clusters() or None

        log("stopping %d pods" % len(self.pods))
        for pod in list(self.pods.values()):
            pod.stop()
        self.pods = {}
        for node in self.real_nodes.values():
            node.delete()
        self.save()
        self.proxy.close()


def drain(fd):
    """Read a non-blocking pipe empty."""
    try:
        while os.read(fd, 512):
            pass
    except BlockingIOError:
        pass


def listed(call, *args, **kwargs):
    """The items of a list call as the API server's own JSON (dicts with its field names), read
    without building the client's model objects: the runtime lists every cluster each second, and
    building and flattening those objects again cost it most of its CPU (about 15 % of a core)."""
    resp = call(*args, _request_timeout=5, _preload_content=False, **kwargs)
    try:
        return json.loads(resp.data).get("items") or []
    finally:
        resp.release_conn()


def _target_port(pod, port):
    tp = port.get("targetPort", port["port"])
    if str(tp).isdigit():
        return int(tp)
    for c in pod.obj["spec"].get("containers") or []:
        for p in c.get("ports") or []:
            if p.get("name") == tp:
                return int(p["containerPort"])
    return None


def stop_leftovers(fleet_dir):
    """Kill container processes a dead runtime left behind and delete this fleet's namespaces."""
    killed = 0
    for pod in load_pods(fleet_dir).values():
        for c in pod.get("containers", {}).values():
            pid = c.get("pid")
            if pid and _pid_alive(pid):
                try:
                    os.killpg(pid, signal.SIGKILL)
                    killed += 1
                except OSError:
                    pass
    return killed, cleanup_namespaces(fleet_dir)


# ----------------------------------------------------------------------------- in the pod
def run_container(spec_file):
    """Inside the pod's network namespace (ip netns exec): a private mount namespace, the
    container's mounts under its root, chroot, exec the container's command."""
    with open(spec_file) as f:
        spec = json.load(f)
    root = spec["rootfs"]
    if spec.get("hostname"):
        socket.sethostname(spec["hostname"])
    _run("mount", "--make-rprivate", "/")
    _run("mount", "--rbind", "/dev", os.path.join(root, "dev"))
    _run("mount", "-t", "proc", "proc", os.path.join(root, "proc"))
    # sysfs of this network namespace (its own devices), as a container runtime mounts it
    _run("mount", "-t", "sysfs", "sysfs", os.path.join(root, "sys"))
    # parents before children: /var/run/cilium before /var/run/cilium/netns
    for src, dst, ro in sorted(spec["binds"], key=lambda b: b[1].rstrip("/").count("/")):
        target = os.path.join(root, dst.lstrip("/"))
        try:
            if os.path.isdir(src):
                os.makedirs(target, exist_ok=True)
            elif not os.path.exists(target):
                os.makedirs(os.path.dirname(target), exist_ok=True)
                open(target, "a").close()
        except OSError as e:
            # e.g. /lib/modules on a host without it: the target would be inside the read-only
            # /usr of the image's base OS
            sys.stderr.write("[fleet] not mounting %s at %s: %s\n" % (src, dst, e))
            continue
        _run("mount", "--bind", src, target)
        if ro:
            _run("mount", "-o", "remount,bind,ro", target)
    os.chroot(root)
    os.chdir(spec["workdir"])
    os.execvpe(spec["argv"][0], spec["argv"], spec["env"])


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "run-container":
        run_container(sys.argv[2])
    else:
        sys.exit("usage: python -m hack.fleet.pods run-container SPEC.json (exec: hack/fleet/enter.py)")
