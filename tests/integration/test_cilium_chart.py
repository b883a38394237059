"""The real Cilium chart, installed with the built helm into every fleet cluster."""
import base64
import concurrent.futures
import json

import pytest
import yaml

from conftest import uninstall_cilium, wait_for

NS = "kube-system"


def _values(c, index):
    return [
        "--set", "cluster.name=%s" % c.name, "--set", "cluster.id=%d" % index,
        "--set", "ipam.mode=kubernetes", "--set", "kubeProxyReplacement=true",
        "--set", "k8sServiceHost=127.0.0.1", "--set", "k8sServicePort=%d" % c.data["ports"]["apiserver"],
        "--set", "clustermesh.useAPIServer=true",
        # as `cilium clustermesh enable` does: from chart 1.19 the clustermesh-apiserver mounts
        # ConfigMap clustermesh-remote-users, rendered only with clustermesh.config.enabled
        "--set", "clustermesh.config.enabled=true",
        "--set", "clustermesh.apiserver.service.type=LoadBalancer",
        # TLS method helm: the clustermesh-apiserver pods run for real on the fleet and need their
        # certificates, while certgen (method cronJob) is a Job kwok only simulates
        "--set", "clustermesh.apiserver.tls.auto.method=helm",
    ]


def _install_and_check(fleet, c, index, version):
    c.helm("install", "cilium", fleet.chart(version), "--namespace", NS, "--wait", "--wait-for-jobs",
           "--timeout", "4m", *_values(c, index), timeout=330)
    apps = c.apps()
    # helm's --wait takes a DaemonSet as ready with maxUnavailable (2 in this chart) pods not
    # ready; the agent on the cluster's real node is Cilium's own, compiling its BPF programs
    # first (hack/fleet/nodes.py): wait for every agent
    seen = {}

    def all_ready():
        seen["ds"] = ds = apps.read_namespaced_daemon_set_status("cilium", NS).status
        return ds.desired_number_scheduled == 3 and ds.number_ready == 3
    try:
        wait_for(all_ready, 240, "%s: every agent of chart %s ready" % (c.name, version), interval=2)
    except AssertionError:
        raise AssertionError((c.name, version, seen["ds"]))
    pod = c.core().list_namespaced_pod(NS, label_selector="k8s-app=cilium").items[0]
    assert pod.spec.host_network and pod.spec.containers[0].security_context is not None
    op = apps.read_namespaced_deployment_status("cilium-operator", NS).status
    assert op.ready_replicas == op.replicas and op.replicas >= 1
    cm = apps.read_namespaced_deployment_status("clustermesh-apiserver", NS).status
    assert cm.ready_replicas == cm.replicas
    envoy = [d for d in apps.list_namespaced_daemon_set(NS).items if d.metadata.name == "cilium-envoy"]
    for d in envoy:
        assert d.status.number_ready == 3
    config = c.core().read_namespaced_config_map("cilium-config", NS).data
    assert config["cluster-name"] == c.name and config["cluster-id"] == str(index)

    def lb_ip():
        svc = c.core().read_namespaced_service("clustermesh-apiserver", NS)
        ing = svc.status.load_balancer.ingress
        return ing and ing[0].ip
    assert wait_for(lb_ip, 20, "clustermesh-apiserver ingress") in c.network["lb_pool"]
    release = json.loads(c.helm("list", "-n", NS, "-o", "json").stdout)
    assert [(r["name"], r["chart"], r["status"]) for r in release] == [
        ("cilium", "cilium-%s" % version, "deployed")]
    return {"cluster": c.name, "envoy": bool(envoy)}


# Plain helm, without the collection: the oldest chart the fleet runs. 1.19 and 1.20 install through
# site.yml in test_realmesh.py (the first converged, then upgraded), every pod of theirs Ready and
# judged by Cilium's own KVStoreMesh. Not 1.17: the fleet's clustermesh-apiserver is Cilium 1.20.2
# (the only version the module proxy serves), and chart 1.17 passes it --enable-external-workloads,
# which 1.20 refuses ("unknown flag"), so that pod crash-loops for real. 1.17's rendering is still
# checked below.
@pytest.mark.parametrize("minor", ["1.18"])
def test_real_chart_installs_and_becomes_ready_in_two_clusters(fleet, minor):
    version = [v for v in fleet.chart_versions if v.startswith(minor + ".")][0]
    two = fleet.clusters[:2]
    uninstall_cilium(fleet.clusters)  # what an earlier test left
    with concurrent.futures.ThreadPoolExecutor(len(two)) as pool:
        futures = [pool.submit(_install_and_check, fleet, c, i + 1, version) for i, c in enumerate(two)]
        try:
            results = [f.result() for f in futures]
        finally:
            for c in two:
                c.helm("uninstall", "cilium", "-n", NS, "--wait", "--timeout", "2m", check=False)
    assert sorted(r["cluster"] for r in results) == sorted(c.name for c in two)
    # the real clustermesh-apiserver became Ready (helm --wait); the release is gone again
    for c in two:
        assert json.loads(c.helm("list", "-n", NS, "-o", "json").stdout) == []


BAD_VALUES = [
    (["--set", "kubeProxyReplacement=strict"], "kubeProxyReplacement must be explicitly set to a valid value"),
    (["--set", "clustermesh.maxConnectedClusters=300"], "max-connected-clusters must be set to 255 or 511"),
    (["--set", "cluster.name=Mesh-Capital", "--set", "cluster.id=3"], "The cluster name is invalid"),
]


@pytest.mark.parametrize("args,needle", BAD_VALUES, ids=["kpr-strict", "max-connected-300", "name-capitals"])
@pytest.mark.parametrize("minor", ["1.17", "1.18", "1.19", "1.20"])
def test_real_chart_refuses_invalid_values(fleet, minor, args, needle):
    version = [v for v in fleet.chart_versions if v.startswith(minor + ".")][0]
    c = fleet.clusters[0]
    mark = c.audit_mark()
    proc = c.helm("install", "cilium-bad", fleet.chart(version), "--namespace", NS, *args, check=False)
    assert proc.returncode != 0, proc.stdout
    assert needle in proc.stderr, proc.stderr
    assert json.loads(c.helm("list", "-n", NS, "-a", "-o", "json").stdout) == []
    writes = [e for e in c.mutations_since(mark) if e["objectRef"].get("namespace") == NS]
    assert writes == [], writes


def _rendered(fleet, version, *args):
    """The objects ``helm template`` renders from the real chart (client side, nothing written)."""
    proc = fleet.clusters[0].helm("template", "cilium", fleet.chart(version), "--namespace", NS,
                                  "--kube-version", "1.34.0", *args)
    return dict(((d["kind"], d["metadata"]["name"]), d) for d in yaml.safe_load_all(proc.stdout) if d)


def _host_aliases(obj):
    return obj["spec"]["template"]["spec"].get("hostAliases") or []


# cilium_install's peer_host_aliases=false (the default) sets clustermesh.disableKubernetesHostAliases:
# from chart 1.20 no pod template holds the peers' IPs (the configuration Secrets carry them as
# cilium-host-aliases for Cilium's static dialer), so a peer change restarts no pod; 1.19 ignores it
@pytest.mark.parametrize("kvstoremesh", [True, False], ids=["kvstoremesh", "no-kvstoremesh"])
@pytest.mark.parametrize("minor", ["1.19", "1.20"])
def test_peer_host_aliases_in_the_real_chart(fleet, minor, kvstoremesh):
    version = [v for v in fleet.chart_versions if v.startswith(minor + ".")][0]
    peers = '[{"name": "mesh-2", "ips": ["127.5.2.200"], "port": 2379}]'
    base = ["--set", "cluster.name=mesh-1", "--set", "cluster.id=1", "--set", "clustermesh.useAPIServer=true",
            "--set", "clustermesh.config.enabled=true", "--set-json", "clustermesh.config.clusters=" + peers,
            "--set", "clustermesh.apiserver.tls.auto.method=helm",
            "--set", "clustermesh.apiserver.kvstoremesh.enabled=%s" % str(kvstoremesh).lower()]
    where = ("Deployment", "clustermesh-apiserver") if kvstoremesh else ("DaemonSet", "cilium")
    config = ("Secret", "cilium-kvstoremesh") if kvstoremesh else ("Secret", "cilium-clustermesh")
    alias = [{"ip": "127.5.2.200", "hostnames": ["mesh-2.mesh.cilium.io"]}]
    with_aliases = _rendered(fleet, version, *base)
    without = _rendered(fleet, version, *(base + ["--set", "clustermesh.disableKubernetesHostAliases=true"]))
    assert _host_aliases(with_aliases[where]) == alias
    if minor == "1.19":
        assert _host_aliases(without[where]) == alias  # not known to 1.19: the peers stay hostAliases
        return
    assert _host_aliases(without[where]) == []
    text = base64.b64decode(without[config]["data"]["mesh-2"]).decode()
    assert "https://mesh-2.mesh.cilium.io:2379" in text and "cilium-host-aliases:" in text and "127.5.2.200" in text
    # nothing else of the pod template changes with the peers: adding one restarts no pod
    more = peers[:-1] + ', {"name": "mesh-3", "ips": ["127.5.3.200"], "port": 2379}]'
    grown = _rendered(fleet, version, *(base + ["--set", "clustermesh.disableKubernetesHostAliases=true",
                                                "--set-json", "clustermesh.config.clusters=" + more]))
    assert grown[where]["spec"]["template"] == without[where]["spec"]["template"]
    assert grown[config]["data"] != without[config]["data"]
