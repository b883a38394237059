"""Real nodes of the fleet: where Cilium's own agent runs with its BPF datapath.

The first ``REAL_NODES`` nodes of every cluster (``MESHOPS_FLEET_REAL_NODES``, default 1) are
real in this sense; the others stay kwok-simulated. A real node is what a kubelet's host gives
the pods that run on it:

* a network namespace of its own (``meshops-<fleet tag>-<hash>``) with ``lo`` and ``eth0``, one
  end of a veth pair whose other end is a port of the fleet's underlay bridge ``mb<fleet tag>``
  (one bridge for the nodes of all clusters). ``eth0`` carries the node's InternalIP on the
  underlay ``172.<20 + k>.0.0/16`` (``172.<20+k>.<cluster>.<11 + node>``), an address that exists
  only inside these namespaces; nodes reach each other over the bridge (Cilium's VXLAN tunnels
  run there), and the host's loopback addresses (the API servers' ``kubernetes`` VIPs, the
  clustermesh-apiservers' load-balancer IPs) through the bridge, as pods reach them through
  their veth (``route_localnet``, the link-local gateway 169.254.1.1, the bridge's only
  address on the host).
* a root directory ``.fleet/nodes/<cluster>/<node>/root`` for the hostPath volumes of its
  pods (``/var/run/cilium``, ``/opt/cni/bin``, ``/etc/cni/net.d``, ...), with its own BPF
  filesystem mounted at ``sys/fs/bpf`` and its own cgroup (a child of the host's cgroup2
  hierarchy, ``meshops-<fleet tag>-<hash>``) bound at ``run/cilium/cgroupv2``, so that nothing
  an agent pins or attaches reaches the host's or another node's.

Pods with ``hostNetwork`` on a real node run in its namespace, with the node's IP as pod IP.
"""
import gzip
import hashlib
import os
import re
import subprocess
import threading

REAL_NODES = int(os.environ.get("MESHOPS_FLEET_REAL_NODES", "1"))

# hostPath volumes that are the host's own on a real node (read through the node's namespaces):
# the agent reads sysctls of its own network namespace through /proc/sys/net, kernel modules
# are the host's, and pod network namespaces are named in /var/run/netns by `ip netns`.
HOST_PATHS = ("/proc", "/proc/sys/net", "/proc/sys/kernel", "/lib/modules", "/var/run/netns",
              "/run/netns")


def _run(*argv, check=True):
    proc = subprocess.run(list(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    if check and proc.returncode != 0:
        raise OSError("%s: %s" % (" ".join(argv), proc.stdout.strip()))
    return proc


def underlay_ip(fleet_number, cluster_index, node_index):
    return "172.%d.%d.%d" % (20 + fleet_number, cluster_index, 11 + node_index)


def underlay_cidr(fleet_number):
    return "172.%d.0.0/16" % (20 + fleet_number)


def bridge_name(tag):
    return "mb%s" % tag


GATEWAY = "169.254.1.1"


def bridge_mac(tag):
    """A fixed, locally administered MAC for the bridge: a bridge otherwise takes the lowest MAC
    of its ports, which changes as nodes come and go."""
    h = hashlib.sha1(("bridge" + tag).encode()).hexdigest()
    return "02:%s:%s:%s:%s:%s" % (h[0:2], h[2:4], h[4:6], h[6:8], h[8:10])


def ensure_bridge(tag):
    """The underlay bridge of this fleet. Its only address on the host is the nodes' link-local
    gateway (169.254.1.1/32): Cilium's agent manages the neighbour entry of a node's gateway
    (it re-resolves it with ARP), so the gateway must answer ARP."""
    br = bridge_name(tag)
    if not os.path.exists("/sys/class/net/%s" % br):
        _run("ip", "link", "add", br, "address", bridge_mac(tag), "type", "bridge")
    _run("ip", "link", "set", br, "address", bridge_mac(tag))
    _run("ip", "addr", "replace", GATEWAY + "/32", "dev", br, "scope", "link")
    _run("ip", "link", "set", br, "up")
    _run("sysctl", "-qw", "net.ipv4.conf.%s.route_localnet=1" % br)
    # nodes reach the fleet's other pods (their own netns on this host) through it: forwarding
    # on the fleet's links only, not the host's net.ipv4.ip_forward
    _run("sysctl", "-qw", "net.ipv4.conf.%s.forwarding=1" % br)
    return br


def delete_bridge(tag):
    _run("ip", "link", "del", bridge_name(tag), check=False)


def cgroup2_root(fleet_dir):
    """Where the host's cgroup2 hierarchy is mounted (mounted under the fleet dir if nowhere)."""
    with open("/proc/mounts") as f:
        for line in f:
            parts = line.split()
            if len(parts) > 2 and parts[2] == "cgroup2":
                return parts[1]
    path = os.path.join(fleet_dir, "cgroup2")
    os.makedirs(path, exist_ok=True)
    _run("mount", "-t", "cgroup2", "none", path)
    return path


def mounts_under(path):
    path = os.path.abspath(path) + "/"
    with open("/proc/mounts") as f:
        points = [line.split()[1] for line in f]
    points = [p.encode().decode("unicode_escape") for p in points]
    return sorted((p for p in points if (p + "/").startswith(path)), key=len, reverse=True)


class Node(object):
    """One real node: its network namespace on the underlay, its root directory and mounts."""

    def __init__(self, fleet_dir, tag, cluster, spec):
        """``spec``: {"name", "ip" (underlay), "pod_cidr"} from the fleet state."""
        self.fleet_dir, self.tag, self.cluster = fleet_dir, tag, cluster
        self.name, self.ip, self.pod_cidr = spec["name"], spec["ip"], spec["pod_cidr"]
        h = hashlib.sha1((tag + "node/" + cluster["name"] + "/" + self.name).encode()).hexdigest()[:6]
        self.netns = "meshops-%s-%s" % (tag, h)
        self.host_if = "mh%s%s" % (tag, h)
        self.cgroup_name = "meshops-%s-%s" % (tag, h)
        self.dir = os.path.join(fleet_dir, "nodes", cluster["name"], self.name)
        self.root = os.path.join(self.dir, "root")
        self.cgroup = None
        self.created = False

    def host_path(self, path):
        """Where a hostPath volume of a pod on this node lives on the machine."""
        path = os.path.normpath("/" + path.lstrip("/"))
        if path in HOST_PATHS and os.path.exists(path):
            return path
        return os.path.join(self.root, path.lstrip("/"))

    def create(self):
        self.delete()
        br = ensure_bridge(self.tag)
        ns, host = self.netns, self.host_if
        inside = ["ip", "netns", "exec", ns]
        _run("ip", "netns", "add", ns)
        _run("ip", "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", ns)
        _run("ip", "link", "set", host, "master", br)
        _run("ip", "link", "set", host, "up")
        _run(*inside, "ip", "link", "set", "lo", "up")
        _run(*inside, "ip", "addr", "del", "127.0.0.1/8", "dev", "lo", check=False)
        _run(*inside, "ip", "addr", "add", "127.0.0.1/32", "dev", "lo", check=False)
        prefix = underlay_cidr_of(self.ip)
        _run(*inside, "ip", "addr", "add", "%s/%s" % (self.ip, prefix.split("/")[1]), "dev", "eth0")
        _run(*inside, "ip", "link", "set", "eth0", "up")
        _run(*inside, "sysctl", "-qw", "net.ipv4.conf.eth0.route_localnet=1")
        _run(*inside, "sysctl", "-qw", "net.ipv4.conf.all.route_localnet=1")
        br_mac = open("/sys/class/net/%s/address" % br).read().strip()
        node_mac = _run(*inside, "cat", "/sys/class/net/eth0/address").stdout.strip()
        # everything off the underlay (the host's loopback addresses) goes to the host
        _run(*inside, "ip", "route", "add", "default", "via", GATEWAY, "dev", "eth0", "onlink")
        _run(*inside, "ip", "neigh", "replace", GATEWAY, "lladdr", br_mac, "dev", "eth0", "nud", "permanent")
        # the cluster's Service CIDR is local in the node: the fleet's kube-proxy (the pod
        # runtime's proxy) listens on each ClusterIP:port there
        _run(*inside, "ip", "route", "add", "local", self.cluster["network"]["service_cidr"], "dev", "lo")
        _run("ip", "route", "replace", self.ip + "/32", "dev", br)
        _run("ip", "neigh", "replace", self.ip, "lladdr", node_mac, "dev", br, "nud", "permanent")
        # the pods Cilium wires on this node, as a cloud's route table sends a node's pod CIDR to it
        _run("ip", "route", "replace", self.pod_cidr, "via", self.ip, "dev", br)
        for d in ("sys/fs/bpf", "run/cilium/cgroupv2", "var/run/cilium", "opt/cni/bin", "etc/cni/net.d"):
            os.makedirs(os.path.join(self.root, d), exist_ok=True)
        _run("mount", "-t", "bpf", "bpf", os.path.join(self.root, "sys/fs/bpf"))
        self.cgroup = os.path.join(cgroup2_root(self.fleet_dir), self.cgroup_name)
        os.makedirs(self.cgroup, exist_ok=True)
        _run("mount", "--bind", self.cgroup, os.path.join(self.root, "run/cilium/cgroupv2"))
        self.created = True

    def delete(self):
        for point in mounts_under(self.dir):
            _run("umount", "-l", point, check=False)
        _run("ip", "route", "del", self.pod_cidr, check=False)
        _run("ip", "link", "del", self.host_if, check=False)
        _run("ip", "netns", "del", self.netns, check=False)
        cg = os.path.join(cgroup2_root(self.fleet_dir), self.cgroup_name)
        if os.path.isdir(cg):
            remove_cgroup(cg)
        self.created = False

    def describe(self):
        return {"cluster": self.cluster["name"], "name": self.name, "ip": self.ip, "pod_cidr": self.pod_cidr,
                "netns": self.netns,
                "veth": self.host_if, "root": self.root, "cgroup": self.cgroup}


def underlay_cidr_of(ip):
    return "172.%s.0.0/16" % ip.split(".")[1]


def remove_cgroup(path):
    """Move what is left in a cgroup (and its children) to the root, then remove them."""
    for dirpath, dirnames, _ in sorted(os.walk(path), key=lambda x: -len(x[0])):
        try:
            with open(os.path.join(dirpath, "cgroup.procs")) as f:
                pids = f.read().split()
        except OSError:
            pids = []
        root = re.sub(r"/meshops-[^/]+.*$", "", dirpath)
        for pid in pids:
            try:
                with open(os.path.join(root, "cgroup.procs"), "w") as f:
                    f.write(pid)
            except OSError:
                pass
        try:
            os.rmdir(dirpath)
        except OSError:
            pass


def cleanup(fleet_dir, tag):
    """Unmount what the fleet's real nodes mounted and remove their cgroups and the bridge (the
    namespaces and veths go with pods.cleanup_namespaces: same name prefixes)."""
    n = 0
    for point in mounts_under(os.path.join(fleet_dir, "nodes")):
        _run("umount", "-l", point, check=False)
        n += 1
    try:
        root = cgroup2_root(fleet_dir)
        for name in os.listdir(root):
            if name.startswith("meshops-%s-" % tag):
                remove_cgroup(os.path.join(root, name))
    except OSError:
        pass
    delete_bridge(tag)
    return n


# ----------------------------------------------------------------------------- sockets in a netns
def netns_socket(netns_name, family, kind):
    """A socket created inside the network namespace ``/var/run/netns/<netns_name>`` (setns in a
    short-lived thread: a namespace switch belongs to the calling thread only); it can then be
    used from any thread, e.g. to probe a container's 127.0.0.1."""
    import ctypes  # noqa: PLC0415
    import socket  # noqa: PLC0415
    result = {}

    def enter():
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open("/var/run/netns/%s" % netns_name, os.O_RDONLY)
            try:
                if libc.setns(fd, 0x40000000) != 0:  # CLONE_NEWNET
                    raise OSError(ctypes.get_errno(), "setns %s" % netns_name)
            finally:
                os.close(fd)
            result["sock"] = socket.socket(family, kind)
        except Exception as e:  # noqa: BLE001 - handed to the caller
            result["error"] = e
    t = threading.Thread(target=enter, daemon=True)
    t.start()
    t.join()
    if "error" in result:
        raise result["error"]
    return result["sock"]


# The LLVM that compiles the agent's BPF programs: Cilium 1.20's images ship LLVM 19 (documented
# minimum 18.1). Debian names its programs clang-19 and llc-19; the agent runs `clang` and `llc`.
LLVM_VERSIONS = (19, 20, 18)
HOST_PACKAGES = ("clang-19", "llvm-19", "iptables")


def llvm_bin():
    """The directory holding `clang` and `llc` of a supported LLVM, or None."""
    for v in LLVM_VERSIONS:
        d = "/usr/lib/llvm-%d/bin" % v
        if os.path.exists(os.path.join(d, "clang")) and os.path.exists(os.path.join(d, "llc")):
            return d
    return None


def ensure_host_packages(log):
    """The real agent needs LLVM (clang, llc) and iptables on this machine: install the Debian
    packages when they are missing and apt-get can (root), as the lint and sanity scripts do for
    shellcheck; otherwise say what is missing."""
    missing = []
    if llvm_bin() is None:
        missing += ["clang-19", "llvm-19"]
    if not any(os.path.exists(os.path.join(d, "iptables")) for d in ("/usr/sbin", "/sbin", "/usr/bin")):
        missing.append("iptables")
    if not missing:
        return
    if os.geteuid() != 0 or not any(os.path.exists(os.path.join(d, "apt-get")) for d in ("/usr/bin", "/bin")):
        raise SystemExit("the fleet's real nodes need the Debian packages %s (Cilium's agent compiles its BPF "
                         "programs with clang/llc and programs iptables); install them, or set "
                         "MESHOPS_FLEET_REAL_NODES=0" % ", ".join(missing))
    log("installing %s for Cilium's agent on the real nodes (apt-get)" % ", ".join(missing))
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for argv in (["apt-get", "update", "-qq"],
                 ["apt-get", "install", "-y", "-qq", "--no-install-recommends"] + missing):
        proc = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
        if proc.returncode != 0:
            raise SystemExit("%s failed:\n%s" % (" ".join(argv), proc.stdout[-3000:]))


# What Cilium's IPsec datapath needs of the kernel: ESP states in xfrm (CONFIG_INET_ESP) with the
# algorithms of Cilium's keys, rfc4106(gcm(aes)) by default (CONFIG_CRYPTO_GCM), or
# hmac(sha256) with cbc(aes). Each is tried as an xfrm state in a throwaway network namespace.
IPSEC_PROBES = (
    ("rfc4106(gcm(aes))", ["aead", "rfc4106(gcm(aes))", "0x" + "11" * 20, "128"]),
    ("hmac(sha256) + cbc(aes)", ["auth", "hmac(sha256)", "0x" + "22" * 32, "enc", "cbc(aes)", "0x" + "33" * 16]),
)


def _kernel_config(*names):
    """{name: value} of the running kernel's config (/proc/config.gz), 'not set' for the absent."""
    try:
        with gzip.open("/proc/config.gz", "rt") as f:
            text = f.read()
    except OSError:
        return {}
    out = {}
    for n in names:
        m = re.search(r"^%s=(\S+)$" % n, text, re.M)
        out[n] = m.group(1) if m else "not set"
    return out


def ipsec_support():
    """(True, how) when this kernel can run Cilium's IPsec datapath in the fleet's namespaces, else
    (False, exactly why: each probe's error, the kernel options and whether modules can be loaded)."""
    ns = "meshops-ipsec-probe-%d" % os.getpid()
    _run("ip", "netns", "add", ns)
    errors = []
    try:
        for name, algo in IPSEC_PROBES:
            p = _run("ip", "netns", "exec", ns, "ip", "xfrm", "state", "add", "src", "192.0.2.1", "dst", "192.0.2.2",
                     "proto", "esp", "spi", "0x100", "reqid", "1", "mode", "tunnel", *algo, check=False)
            if p.returncode == 0:
                return True, "xfrm ESP state with %s accepted" % name
            errors.append("%s: %s" % (name, p.stdout.strip() or "exit %d" % p.returncode))
    finally:
        _run("ip", "netns", "del", ns, check=False)
    config = _kernel_config("CONFIG_XFRM_USER", "CONFIG_INET_ESP", "CONFIG_CRYPTO_GCM")
    release = os.uname().release
    modules = os.path.isdir("/lib/modules/%s" % release)
    return False, "`ip xfrm state add ... proto esp` fails (%s); kernel %s: %s; %s" % (
        "; ".join(errors), release, ", ".join("%s=%s" % kv for kv in sorted(config.items())) or "no /proc/config.gz",
        "modules under /lib/modules/%s" % release if modules else "no /lib/modules/%s, so none can be loaded" % release)
