"""Real packets across clusters: clustermesh_traffic_check and cross-cluster paths on the fleet.

On each cluster's real node (label meshops.io/datapath=real, hack/fleet/nodes.py) Cilium's own
agent runs its BPF datapath, and the fleet runs the check's pods for real: the echo server is our
build of agnhost (`netexec`), the client a shell with wget, each in a network namespace that the
real cilium-cni wired (hack/fleet/pods.py). So every answer read here went through Cilium: the
global Service's load-balancing across clusters (KVStoreMesh's synced backends), the VXLAN
tunnel between the clusters' nodes, Cilium's policy. The simulated nodes carry no pod of these
tests (node_selector).
"""
import concurrent.futures
import json
import os
import re
import tempfile
import time

import pytest

from conftest import Playbook, meshed, wait_for
from hack.fleet.pods import _pid_alive, load_pods
from test_realmesh import HOSTS, assert_every_peer_ready, real_agent
from test_realmesh_status import agents_by_datapath, kvstoremesh_dropped

NS = "meshops-traffic-check"
PART_OF = "app.kubernetes.io/part-of=meshops-traffic-check"
REAL = {"meshops.io/datapath": "real"}


@pytest.fixture(scope="module")
def clusters(fleet, collections_path, tmp_path_factory):
    cs = dict((c.name, c) for c in fleet.clusters if c.name in HOSTS)
    if len(cs) < 3:
        pytest.fail("needs 3 fleet clusters")
    for c in cs.values():
        if not c.core().list_node(label_selector="meshops.io/datapath=real").items:
            pytest.fail("%s has no real node (MESHOPS_FLEET_REAL_NODES=0?): no packet can move" % c.name)
    # a converged mesh, Cilium's own agents on the real nodes seeing every peer: the one that
    # test_realmesh.py and test_realmesh_status.py leave (they run just before, in file order), else
    # site.yml converges one
    if not meshed(cs.values()):
        Playbook(fleet, collections_path, tmp_path_factory.mktemp("inv-traffic"))("site.yml", HOSTS)
    assert_every_peer_ready(cs)
    yield cs
    for c in cs.values():  # leave nothing behind even when a test failed
        c.kubectl("delete", "namespace", NS, "--ignore-not-found", "--wait=false", check=False)


@pytest.fixture(scope="module")
def check(run_module):
    def run(cluster, check_mode=False, **args):
        args.setdefault("node_selector", REAL)
        return run_module("clustermesh_traffic_check", cluster, check=check_mode, context=cluster.name, **args)
    return run


def _on_all(clusters, fn):
    cs = [clusters[h] for h in HOSTS]
    with concurrent.futures.ThreadPoolExecutor(len(cs)) as pool:
        return dict(zip(HOSTS, pool.map(fn, cs)))


def _writes(c, mark):
    """Writes since ``mark`` to the check's namespace or objects (other tests may write elsewhere)."""
    return [e for e in c.mutations_since(mark)
            if (e.get("objectRef") or {}).get("namespace") in (NS, "not-ours")
            or (e.get("objectRef") or {}).get("name") in (NS, "not-ours")]


def _leftovers(c):
    """Everything of the check still in the cluster (any namespace)."""
    out = c.kubectl("get", "namespaces,deployments,services,jobs,pods", "-A", "-l", PART_OF, "-o", "name").stdout
    ns = c.kubectl("get", "namespace", NS, "--ignore-not-found", "-o", "name").stdout
    return sorted(set(out.split() + ns.split()))


def _echo_pods(c):
    return [p for p in c.core().list_namespaced_pod(NS, label_selector="app.kubernetes.io/name=meshops-echo").items
            if p.metadata.deletion_timestamp is None]


def _apply(c, obj):
    with tempfile.NamedTemporaryFile("w", suffix=".json") as f:
        json.dump(obj, f)
        f.flush()
        c.kubectl("apply", "-f", f.name)


def _run_client(c, name, script, timeout=90):
    """Run ``script`` in a real busybox pod on ``c``'s real node; (exit code, log)."""
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": NS},
           "spec": {"backoffLimit": 0, "template": {"metadata": {"labels": {"app.kubernetes.io/name": name}},
                    "spec": {"restartPolicy": "Never", "nodeSelector": REAL, "containers": [{
                        "name": "client", "image": "registry.k8s.io/e2e-test-images/busybox:1.36.1-1",
                        "command": ["sh", "-c", script]}]}}}}
    c.kubectl("-n", NS, "delete", "job", name, "--ignore-not-found", "--wait=true")
    _apply(c, job)
    state = {}

    def done():
        pods = c.core().list_namespaced_pod(NS, label_selector="job-name=%s" % name).items
        state["pod"] = pods[0] if pods else None
        return state["pod"] is not None and state["pod"].status.phase in ("Succeeded", "Failed")
    wait_for(done, timeout, "the client Job %s on %s to finish" % (name, c.name), interval=1)
    pod = state["pod"]
    # raw bytes, as clustermesh_traffic_check reads them (kwok's log endpoint is not text/plain)
    log = c.core().read_namespaced_pod_log(pod.metadata.name, NS, container="client",
                                           _preload_content=False).data.decode()
    rc = pod.status.container_statuses[0].state.terminated.exit_code
    c.kubectl("-n", NS, "delete", "job", name, "--ignore-not-found", "--wait=false")
    return rc, log


def test_a_global_service_answers_from_every_cluster_through_real_agents(clusters, check):
    for c in clusters.values():
        assert _leftovers(c) == []
    # check mode: reports the three objects, writes nothing
    c1 = clusters["mesh-1"]
    mark = c1.audit_mark()
    r = check(c1, check_mode=True, state="present")
    assert r["_rc"] == 0 and r["changed"] is True
    assert [x["action"] for x in r["changes"]] == ["create"] * 3
    assert _writes(c1, mark) == []

    res = _on_all(clusters, lambda c: check(c, state="present"))
    for name, c in clusters.items():
        assert res[name]["_rc"] == 0 and res[name]["changed"] is True, res[name]
        svc = c.core().read_namespaced_service("meshops-echo", NS)
        assert svc.metadata.annotations["service.cilium.io/global"] == "true"
        dep = c.apps().read_namespaced_deployment("meshops-echo-" + name, NS)
        assert dep.spec.template.spec.node_selector == REAL
    # idempotent: a second run changes nothing and writes nothing
    marks = dict((name, c.audit_mark()) for name, c in clusters.items())
    again = _on_all(clusters, lambda c: check(c, state="present"))
    for name, c in clusters.items():
        assert again[name]["changed"] is False, again[name]
        assert _writes(c, marks[name]) == []

    # every cluster's client reaches every cluster's echo server through the one global Service
    tested = _on_all(clusters, lambda c: check(c, state="tested", clusters=HOSTS, requests=30))
    for name in HOSTS:
        r = tested[name]
        assert r["_rc"] == 0 and r["ok"] is True, r.get("msg") or r.get("message")
        assert r["answered"] == HOSTS and r["missing"] == [] and r["errors"] == 0, r["message"]
        assert r["requests"] == 30 and sum(r["answers"].values()) == 30, r
        assert r["unknown_answers"] == {}, r
    # the answers came from real processes: each echo pod is on the real node, with the address
    # Cilium's IPAM gave it, Ready by its own /hostname
    for name, c in clusters.items():
        real_node = c.core().list_node(label_selector="meshops.io/datapath=real").items[0]
        pods = _echo_pods(c)
        assert len(pods) == 1 and pods[0].spec.node_name == real_node.metadata.name
        assert pods[0].status.pod_ip.rsplit(".", 1)[0] == real_node.spec.pod_cidr.rsplit(".", 1)[0]
        ceps = c.kubectl("-n", NS, "get", "ciliumendpoints", "-o", "json").stdout
        assert pods[0].metadata.name in [e["metadata"]["name"] for e in json.loads(ceps)["items"]]


def _answering_clusters(c, requests=20):
    """{cluster: answers} of ``requests`` requests to the global Service from a real pod of ``c``
    (its own Job: the module's state=tested would first scale the echo server back)."""
    script = ('for i in $(seq %d); do wget -q -T 3 -O - http://meshops-echo.%s.svc/hostname || echo failed; echo; done'
              % (requests, NS))
    rc, log = _run_client(c, "affinity-client", script)
    assert rc == 0, log
    counts = {}
    for word in log.split():
        m = re.match(r"meshops-echo-(mesh-\d+)-", word)
        key = m.group(1) if m else "failed" if word == "failed" else None
        if key:
            counts[key] = counts.get(key, 0) + 1
    return counts


def test_affinity_local_answers_locally_and_fails_over(clusters, check):
    c1 = clusters["mesh-1"]
    r = check(c1, state="present", affinity="local")
    assert r["_rc"] == 0 and r["changed"] is True, r
    # Cilium prefers the local backend while there is one
    r = check(c1, state="tested", clusters=HOSTS, affinity="local", requests=20, fail_on_missing=False)
    assert r["_rc"] == 0 and r["answers"] == {"mesh-1": 20, "mesh-2": 0, "mesh-3": 0}, r["message"]
    # no local backend: the remote ones answer
    c1.kubectl("-n", NS, "scale", "deployment", "meshops-echo-mesh-1", "--replicas=0")
    try:
        wait_for(lambda: not c1.core().list_namespaced_pod(NS, label_selector="meshops.io/cluster=mesh-1").items,
                 90, "mesh-1's echo pod to be gone", interval=1)
        counts = _answering_clusters(c1)
        assert sorted(counts) == ["mesh-2", "mesh-3"], counts
    finally:
        c1.kubectl("-n", NS, "scale", "deployment", "meshops-echo-mesh-1", "--replicas=1")
    # the local backend is back: local again
    wait_for(lambda: any(p.status.pod_ip and all(x.ready for x in p.status.container_statuses or [])
                         for p in _echo_pods(c1)), 120, "mesh-1's echo pod to be Ready again", interval=1)
    r = check(c1, state="tested", clusters=HOSTS, affinity="local", requests=10, fail_on_missing=False)
    assert r["answers"] == {"mesh-1": 10, "mesh-2": 0, "mesh-3": 0}, r["message"]
    assert check(c1, state="present")["changed"] is True  # back to affinity none


def _pod_ip(c):
    pods = _echo_pods(c)
    assert len(pods) == 1 and pods[0].status.pod_ip, pods
    return pods[0].status.pod_ip, pods[0].metadata.name


def test_pod_to_pod_across_clusters_and_a_cross_cluster_policy(clusters):
    ip2, name2 = _pod_ip(clusters["mesh-2"])
    script = "wget -q -T 3 -O - http://%s:8080/hostname" % ip2
    # pod to pod, mesh-1 -> mesh-2 and mesh-3 -> mesh-2: the echo pod answers with its name
    for src in ("mesh-1", "mesh-3"):
        rc, log = _run_client(clusters[src], "p2p-" + src, script)
        assert rc == 0 and log.strip().endswith(name2), (src, rc, log)
    # a policy in mesh-2 that admits only mesh-3's pods (io.cilium.k8s.policy.cluster)
    policy = {"apiVersion": "cilium.io/v2", "kind": "CiliumNetworkPolicy",
              "metadata": {"name": "echo-from-mesh-3", "namespace": NS},
              "spec": {"endpointSelector": {"matchLabels": {"app.kubernetes.io/name": "meshops-echo"}},
                       "ingress": [{"fromEndpoints": [{"matchLabels": {"io.cilium.k8s.policy.cluster": "mesh-3"}}]}]}}
    c2 = clusters["mesh-2"]
    _apply(c2, policy)
    try:
        deadline = time.time() + 60
        while True:  # the agent needs a moment to compute and load the policy
            rc1, log1 = _run_client(clusters["mesh-1"], "p2p-mesh-1", script)
            if rc1 != 0 or time.time() > deadline:
                break
        assert rc1 != 0 and name2 not in log1, "mesh-1 still reaches mesh-2's echo pod: %s" % log1
        rc3, log3 = _run_client(clusters["mesh-3"], "p2p-mesh-3", script)
        assert rc3 == 0 and log3.strip().endswith(name2), ("mesh-3 is allowed", rc3, log3)
    finally:
        c2.kubectl("-n", NS, "delete", "ciliumnetworkpolicy", "echo-from-mesh-3", "--ignore-not-found")
    rc1, log1 = _run_client(clusters["mesh-1"], "p2p-mesh-1", script)
    assert rc1 == 0 and log1.strip().endswith(name2), ("policy removed: mesh-1 reaches mesh-2 again", log1)


def _apiserver_pods(c):
    return [p.metadata.name for p in c.core().list_namespaced_pod(
        "kube-system", label_selector="k8s-app=clustermesh-apiserver").items]


def _pod_processes(c, wanted):
    """PIDs of c's pod containers (pods whose name wanted(name) accepts) that still run on this
    host. The API object of a deleted pod can be gone (the simulated kubelet removes it) before the
    fleet's pod runtime has stopped its processes on its next round; until then they still answer
    at the pod's old address."""
    pods = load_pods(os.path.dirname(c.fleet.kubeconfig))
    return [x["pid"] for p in pods.values() if p["cluster"] == c.name and wanted(p["name"])
            for x in p["containers"].values() if x.get("pid") and _pid_alive(x["pid"])]


def _apiserver_processes(c):
    return _pod_processes(c, lambda name: name.startswith("clustermesh-apiserver"))


def test_a_stopped_clustermesh_apiserver_is_reported_and_traffic_returns(clusters, check, run_module):
    """mesh-3's clustermesh-apiserver stopped: what mesh-3 changes from then on reaches no peer.
    Its echo server restarts (a new pod, a new address); mesh-1's agent keeps only the old backend
    (KVStoreMesh's cache of mesh-3), so the check from mesh-1 names mesh-3 as not answering, and
    mesh-3's own real agent, cut off from its local clustermesh-apiserver, reports its peers not
    ready. Once KVStoreMesh gives mesh-3 up, clustermesh_status's wait names mesh-3, and only
    mesh-3, from the agents, KVStoreMesh and Cilium's metrics. Once the apiserver is back, the new
    backend syncs and every cluster answers again. (One outage for the traffic check and the
    status module: each costs KVStoreMesh's two-minute heartbeat and a reconnect.)"""
    c1, c3 = clusters["mesh-1"], clusters["mesh-3"]
    old = set(p.metadata.name for p in _echo_pods(c3))
    c3.kubectl("-n", "kube-system", "scale", "deployment/clustermesh-apiserver", "--replicas=0")
    try:
        wait_for(lambda: not _apiserver_pods(c3), 90, "mesh-3's clustermesh-apiserver pods to be gone", interval=1)
        wait_for(lambda: not _apiserver_processes(c3), 60, "mesh-3's clustermesh-apiserver processes to stop",
                 interval=1)
        c3.kubectl("-n", NS, "rollout", "restart", "deployment/meshops-echo-mesh-3")
        c3.kubectl("-n", NS, "rollout", "status", "deployment/meshops-echo-mesh-3", "--timeout=120s", timeout=150)
        wait_for(lambda: [p for p in _echo_pods(c3) if p.metadata.name not in old] and
                 not [p for p in _echo_pods(c3) if p.metadata.name in old], 90, "mesh-3's old echo pod to be gone")
        # the old pod's server must also have stopped: until then it still answers at the old address
        wait_for(lambda: not _pod_processes(c3, lambda name: name in old), 60,
                 "mesh-3's old echo server process to stop", interval=1)
        r = check(c1, state="tested", clusters=HOSTS, requests=15)
        assert r["_rc"] != 0 and r["missing"] == ["mesh-3"], r.get("message") or r.get("msg")
        assert "NO answer from mesh-3" in r["msg"] and r["answered"] == ["mesh-1", "mesh-2"], r["msg"]
        # Cilium's own agent on mesh-3's real node: its local clustermesh-apiserver is gone
        st = {}

        def cut_off():
            st["name"], st["status"] = real_agent(c3)
            mesh = ((st["status"] or {}).get("cluster-mesh") or {}).get("clusters") or []
            return mesh and not any(m.get("ready") for m in mesh)
        wait_for(cut_off, 180, "mesh-3's real agent to report its peers not ready", interval=3)
        r3 = run_module("clustermesh_status", c3, agent_status="require")
        assert r3["ready"] is False and r3["agents"]["peers"]["mesh-1"]["ready"] == 0, r3["agents"]["peers"]
        assert any("Deployment clustermesh-apiserver not Ready" in s for s in r3["not_ready"]), r3["not_ready"]
        _status_names_the_stopped_peer(clusters, run_module)
    finally:
        c3.kubectl("-n", "kube-system", "scale", "deployment/clustermesh-apiserver", "--replicas=1")
    # back: the mesh reconnects, the new backend syncs, every cluster answers from every cluster
    # (every cluster: in this outage mesh-2's KVStoreMesh dropped mesh-3 too, and reconnects on its
    # own schedule)
    ready = _on_all(clusters, lambda c: run_module("clustermesh_status", c, agent_status="require", wait=True,
                                                   wait_timeout=300, wait_interval=3))
    for name in HOSTS:
        assert ready[name]["_rc"] == 0 and ready[name]["ready"] is True, (name, ready[name].get("msg"))
    # a reconnected KVStoreMesh hands mesh-3's new backend on to the agents within a few seconds:
    # the check is asked again (at most a minute) until every cluster answers from every cluster
    back = {}

    def every_cluster_answers():
        back.update(_on_all(clusters, lambda c: check(c, state="tested", clusters=HOSTS, requests=15)))
        return all(back[h]["_rc"] == 0 and back[h]["answered"] == HOSTS for h in HOSTS)
    try:
        wait_for(every_cluster_answers, 60, "every cluster to answer from every cluster again", interval=5)
    except AssertionError:
        raise AssertionError({h: back[h].get("msg") for h in HOSTS if back[h]["_rc"] != 0})


def _status_names_the_stopped_peer(clusters, run_module):
    """With mesh-3's clustermesh-apiserver stopped: clustermesh_status on mesh-1 (and mesh-2) names
    mesh-3 and nobody else, per source."""
    c1, c2 = clusters["mesh-1"], clusters["mesh-2"]

    def status(c, **args):
        return run_module("clustermesh_status", c, **args)
    # The real KVStoreMesh keeps a silent peer until its heartbeat is two minutes old
    # (pkg/kvstore/etcd.go), then drops it, counting a failure.
    wait_for(lambda: kvstoremesh_dropped(status, c1, "mesh-3"), 300, "mesh-1's KVStoreMesh to drop mesh-3",
             interval=5)
    r = status(c1, agent_status="require", wait=True, wait_timeout=5, wait_interval=2)
    assert r["_rc"] != 0 and r["ready"] is False
    assert "ClusterMesh not ready after 5s" in r["msg"]
    assert "peer mesh-3 not ready on agent" in r["msg"]
    assert "peer mesh-3 not ready on KVStoreMesh" in r["msg"]
    assert "peer mesh-2" not in r["msg"], "mesh-2 is healthy and must not be named"
    n = r["agents"]["available"]
    a3, a2 = r["agents"]["peers"]["mesh-3"], r["agents"]["peers"]["mesh-2"]
    real, simulated = agents_by_datapath(c1)
    # agents reach mesh-3 through the local KVStoreMesh: configured and connected. Cilium's
    # own agent keeps the peer ready (it reads KVStoreMesh's cache, which outlives the peer);
    # the stand-ins on simulated nodes pass on KVStoreMesh's verdict: not ready
    assert (a3["configured"], a3["connected"]) == (n, n), a3
    assert sorted(a3["not_ready"]) == simulated and a3["ready"] == len(real), a3
    assert (a2["configured"], a2["connected"], a2["ready"]) == (n, n, n), a2
    k3 = r["kvstoremesh"]["peers"]["mesh-3"]
    assert (k3["connected"], k3["ready"]) == (0, 0) and k3["failures"] >= 1, k3
    assert "not connected" in " ".join(k3["problems"].values())
    # the cause, from Cilium's own troubleshoot: nothing answers at mesh-3's address any more
    assert "connection refused" in " ".join(k3["problems"].values()), k3["problems"]
    assert k3["causes"] and all(k3["causes"].values()), k3
    # Cilium's own metrics say the same: mesh-3 not ready, with a failure counted; mesh-2 ready
    m3 = r["metrics"]["peers"]["mesh-3"]
    assert m3["ready"] is False and m3["failures"] >= 1 and m3["last_failure_age"] is not None, m3
    assert r["metrics"]["peers"]["mesh-2"]["ready"] is True, r["metrics"]["peers"]
    assert "mesh-3 NOT ready" in r["metrics"]["report"], r["metrics"]["report"]
    r2 = wait_for(lambda: kvstoremesh_dropped(status, c2, "mesh-3"), 120, "mesh-2's KVStoreMesh to drop mesh-3",
                  interval=5)
    real2, simulated2 = agents_by_datapath(c2)
    assert sorted(r2["agents"]["peers"]["mesh-3"]["not_ready"]) == simulated2, r2["agents"]["peers"]["mesh-3"]
    assert r2["agents"]["peers"]["mesh-1"]["ok"] is True


def test_cleanup_and_refusals(clusters, check):
    c = clusters["mesh-1"]
    c.kubectl("create", "namespace", "not-ours")
    try:
        mark = c.audit_mark()
        r = check(c, state="absent", namespace="not-ours")
        assert r["_rc"] != 0 and "was not created by this check" in r["msg"]
        r = check(c, state="tested", clusters=["mesh-2"])
        assert r["_rc"] != 0 and "clusters must include this cluster (mesh-1)" in r["msg"]
        r = check(c, state="present", node_selector={"bad key!": "x"})
        assert r["_rc"] != 0 and r["msg"].startswith("mesh-1: node_selector: 'bad key!' is not a label key"), r["msg"]
        assert _writes(c, mark) == []
    finally:
        c.kubectl("delete", "namespace", "not-ours", "--wait=false")
    gone = _on_all(clusters, lambda x: check(x, state="absent"))
    for name, x in clusters.items():
        assert gone[name]["_rc"] == 0 and gone[name]["changed"] is True, gone[name]
        assert _leftovers(x) == []
    assert check(c, state="absent")["changed"] is False
