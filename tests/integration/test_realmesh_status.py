"""clustermesh_status through the exec path on the fleet.

An exec into container kvstoremesh runs Cilium's own `clustermesh-apiserver kvstoremesh-dbg
status -o json` in the real clustermesh-apiserver pod (hack/fleet/pods.py); an exec into the
agents (`cilium-dbg status -o json`, container cilium-agent) runs the fleet's stand-in
(hack/fleet/agent_standin.py, marked simulated), which passes on the real KVStoreMesh's verdict
for peers behind it. These tests check that the module's per-peer counts follow the mesh: every
agent configured/connected/ready for every peer of a converged mesh; and that Cilium's own
metrics of the clustermesh-apiserver pods (read through the API server's pod proxy, printed by
status.yml) say the same. A peer whose clustermesh-apiserver has no Ready replica, named by
`wait`, is checked in test_realmesh_traffic.py, in the same outage as the traffic check.

A converged 3-cluster mesh (site.yml with the local inventory) is reused when present: test_realmesh.py,
which runs just before (file order), leaves one.
"""

import pytest

from conftest import Playbook, meshed

NS = "kube-system"
HOSTS = ["mesh-1", "mesh-2", "mesh-3"]


@pytest.fixture(scope="module")
def mesh(fleet, collections_path, tmp_path_factory, run_module):
    clusters = [c for c in fleet.clusters if c.name in HOSTS]
    if len(clusters) < 3:
        pytest.fail("needs 3 fleet clusters")
    if not meshed(clusters):
        Playbook(fleet, collections_path, tmp_path_factory.mktemp("inv-status"))("site.yml", HOSTS)
        assert meshed(clusters)
    # a reused mesh may still be reconnecting after the previous file's faults: start from a ready one
    for c in clusters:
        r = run_module("clustermesh_status", c, agent_status="require", wait=True, wait_timeout=240, wait_interval=3)
        assert r["_rc"] == 0 and r["ready"] is True, "%s: %s" % (c.name, r.get("not_ready") or r.get("msg"))
    return dict((c.name, c) for c in clusters)


@pytest.fixture(scope="module")
def status(run_module):
    def run(cluster, **args):
        return run_module("clustermesh_status", cluster, **args)
    return run


def _pods(c, selector):
    return sorted(p.metadata.name for p in c.core().list_namespaced_pod(NS, label_selector=selector).items)


def agents_by_datapath(c):
    """(real, simulated) agent pod names: Cilium's own agent runs on the fleet's real nodes
    (node label meshops.io/datapath=real, hack/fleet/nodes.py)."""
    real_nodes = set(n.metadata.name for n in c.core().list_node(label_selector="meshops.io/datapath=real").items)
    real, simulated = [], []
    for p in c.core().list_namespaced_pod(NS, label_selector="k8s-app=cilium").items:
        (real if p.spec.node_name in real_nodes else simulated).append(p.metadata.name)
    return sorted(real), sorted(simulated)


def test_counts_per_peer_follow_a_converged_mesh(mesh, status):
    for name, c in sorted(mesh.items()):
        agents = _pods(c, "k8s-app=cilium")
        kvsm = _pods(c, "k8s-app=clustermesh-apiserver")
        assert agents and kvsm
        mark = c.audit_mark()
        r = status(c, agent_status="require")
        assert r["_rc"] == 0, r
        peers = sorted(h for h in HOSTS if h != name)
        assert r["ready"] is True, r["not_ready"]
        assert r["expected_peers"] == peers
        assert r["verified"] == {"apiserver": True, "agents": True, "kvstoremesh": True}
        # the real agent's answer is Cilium's own (not marked); the stand-in's on simulated
        # nodes say so; KVStoreMesh's are Cilium's
        real, simulated = agents_by_datapath(c)
        assert real and simulated and sorted(real + simulated) == agents
        assert r["simulated"] == {"agents": simulated}
        # every agent pod was exec'd into and answered; nothing was written
        assert r["agents"]["total"] == r["agents"]["available"] == len(agents)
        assert r["agents"]["unavailable"] == {}
        execs = c.execs_since(mark)
        assert sorted(p for p, ctr in execs if ctr == "cilium-agent") == agents
        # KVStoreMesh: one exec per pod (the name on the image's PATH answers)
        assert sorted(p for p, ctr in execs if ctr == "kvstoremesh") == kvsm
        assert c.mutations_since(mark) == []
        n = len(agents)
        assert sorted(r["agents"]["peers"]) == peers
        for peer in peers:
            p = r["agents"]["peers"][peer]
            assert (p["configured"], p["connected"], p["ready"]) == (n, n, n), p
            assert p["summary"] == "%d/%d configured, %d/%d connected, %d/%d ready" % (n, n, n, n, n, n)
            k = r["kvstoremesh"]["peers"][peer]
            assert (k["configured"], k["connected"], k["ready"]) == (len(kvsm),) * 3, k
        # Cilium's own metrics of the same pods (pod proxy, read once): every peer ready and synced
        m = r["metrics"]
        assert sorted(m["pods"]) == kvsm and m["unavailable"] == {}, m
        assert sorted(m["peers"]) == peers, m["peers"]
        for peer in peers:
            p = m["peers"][peer]
            assert p["ready"] is True and p["synced"] is True and p["sync_errors"] == 0, p
        for pod in kvsm:
            own = m["pods"][pod]["apiserver"]["sync"]
            assert list(own) == [name] and own[name]["synced"] is True, own
            assert m["pods"][pod]["kvstoremesh"]["remote_clusters"] == len(peers)


def test_status_yml_prints_cilium_metrics_per_cluster(mesh, fleet, collections_path, tmp_path):
    marks = dict((name, c.audit_mark()) for name, c in mesh.items())
    out = Playbook(fleet, collections_path, tmp_path)("status.yml", HOSTS)
    for name, c in sorted(mesh.items()):
        line = [ln for ln in out.splitlines() if '"%s: Cilium metrics: ' % name in ln]
        assert line, out[-3000:]
        for peer in sorted(h for h in HOSTS if h != name):
            assert "%s ready and synced" % peer in line[0], line[0]
        assert "local state synced to its kvstore, 0 sync errors" in line[0], line[0]
        assert "KVStoreMesh: 2 remote clusters" in line[0], line[0]
        assert c.mutations_since(marks[name]) == []


def kvstoremesh_dropped(status, c, peer):
    r = status(c, agent_status="require")
    k = r["kvstoremesh"]["peers"].get(peer) or {}
    return r if k.get("ready") == 0 and k.get("connected") == 0 else None
