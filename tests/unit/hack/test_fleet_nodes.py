"""The fleet's real nodes and how the pod runtime treats what runs on them (hack/fleet/nodes.py,
hack/fleet/pods.py): pure parts only; the running agent is tested against the fleet."""
import os

import pytest
import yaml

from hack.fleet import nodes, pods, runner

CLUSTER = {"name": "mesh-2", "network": {"service_cidr": "10.102.0.0/16"}}
SPEC = {"name": "mesh-2-node-1", "ip": "172.20.2.11", "pod_cidr": "10.2.0.0/24"}


def test_underlay_addresses_are_per_fleet_cluster_and_node():
    assert nodes.underlay_ip(0, 2, 0) == "172.20.2.11"
    assert nodes.underlay_ip(1, 2, 0) == "172.21.2.11"
    assert nodes.underlay_cidr_of("172.21.2.11") == nodes.underlay_cidr(1) == "172.21.0.0/16"


def test_node_names_are_distinct_per_fleet_and_cluster(tmp_path):
    a = nodes.Node(str(tmp_path), "aaaa", CLUSTER, SPEC)
    b = nodes.Node(str(tmp_path), "bbbb", CLUSTER, SPEC)
    c = nodes.Node(str(tmp_path), "aaaa", dict(CLUSTER, name="mesh-3"), dict(SPEC, name="mesh-3-node-1"))
    assert len({a.netns, b.netns, c.netns}) == 3
    # the runtime's cleanup finds them by the fleet's prefixes
    assert a.netns.startswith("meshops-aaaa-") and a.host_if.startswith("mhaaaa")
    assert len(a.host_if) <= 15  # IFNAMSIZ


def test_host_paths_map_into_the_node_unless_they_are_the_hosts_own(tmp_path):
    node = nodes.Node(str(tmp_path), "aaaa", CLUSTER, SPEC)
    assert node.host_path("/var/run/cilium") == os.path.join(node.root, "var/run/cilium")
    assert node.host_path("/sys/fs/bpf") == os.path.join(node.root, "sys/fs/bpf")
    assert node.host_path("/etc/cni/net.d/") == os.path.join(node.root, "etc/cni/net.d")
    # /proc/sys/net is read through the reader's own network namespace
    assert node.host_path("/proc/sys/net") == "/proc/sys/net"
    # a host path the machine lacks becomes the node's own (never created on the host)
    missing = "/proc/sys/definitely-not-here"
    nodes.HOST_PATHS += (missing,)
    try:
        assert node.host_path(missing) == os.path.join(node.root, missing.lstrip("/"))
    finally:
        nodes.HOST_PATHS = nodes.HOST_PATHS[:-1]


@pytest.mark.parametrize("ref,name", [
    ("quay.io/cilium/cilium:v1.20.2@sha256:abc", "cilium"),
    ("quay.io/cilium/clustermesh-apiserver:v1.20.2", "clustermesh-apiserver"),
    ("registry:5000/mirror/cilium/cilium@sha256:abc", "cilium"),
    ("", ""),
])
def test_image_of(ref, name):
    assert pods.image_of({"image": ref}) == name


def test_image_mounts_put_the_base_os_read_only_and_parents_first(tmp_path):
    img = pods.Image("cilium", {"/usr/local/bin/cilium-agent": "/build/cilium-agent"}, {}, base_os=True,
                     copies={"/var/lib/cilium/bpf": str(tmp_path / "bpf")})
    mounts = img.mounts()
    assert all(m[2] for m in mounts)
    targets = [m[1] for m in mounts]
    assert "/usr/local" not in targets and "/usr/bin" in targets
    assert targets[-1] == "/usr/local/bin/cilium-agent"
    (tmp_path / "bpf" / "include").mkdir(parents=True)
    (tmp_path / "bpf" / "include" / "x.h").write_text("x")
    root = tmp_path / "root"
    root.mkdir()
    img.prepare(str(root))
    # a writable copy, not a bind: the agent writes its feature headers there
    assert (root / "var/lib/cilium/bpf/include/x.h").read_text() == "x"
    assert os.readlink(str(root / "bin")) == "usr/bin"


def test_etc_hosts_names_the_services_for_host_network_pods():
    pod = {"metadata": {"name": "cilium-x"}, "spec": {"hostAliases": [{"ip": "127.0.2.200", "hostnames": ["mesh-2.mesh.cilium.io"]}]}}
    text = pods.etc_hosts(pod, "172.20.1.11", [("10.101.0.7", ["clustermesh-apiserver.kube-system.svc"])]).decode()
    assert "172.20.1.11\tcilium-x\n" in text
    assert "10.101.0.7\tclustermesh-apiserver.kube-system.svc\n" in text
    assert "127.0.2.200\tmesh-2.mesh.cilium.io\n" in text
    assert "svc" not in pods.etc_hosts(pod, "10.1.0.5").decode()


def test_cni_call_is_what_a_kubelet_makes():
    conflist = {"cniVersion": "0.3.1", "name": "cilium", "plugins": [
        {"type": "cilium-cni", "enable-debug": False, "log-file": "/var/run/cilium/cilium-cni.log"}]}
    conf = pods.cni_netconf(conflist, "/fleet/nodes/n/root/var/run/cilium/cilium-cni.log")
    assert conf == {"type": "cilium-cni", "enable-debug": False, "cniVersion": "0.3.1", "name": "cilium",
                    "log-file": "/fleet/nodes/n/root/var/run/cilium/cilium-cni.log"}
    pod = {"metadata": {"name": "echo-1", "namespace": "default", "uid": "u-1"}}
    env = pods.cni_env("ADD", pod, "meshops-aaaa-123456", "/fleet/nodes/n/root/opt/cni/bin", "/sock")
    assert env["CNI_COMMAND"] == "ADD" and env["CNI_NETNS"] == "/var/run/netns/meshops-aaaa-123456"
    assert env["CNI_IFNAME"] == "eth0" and env["CNI_CONTAINERID"] == "u-1" and env["CILIUM_SOCK"] == "/sock"
    assert "K8S_POD_NAMESPACE=default;K8S_POD_NAME=echo-1;" in env["CNI_ARGS"]


def _runtime(tmp_path, real_nodes):
    state = {"clusters": [{"name": "mesh-1", "network": {"real_nodes": real_nodes, "service_cidr": "10.101.0.0/16"}}],
             "binaries": {"clustermesh-apiserver": "/b/cma", "etcd": "/b/etcd"}, "cilium_dir": str(tmp_path)}
    rt = pods.Runtime(state, str(tmp_path), str(tmp_path))
    rt.images["cilium"] = pods.Image("cilium", {}, {})
    return rt


def test_real_pods_are_the_clustermesh_apiservers_and_the_agents_on_real_nodes(tmp_path):
    rt = _runtime(tmp_path, [{"name": "mesh-1-node-1", "ip": "172.20.1.11", "pod_cidr": "10.1.0.0/24"}])
    c = rt.clusters[0]

    def pod(app, node, ns="kube-system", image=None):
        ctrs = [{"name": "c", "image": image}] if image else []
        return {"metadata": {"labels": {"k8s-app": app}, "namespace": ns}, "spec": {"nodeName": node, "containers": ctrs}}
    assert rt.is_real(c, pod("clustermesh-apiserver", "mesh-1-node-3"))
    # workloads (agnhost, busybox) in any namespace, on real nodes only
    busybox = "registry.k8s.io/e2e-test-images/busybox:1.36.1-1"
    assert rt.is_real(c, pod("client", "mesh-1-node-1", ns="default", image=busybox))
    assert not rt.is_real(c, pod("client", "mesh-1-node-2", ns="default", image=busybox))
    assert not rt.is_real(c, pod("web", "mesh-1-node-1", ns="default", image="nginx:1"))
    # a label alone does not make a pod outside kube-system Cilium's
    assert not rt.is_real(c, pod("cilium", "mesh-1-node-1", ns="default", image="nginx:1"))
    assert rt.is_real(c, pod("cilium", "mesh-1-node-1"))
    assert not rt.is_real(c, pod("cilium", "mesh-1-node-2"))
    assert not rt.is_real(c, pod("cilium-operator", "mesh-1-node-1"))
    # without the agent image (no LLVM on the machine) no agent runs for real
    del rt.images["cilium"]
    assert not rt.is_real(c, pod("cilium", "mesh-1-node-1"))


def test_kwok_leaves_the_real_agents_to_the_pod_runtime(tmp_path):
    """The stage that marks pods Running skips agent pods on real nodes (the runtime reports
    their real state), and only those."""
    text = runner.kwok_stages(runner.cluster_network(1))
    stage = [d for d in yaml.safe_load_all(text) if d and d["metadata"]["name"] == "fleet-pod-running"][0]
    exprs = stage["spec"]["selector"]["matchExpressions"]
    combined = [e for e in exprs if "nodeName" in e["key"]]
    assert combined and combined[0]["operator"] == "NotIn"
    assert combined[0]["values"] == (["cilium@mesh-1-node-1"] if runner.REAL_NODES else ["none"])


class _Proc(object):
    def __init__(self, rc, out=""):
        self.returncode, self.stdout = rc, out


def _xfrm(results):
    """A stand-in for nodes._run: `ip xfrm state add` answers from ``results`` in order."""
    calls = []

    def run(*argv, check=True):
        calls.append(argv)
        if "xfrm" in argv:
            return results.pop(0)
        return _Proc(0)
    return run, calls


def test_ipsec_support_says_exactly_why_it_is_missing(monkeypatch):
    run, calls = _xfrm([_Proc(2, "Error: Requested AEAD algorithm not found."), _Proc(2, "Error: Requested type not found.")])
    monkeypatch.setattr(nodes, "_run", run)
    monkeypatch.setattr(nodes, "_kernel_config", lambda *n: {"CONFIG_INET_ESP": "not set", "CONFIG_CRYPTO_GCM": "not set"})
    ok, why = nodes.ipsec_support()
    assert ok is False
    assert "rfc4106(gcm(aes)): Error: Requested AEAD algorithm not found." in why
    assert "hmac(sha256) + cbc(aes): Error: Requested type not found." in why
    assert "CONFIG_INET_ESP=not set" in why and "CONFIG_CRYPTO_GCM=not set" in why
    # the probe's namespace is made and removed
    assert calls[0][:3] == ("ip", "netns", "add") and calls[-1][:3] == ("ip", "netns", "del")


def test_ipsec_support_takes_the_first_algorithm_the_kernel_accepts(monkeypatch):
    run, calls = _xfrm([_Proc(2, "Error: Requested AEAD algorithm not found."), _Proc(0)])
    monkeypatch.setattr(nodes, "_run", run)
    ok, why = nodes.ipsec_support()
    assert ok is True and "hmac(sha256) + cbc(aes)" in why
    assert calls[-1][:3] == ("ip", "netns", "del")


def test_a_round_woken_by_an_exit_names_the_clusters_whose_containers_exited(tmp_path):
    """The runtime's exit-driven rounds sync only those clusters; a child still running, a container
    never started and an exit already handled name none."""
    import subprocess
    import sys
    import types

    rt = _runtime(tmp_path, [])

    def container(proc):
        return types.SimpleNamespace(proc=proc)
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()
    running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        rt.pods = {
            "a": types.SimpleNamespace(cluster={"name": "mesh-1"}, inits=[container(done)], containers=[container(None)]),
            "b": types.SimpleNamespace(cluster={"name": "mesh-2"}, inits=[], containers=[container(running)]),
            "c": types.SimpleNamespace(cluster={"name": "mesh-3"}, inits=[container(None)], containers=[]),
        }
        assert rt.exited_clusters() == {"mesh-1"}
        rt.pods["a"].inits[0].proc = None  # handled by the round (check_exit)
        assert rt.exited_clusters() == set()
    finally:
        running.kill()
        running.wait()


def test_rounds_woken_by_exits_still_sync_every_cluster_once_its_interval_is_out(tmp_path):
    """A stream of exits in one cluster wakes round after round before the interval is out: the other
    clusters are still synced when their last sync is an interval old (they were starved before: a
    clustermesh-apiserver waited 5 s after its node's agent was Ready)."""
    rt = _runtime(tmp_path, [])
    rt.clusters = [{"name": "mesh-%d" % i} for i in (1, 2, 3)]
    # a round of the interval: every cluster
    assert rt.due_clusters(None, {"mesh-1": 10.0, "mesh-2": 10.0, "mesh-3": 10.0}, 10.2, 1.0) == {"mesh-1", "mesh-2", "mesh-3"}
    synced = {"mesh-1": 10.0, "mesh-2": 10.0, "mesh-3": 9.5}
    # woken by mesh-1's exit 0.6 s after the last round: mesh-1, and mesh-3 whose sync is 1.1 s old
    assert rt.due_clusters({"mesh-1"}, synced, 10.6, 1.0) == {"mesh-1", "mesh-3"}
    # a cluster never synced yet is always due
    assert rt.due_clusters({"mesh-1"}, {"mesh-1": 10.0}, 10.1, 1.0) == {"mesh-1", "mesh-2", "mesh-3"}
    # every sync recent: only the clusters whose containers exited
    assert rt.due_clusters({"mesh-2"}, {"mesh-1": 10.0, "mesh-2": 10.0, "mesh-3": 10.0}, 10.3, 1.0) == {"mesh-2"}


def test_a_round_of_a_cluster_where_nothing_runs_for_real_lists_only_its_pods(tmp_path):
    """A cluster without Cilium (most of the benchmark's fleet at small N) costs a round its pod lists: no
    Node, Secret, ConfigMap or Service list; its API server is still served."""
    import json as _json
    import types

    rt = _runtime(tmp_path, [])
    cluster = rt.clusters[0]
    cluster.update(ports={"apiserver": 24010}, network=dict(cluster["network"], kubernetes_vip="10.101.0.1"))
    calls = []

    class Api(object):
        def __getattr__(self, name):
            def call(*args, **kwargs):
                calls.append(name)
                items = [{"metadata": {"uid": "u1", "namespace": "kube-system", "labels": {"k8s-app": "cilium"}},
                          "spec": {"nodeName": "mesh-1-node-2"}}] if name == "list_namespaced_pod" else []
                return types.SimpleNamespace(data=_json.dumps({"items": items}).encode(), release_conn=lambda: None)
            return call
    rt.api = lambda c: Api()
    desired = {}
    rt.sync_cluster(cluster, desired)
    # the agent pod on a simulated node is not real: nothing to run
    assert calls == ["list_namespaced_pod"]
    assert desired == {("10.101.0.1", 24010): [("127.0.0.1", 24010)]}
