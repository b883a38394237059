"""clustermesh_service_info on the fleet: what Cilium itself synced of a global Service.

A global Service is declared on 3 clusters with playbooks/services.yml (role services, module
clustermesh_service), with 1, 2 and 3 backends on mesh-1, mesh-2 and mesh-3 (a Deployment each; its pods
are simulated on kwok nodes but get IPs and Ready EndpointSlices from the real kube-controller-manager).
The fleet runs the clustermesh-apiserver pods for real (Cilium 1.20.2): the real clustermesh-apiserver
exports each cluster's Service to its kvstore and the real KVStoreMesh of every other cluster syncs it.
clustermesh_service_info reads both with Cilium's own debug shell (kvstore/list, container kvstoremesh):
every cluster must report every peer's backends synced with that peer's count; a peer scaled to 0 is then
reported with no backends and the reason, and back; a re-run (also in check mode) writes nothing.

playbooks/services.yml with services_check_sync=wait prints the same per cluster.

A converged 3-cluster mesh (site.yml with the local inventory) is reused when present, as
test_realmesh_status.py does.
"""
import json
import time

import pytest

from conftest import Playbook, meshed, wait_for

NS = "sync-demo"
HOSTS = ["mesh-1", "mesh-2", "mesh-3"]
REPLICAS = {"mesh-1": 1, "mesh-2": 2, "mesh-3": 3}
SERVICE = "%s/echo" % NS
GLOBAL = [{"name": "echo", "namespace": NS, "selector": {"app": "echo"},
           "ports": [{"name": "http", "port": 80, "targetPort": 8080}]}]


def _deployment(replicas):
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "echo", "namespace": NS},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "echo"}},
                     "template": {"metadata": {"labels": {"app": "echo"}}, "spec": {
                         # simulated nodes only: the pods get IPs and Ready EndpointSlices, nothing runs
                         "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
                             "nodeSelectorTerms": [{"matchExpressions": [
                                 {"key": "meshops.io/datapath", "operator": "In", "values": ["simulated"]}]}]}}},
                         "containers": [{"name": "echo", "image": "registry.k8s.io/pause:3.10",
                                         "ports": [{"containerPort": 8080}]}]}}}}


@pytest.fixture(scope="module")
def mesh(fleet, collections_path, tmp_path_factory):
    clusters = dict((c.name, c) for c in fleet.clusters if c.name in HOSTS)
    if len(clusters) < 3:
        pytest.fail("needs 3 fleet clusters")
    play = Playbook(fleet, collections_path, tmp_path_factory.mktemp("inv-services"))
    if not meshed(clusters.values()):
        play("site.yml", HOSTS)
        assert meshed(clusters.values())
    started = time.time()
    for name, c in sorted(clusters.items()):
        c.kubectl("create", "namespace", NS, check=False)
        apps = c.apps()
        apps.delete_namespaced_deployment("echo", NS) if apps.list_namespaced_deployment(NS).items else None
        apps.create_namespaced_deployment(NS, _deployment(REPLICAS[name]))
    # the global Service on every cluster, as users declare it (role services), then the role's own check of
    # what Cilium synced, waiting until every peer's backends are in every cluster's KVStoreMesh
    out = play("services.yml", HOSTS, "-e", json.dumps({"meshops_global_services": GLOBAL,
                                                        "services_check_sync": "wait"}))
    assert all(r["failed"] == 0 for r in Playbook.recap(out).values()), out[-3000:]
    for name in HOSTS:
        line = [ln for ln in out.splitlines() if '"%s: Cilium synced: ' % name in ln]
        assert line, out[-3000:]
        for peer in HOSTS:
            if peer != name:
                assert "%s %d backend(s) synced" % (peer, REPLICAS[peer]) in line[0], line[0]
        assert "NOT IN SYNC" not in line[0], line[0]
    print("global Service declared and its sync checked in %.0fs" % (time.time() - started))
    yield clusters
    for c in clusters.values():
        c.kubectl("delete", "namespace", NS, "--wait=false", check=False)


def _exported(run_module, c, backends, timeout=90):
    """This check on ``c`` once Cilium's own export of the Service there has ``backends`` backends."""
    seen = {}

    def ready():
        seen["r"] = run_module("clustermesh_service_info", c, services=[SERVICE])
        return seen["r"]["_rc"] == 0 and (seen["r"]["exported"].get(SERVICE) or {}).get("backends") == backends
    try:
        wait_for(ready, timeout, "%s to export %s with %d backends" % (c.name, SERVICE, backends), interval=2)
    except AssertionError:
        raise AssertionError("%s: %s" % (c.name, json.dumps({k: seen["r"].get(k) for k in (
            "exported", "msg", "problems")})[:3000]))
    return seen["r"]


def _peers(results, name):
    return dict((p, {"exported": results[p]["exported"]}) for p in HOSTS if p != name)


def test_every_peer_synced_with_its_backend_count(mesh, run_module):
    results = dict((name, _exported(run_module, c, REPLICAS[name])) for name, c in sorted(mesh.items()))
    checked = {}
    for name, c in sorted(mesh.items()):
        mark = c.audit_mark()
        checked[name] = r = run_module("clustermesh_service_info", c, peers=_peers(results, name), wait=True,
                                       wait_timeout=90)
        assert r["_rc"] == 0 and r["changed"] is False, r.get("msg")
        assert r["in_sync"] is True and r["problems"] == [], r["problems"]
        assert r["cluster"] == name and r["peers"] == sorted(h for h in HOSTS if h != name)
        assert r["global_services"][SERVICE] == {"ports": ["http 80/TCP"], "shared": True}
        row = r["report"][SERVICE]
        for peer in r["peers"]:
            assert row[peer] == {"state": "synced", "synced": True, "backends": REPLICAS[peer],
                                 "expected": REPLICAS[peer], "ports": ["http 80/TCP"], "reason": None}, row
            # Cilium's own record of the peer: its cluster ID, the backends' target port
            s = r["synced"][SERVICE][peer]
            assert s["cluster_id"] == int(peer.rsplit("-", 1)[1]) and s["backend_ports"] == ["http 8080/TCP"], s
        # read from Cilium's kvstore in the real clustermesh-apiserver pod: execs only, no write
        pods = sorted(p.metadata.name for p in c.core().list_namespaced_pod(
            "kube-system", label_selector="k8s-app=clustermesh-apiserver").items)
        assert r["source"]["pods"] == pods
        assert set(c.execs_since(mark)) == set((p, "kvstoremesh") for p in pods)
        assert c.mutations_since(mark) == []
    # a re-run in check mode reports the same and writes nothing
    c = mesh["mesh-1"]
    mark = c.audit_mark()
    again = run_module("clustermesh_service_info", c, check=True, peers=_peers(results, "mesh-1"))
    assert again["_rc"] == 0 and again["changed"] is False and again["in_sync"] is True, again.get("msg")
    assert again["report"] == checked["mesh-1"]["report"] and again["synced"] == checked["mesh-1"]["synced"]
    assert c.mutations_since(mark) == []


def test_a_peer_scaled_to_zero_is_reported_and_back(mesh, run_module):
    down = mesh["mesh-3"]
    down.kubectl("-n", NS, "scale", "deployment/echo", "--replicas=0")
    try:
        results = {"mesh-3": _exported(run_module, down, 0)}
        results.update((n, {"exported": {SERVICE: {"backends": REPLICAS[n]}}}) for n in ("mesh-1", "mesh-2"))
        for name in ("mesh-1", "mesh-2"):
            c = mesh[name]
            mark = c.audit_mark()
            r = run_module("clustermesh_service_info", c, peers=_peers(results, name), wait=True, wait_timeout=90)
            assert r["_rc"] == 0 and r["in_sync"] is True, r.get("msg")
            e = r["report"][SERVICE]["mesh-3"]
            assert (e["state"], e["synced"], e["backends"], e["expected"]) == ("no_backends", False, 0, 0), e
            assert "mesh-3 exports Service %s with no backends (no ready endpoint there)" % SERVICE in e["reason"], e
            other = "mesh-2" if name == "mesh-1" else "mesh-1"
            assert r["report"][SERVICE][other]["state"] == "synced"
            assert r["report"][SERVICE][other]["backends"] == REPLICAS[other]
            assert "mesh-3 0 backend(s) (no_backends)" in r["summary"][0], r["summary"]
            assert c.mutations_since(mark) == []
        # without the peers' exports, mesh-1 still sees Cilium's entry from mesh-3 with 0 backends
        r = run_module("clustermesh_service_info", mesh["mesh-1"], services=[SERVICE])
        assert r["synced"][SERVICE]["mesh-3"]["backends"] == 0
    finally:
        down.kubectl("-n", NS, "scale", "deployment/echo", "--replicas=%d" % REPLICAS["mesh-3"])
    results = {"mesh-3": _exported(run_module, down, REPLICAS["mesh-3"])}
    results.update((n, {"exported": {SERVICE: {"backends": REPLICAS[n]}}}) for n in ("mesh-1", "mesh-2"))
    r = run_module("clustermesh_service_info", mesh["mesh-1"], peers=_peers(results, "mesh-1"), wait=True,
                   wait_timeout=90)
    assert r["_rc"] == 0 and r["in_sync"] is True, r.get("msg")
    assert r["report"][SERVICE]["mesh-3"]["state"] == "synced"
    assert r["report"][SERVICE]["mesh-3"]["backends"] == REPLICAS["mesh-3"]
