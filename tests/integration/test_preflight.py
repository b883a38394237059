"""playbooks/preflight.yml (and site.yml) on the fleet: a table of bad inputs, each reported with the
cluster and the fix, with zero writes and no traceback.

Needs 4 fleet clusters (MESHOPS_FLEET_CLUSTERS=4). One playbook run reports many problems at once (that is
the point of the preflight), so the rows of BAD_INPUTS are grouped into a few scenarios; each scenario runs
once (cached per module) and every row asserts its own message. Cluster states (installed releases with
another identity, another CA, another maxConnectedClusters, an old chart, a cluster-pool, a Node whose
podCIDR overlaps, Cilium without a Helm release) are made with helm and the real chart, and removed after.
"""
import concurrent.futures
import json
import re

import pytest

from conftest import NS, Playbook, marks, uninstall_cilium, write_inventory, writes
from hack.fleet.runner import cluster_network

NEW = "1.19.2"
OLD = "1.17.14"
# the fleet's addressing (it depends on the port base)
M3_NODE_CIDR = cluster_network(3)["node_cidrs"][1]
# mesh-1 declares mesh-2's real pod CIDR: a warning on mesh-1 (not what it uses), an overlap error on mesh-2
M2_POD_CIDR = cluster_network(2)["pod_cidr"]
EXTRA_NODE = "preflight-extra"

# scenario -> (playbook, extra ansible-playbook args, group vars, host vars per host)
SCENARIOS = {
    # identity: names, IDs, maxConnectedClusters (run through site.yml: it must stop before install)
    "identity": ("site.yml", [], {}, {
        "mesh-1": {"cilium_cluster_id": 1, "cilium_cluster_name": "default"},
        "mesh-2": {"cilium_cluster_id": 0, "cilium_cluster_name": "a" * 33, "cilium_max_connected_clusters": 511},
        "mesh-3": {"cilium_cluster_id": 300, "cilium_max_connected_clusters": 256},
        "mesh-4": {"cilium_cluster_id": 1, "cilium_cluster_name": "Mesh_4"},
    }),
    # datapath: kube-proxy replacement, routing, ENI/AWS-CNI IDs, NodePorts, declared CIDRs
    "datapath": ("preflight.yml", [], {}, {
        "mesh-1": {"cilium_cluster_id": 1, "cilium_kube_proxy_replacement": "strict",
                   "cilium_pod_cidrs": [M2_POD_CIDR], "cilium_service_cidr": "10.96.0.0/12"},
        "mesh-2": {"cilium_cluster_id": 2, "cilium_routing_mode": "native", "cilium_kube_proxy_replacement": True,
                   "cilium_service_cidr": "10.96.0.0/12"},
        "mesh-3": {"cilium_cluster_id": 130, "cilium_ipam_mode": "eni", "cilium_clustermesh_service_type": "NodePort",
                   "cilium_kube_proxy_replacement": True, "cilium_k8s_service_host": "auto"},
        "mesh-4": {"cilium_cluster_id": 200, "cilium_values": {"cni": {"chainingMode": "aws-cni"}},
                   "cilium_clustermesh_service_type": "NodePort", "cilium_kube_proxy_replacement": True,
                   "cilium_k8s_service_host": "auto"},
    }),
    # mesh: native routing, pools, versions, connections; run with --limit: every member is still read
    "mesh": ("preflight.yml", ["--limit", "mesh-1"],
             {"cilium_routing_mode": "native", "cilium_ipv4_native_routing_cidr": "10.0.0.0/14"}, {
        "mesh-1": {"cilium_cluster_id": 1, "cilium_clustermesh_service_type": "ClusterIP",
                   "cilium_ipv4_native_routing_cidr": "10.0.0.0/8"},
        "mesh-2": {"cilium_cluster_id": 2, "cilium_ipam_mode": "cluster-pool", "cilium_cluster_name": "mesh-1"},
        "mesh-3": {"cilium_cluster_id": 3, "meshops_context": "mesh-2", "cilium_chart_version": OLD},
        "mesh-4": {"cilium_cluster_id": 4, "meshops_context": "nope", "cilium_chart_version": "latest"},
    }),
    # values: what cilium_install itself would refuse, run through site.yml: it must stop before the CA is written
    "values": ("site.yml", [], {}, {
        "mesh-1": {"cilium_cluster_id": 1, "cilium_values": {"ipam": {"mode": "bogus"}}},
        "mesh-2": {"cilium_cluster_id": 2, "cilium_tunnel_protocol": "gre"},
        "mesh-3": {"cilium_cluster_id": 3, "cilium_values": {"tunnelProtocol": "geneve"}},
        "mesh-4": {"cilium_cluster_id": 4, "cilium_encryption_type": "ipsec", "cilium_ipsec_key_rotation_duration": "soon"},
    }),
    # states: what is installed contradicts a correct-looking inventory
    # (the target is pinned: the skipped-minor message names it, whatever the role default is)
    "states": ("preflight.yml", [], {"cilium_chart_version": NEW},
               {h: {"cilium_cluster_id": i} for i, h in enumerate(["mesh-1", "mesh-2", "mesh-3", "mesh-4"], 1)}),
}

# (scenario, cluster, field, text in the problem, text in the fix, severity)
BAD_INPUTS = [
    ("identity", "mesh-1", "cilium_cluster_name", 'name "default" cannot be used', "'mesh-1'", "error"),
    ("identity", "mesh-2", "cilium_cluster_id", '"not part of a mesh"', "unique ID 1..", "error"),
    ("identity", "mesh-2", "cilium_cluster_name", "has 33 characters", "at most 32", "error"),
    ("identity", "mesh-2", "cilium_max_connected_clusters", "511 differs from 255", "group_vars", "error"),
    ("identity", "mesh-3", "cilium_max_connected_clusters", "256 is not accepted", "255 (default) or 511", "error"),
    ("identity", "mesh-3", "cilium_cluster_id", "300 is outside 1..255", "cilium_max_connected_clusters: 511",
     "error"),
    ("identity", "mesh-4", "cilium_cluster_name", "'Mesh_4' is not valid", "'mesh-4'", "error"),
    ("identity", "mesh-4", "cilium_cluster_id", "ID 1 is also used by mesh-1", "unique cilium_cluster_id", "error"),
    ("datapath", "mesh-1", "cilium_kube_proxy_replacement", "'strict' was removed", "true", "error"),
    ("datapath", "mesh-1", "cilium_pod_cidrs", "outside the declared cilium_pod_cidrs", "really uses", "warning"),
    ("datapath", "mesh-2", "cilium_routing_mode", "native differs from tunnel", "cilium_routing_mode: tunnel",
     "error"),
    ("datapath", "mesh-2", "cilium_ipv4_native_routing_cidr", "needs ipv4NativeRoutingCIDR", "covering", "error"),
    ("datapath", "mesh-2", "cilium_kube_proxy_replacement", "without k8sServiceHost", "cilium_k8s_service_host",
     "error"),
    ("datapath", "mesh-2", "cilium_pod_cidrs", "overlap with mesh-1", "distinct pod CIDRs", "error"),
    ("datapath", "mesh-2", "cilium_service_cidr", "overlaps 10.96.0.0/12 of mesh-1", "distinct service CIDR",
     "warning"),
    ("datapath", "mesh-3", "cilium_cluster_id", "refused with ipam mode eni", "1..127", "error"),
    ("datapath", "mesh-4", "cilium_cluster_id", "refused with AWS VPC CNI chaining", "1..127", "error"),
    ("datapath", "mesh-4", "cilium_clustermesh_node_port", "32379 (chart default) is also used by mesh-3",
     "distinct cilium_clustermesh_node_port, e.g. 32380", "error"),
    ("mesh", "mesh-1", "cilium_clustermesh_service_type", "not reachable", "NodePort or LoadBalancer", "error"),
    ("mesh", "mesh-2", "cilium_cluster_name", "'mesh-1' is also used by mesh-1", "unique cilium_cluster_name",
     "error"),
    ("mesh", "mesh-2", "cilium_pod_cidrs", "chart default cluster-pool 10.0.0.0/8", "distinct pod CIDRs", "error"),
    ("mesh", "mesh-2", "cilium_ipv4_native_routing_cidr", "does not cover pod CIDRs 10.0.0.0/8 of mesh-2",
     "covering every cluster", "error"),
    ("mesh", "mesh-3", "meshops_kubeconfig/meshops_context", "same kubeconfig context 'mesh-2'",
     "own meshops_context", "error"),
    ("mesh", "mesh-3", "nodes (InternalIP)", "also node IPs of mesh-2", "meshops_context of mesh-3", "error"),
    ("mesh", "mesh-3", "cilium_chart_version", "more than one minor version behind", "one cilium_chart_version",
     "error"),
    ("mesh", "mesh-4", "meshops_kubeconfig/meshops_context", "cannot read the cluster", "meshops_context of mesh-4",
     "error"),
    ("mesh", "mesh-4", "cilium_chart_version", "'latest' is not a version", "pin cilium_chart_version", "error"),
    ("values", "mesh-1", "cilium_values", "ipam.mode='bogus' contradicts", "role variable (cilium_*)", "error"),
    ("values", "mesh-2", "cilium_tunnel_protocol", "must be one of vxlan, geneve", "correct cilium_tunnel_protocol",
     "error"),
    ("values", "mesh-3", "cilium_values", "tunnelProtocol='geneve' contradicts", "role variable (cilium_*)", "error"),
    ("values", "mesh-4", "cilium_ipsec_key_rotation_duration", "a duration such as 5m",
     "correct cilium_ipsec_key_rotation_duration", "error"),
    ("states", "mesh-1", "cilium_chart_version", "from %s to %s skips a minor" % (OLD, NEW), "newest 1.18.x",
     "error"),
    ("states", "mesh-2", "cilium_cluster_id", "installed cluster id is 7", "cilium_cluster_id: 7", "error"),
    ("states", "mesh-2", "cilium_max_connected_clusters", "installed max connected clusters is 511",
     "cilium_allow_identity_change: true", "error"),
    ("states", "mesh-2", "cilium-ca", "differs from the mesh CA of mesh-1", "replace cilium-ca in mesh-2", "error"),
    ("states", "mesh-3", "cilium_cluster_name", "installed cluster name is other", "cilium_cluster_name: other",
     "error"),
    ("states", "mesh-3", "cilium_pod_cidrs", "(installed clusterPoolIPv4PodCIDRList) overlaps", "distinct pod CIDRs",
     "error"),
    ("states", "mesh-4", "cilium_release_name", "no Helm release 'cilium'", "cilium_release_name", "error"),
    ("states", "mesh-4", "cilium_pod_cidrs", "%s (node podCIDRs) overlaps" % M3_NODE_CIDR, "distinct pod CIDRs", "error"),
]


def _failure(out):
    """The JSON result of the failed preflight task."""
    for m in re.finditer(r"FAILED! => ", out):
        try:
            res = json.JSONDecoder().raw_decode(out[m.end():])[0]
        except ValueError:
            continue
        if "problems" in res:
            return res
    raise AssertionError("no preflight failure in:\n%s" % out[-6000:])


def _run(fleet, book, inv, playbook, args):
    mark = marks(fleet.clusters)
    proc = book.execute(inv, playbook, *args, timeout=900)
    return proc.returncode, proc.stdout, writes(fleet.clusters, mark)


def _helm_install(fleet, c, version, *values):
    args = ["install", "cilium", fleet.chart(version), "--namespace", NS, "--set", "ipam.mode=kubernetes",
            "--set", "clustermesh.useAPIServer=true"]
    for v in values:
        args += ["--set", v]
    c.helm(*args, timeout=600)


def _cleanup(fleet):
    """uninstall_cilium, and what _prepare_states made without the chart."""
    def one(c):
        c.kubectl("-n", NS, "delete", "configmap", "cilium-config", "--ignore-not-found", check=False)
        c.kubectl("delete", "node", EXTRA_NODE, "--ignore-not-found", check=False)
    uninstall_cilium(fleet.clusters[:4])
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(one, fleet.clusters[:4]))


def _prepare_states(fleet):
    m1, m2, m3, m4 = fleet.clusters[:4]
    jobs = [
        # an old chart: the inventory's 1.19 would skip 1.18
        (m1, OLD, ["cluster.name=mesh-1", "cluster.id=1"]),
        # another ID and maxConnectedClusters than the inventory, and its own CA
        (m2, NEW, ["cluster.name=mesh-2", "cluster.id=7", "clustermesh.maxConnectedClusters=511"]),
        # another name, and a cluster-pool overlapping mesh-1's pod CIDRs
        (m3, NEW, ["cluster.name=other", "cluster.id=3", "ipam.mode=cluster-pool",
                   "ipam.operator.clusterPoolIPv4PodCIDRList={%s}" % cluster_network(1)["pod_cidr"]]),
    ]
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        list(pool.map(lambda j: _helm_install(fleet, j[0], j[1], *j[2]), jobs))
    # Cilium installed without Helm, and a Node whose podCIDR overlaps mesh-3's nodes
    m4.kubectl("-n", NS, "create", "configmap", "cilium-config", "--from-literal=cluster-name=mesh-4",
               "--from-literal=cluster-id=4")
    m4.core().create_node({"apiVersion": "v1", "kind": "Node",
                           "metadata": {"name": EXTRA_NODE},
                           "spec": {"podCIDR": M3_NODE_CIDR, "podCIDRs": [M3_NODE_CIDR],
                                    "unschedulable": True}})


@pytest.fixture(scope="module")
def preflight(fleet, collections_path, tmp_path_factory):
    """``preflight(scenario) -> (rc, output, failure result, writes)``, each scenario run once."""
    if len(fleet.clusters) < 4:
        pytest.fail("needs 4 fleet clusters (MESHOPS_FLEET_CLUSTERS=4)")
    root = tmp_path_factory.mktemp("preflight")
    book = Playbook(fleet, collections_path, root)
    cache = {}
    _cleanup(fleet)

    def run(name):
        if name not in cache:
            playbook, args, group_vars, host_vars = SCENARIOS[name]
            if name == "states":
                _prepare_states(fleet)
            try:
                inv = write_inventory(root, host_vars, group_vars, name=name, cluster_ids=False)
                rc, out, written = _run(fleet, book, inv, playbook, args)
            finally:
                if name == "states":
                    _cleanup(fleet)
            cache[name] = (rc, out, _failure(out) if rc != 0 else None, written)
        return cache[name]
    run.book, run.root = book, root
    yield run
    _cleanup(fleet)


def test_a_good_inventory_passes_without_writes(fleet, preflight):
    hosts = {c.name: {"cilium_cluster_id": i} for i, c in enumerate(fleet.clusters[:4], 1)}
    inv = write_inventory(preflight.root, hosts, {}, name="good", cluster_ids=False)
    rc, out, written = _run(fleet, preflight.book, inv, "preflight.yml", ["-v"])
    assert rc == 0, out[-6000:]
    assert "preflight passed for 4 clusters" in out
    assert "Traceback" not in out
    assert written == {c.name: [] for c in fleet.clusters}


@pytest.mark.parametrize("scenario, cluster, field, text, fix, severity", BAD_INPUTS,
                         ids=["%s-%s-%s" % (r[0], r[1], r[2].split("_")[-1].split(" ")[0]) for r in BAD_INPUTS])
def test_bad_input(fleet, preflight, scenario, cluster, field, text, fix, severity):
    rc, out, result, written = preflight(scenario)
    assert rc != 0, out[-6000:]
    assert "Traceback" not in out
    assert written == {c.name: [] for c in fleet.clusters}, "the preflight wrote"
    rows = [p for p in result["problems"] if p["cluster"] == cluster and p["field"] == field
            and p["severity"] == severity and text in p["problem"]]
    assert len(rows) == 1, json.dumps(result["problems"], indent=1)
    assert fix in rows[0]["fix"], rows[0]
    # the table in the message names the cluster, the field, the problem and the fix on one line
    line = [ln for ln in result["msg"].splitlines() if ln.startswith(cluster + " ") and rows[0]["problem"] in ln]
    assert line and field in line[0] and ("fix: " + rows[0]["fix"]) in line[0], result["msg"]


def test_site_stopped_before_any_write_and_limit_still_reads_every_member(preflight):
    rc, out, result = preflight("identity")[:3]
    assert "preflight found" in result["msg"] and "nothing was changed" in result["msg"]
    assert "TASK [meshops.cilium.cilium" not in out  # site.yml never reached the install
    rc, out = preflight("values")[:2]
    assert rc != 0 and "TASK [meshops.cilium.cilium" not in out  # nor the CA, for what cilium_install refuses
    assert out.count("TASK [meshops.cilium.preflight : Check the whole mesh") == 1  # run once, not again by install
    result = preflight("mesh")[2]
    assert {p["cluster"] for p in result["problems"]} >= {"mesh-2", "mesh-3", "mesh-4"}  # outside --limit mesh-1
