"""Cilium judges the mesh our playbooks build.

The fleet runs the pods of every clustermesh-apiserver Deployment for real (Cilium 1.20.2's
etcdinit, etcd, clustermesh and kvstoremesh; hack/fleet/pods.py). After site.yml on three
clusters, the REAL KVStoreMesh of each cluster (its own `kvstoremesh-dbg status -o json`, read
by `kubectl exec` into container kvstoremesh) must report every peer connected and synced with
the cluster ID of the inventory: first on chart 1.19, then after the upgrade to 1.20. On that
mesh, faults that only Cilium can judge must reach clustermesh_status with Cilium's own verdict
and cause (kvstoremesh-dbg troubleshoot). A stopped peer: test_realmesh_status.py, which runs next
and reuses this mesh.
"""
import base64
import json
import os
import sys
import time

import pytest

from conftest import REPO, Playbook, uninstall_cilium, wait_for

NS = "kube-system"
HOSTS = ["mesh-1", "mesh-2", "mesh-3"]
KVSTOREMESH_STATUS = ["-n", NS, "exec", "deploy/clustermesh-apiserver", "-c", "kvstoremesh", "--",
                      "clustermesh-apiserver", "kvstoremesh-dbg", "status", "-o", "json"]


@pytest.fixture(scope="module")
def clusters(fleet):
    cs = [c for c in fleet.clusters if c.name in HOSTS]
    if len(cs) < 3:
        pytest.fail("needs 3 fleet clusters")
    uninstall_cilium(cs)
    return dict((c.name, c) for c in cs)


def real_kvstoremesh(c):
    """{peer: entry} from the cluster's real KVStoreMesh, or None when it cannot be read yet."""
    proc = c.kubectl(*KVSTOREMESH_STATUS, check=False, timeout=60)
    if proc.returncode != 0:
        return None
    return dict((e["name"], e) for e in json.loads(proc.stdout))


def real_agent(c):
    """(pod name, `cilium-dbg status -o json` of Cilium's own agent) on the cluster's real node
    (hack/fleet/nodes.py), or (name, None) when it cannot be read yet."""
    nodes = [n.metadata.name for n in c.core().list_node(label_selector="meshops.io/datapath=real").items]
    assert nodes, "%s has no real node" % c.name
    pods = [p for p in c.core().list_namespaced_pod(NS, label_selector="k8s-app=cilium").items
            if p.spec.node_name == nodes[0]]
    if not pods:
        return None, None
    name = pods[0].metadata.name
    proc = c.kubectl("-n", NS, "exec", name, "-c", "cilium-agent", "--", "cilium-dbg", "status", "-o", "json",
                     check=False, timeout=60)
    return name, (json.loads(proc.stdout) if proc.returncode == 0 else None)


def inventory_ids():
    # write_inventory gives each host the number in its name as cilium_cluster_id
    return dict((h, int(h.rsplit("-", maxsplit=1)[-1])) for h in HOSTS)


def assert_every_peer_ready(clusters, timeout=180):
    ids = inventory_ids()
    for name, c in sorted(clusters.items()):
        peers = sorted(h for h in HOSTS if h != name)
        seen = {}

        def ready():
            seen["status"] = real_kvstoremesh(c)
            st = seen["status"] or {}
            return sorted(st) == peers and all(st[p].get("ready") for p in peers)
        try:
            wait_for(ready, timeout, "the real KVStoreMesh of %s to report %s ready" % (name, peers), interval=3)
        except AssertionError:
            raise AssertionError("%s: real KVStoreMesh status: %s" % (name, json.dumps(seen["status"], indent=1)))
        for p in peers:
            e = seen["status"][p]
            assert e["connected"] is True, e
            assert e["config"]["cluster-id"] == ids[p], e
            assert e["config"].get("required") and e["config"].get("retrieved"), e
            synced = e.get("synced") or {}
            assert {"nodes", "services", "identities", "endpoints"} <= set(synced), e
            assert all(synced.values()), e
    # Cilium's own agent on each real node: every peer ready through the local KVStoreMesh,
    # with the inventory's cluster ID, and its datapath up (not the fleet's stand-in)
    for name, c in sorted(clusters.items()):
        peers = sorted(h for h in HOSTS if h != name)
        seen = {}

        def agent_ready():
            seen["pod"], seen["status"] = real_agent(c)
            mesh = ((seen["status"] or {}).get("cluster-mesh") or {}).get("clusters") or []
            return sorted(m["name"] for m in mesh if m.get("ready")) == peers
        try:
            wait_for(agent_ready, timeout, "the real agent of %s to report %s ready" % (name, peers), interval=3)
        except AssertionError:
            raise AssertionError("%s: real agent %s status: %s" % (
                name, seen["pod"], json.dumps((seen["status"] or {}).get("cluster-mesh"), indent=1)))
        st = seen["status"]
        assert "meshops-simulated" not in st, st.get("meshops-simulated")
        assert st["cilium"]["state"] == "Ok" and st["kubernetes"]["state"] == "Ok", st["cilium"]
        for m in st["cluster-mesh"]["clusters"]:
            assert m["config"]["cluster-id"] == ids[m["name"]] and m["config"].get("kvstoremesh"), m
        # the tunnel the real datapath runs
        assert st["routing"]["inter-host-routing-mode"] == "Tunnel", st["routing"]
        assert st["routing"].get("tunnel-protocol") == "vxlan", st["routing"]


def releases(clusters):
    """{cluster: (chart, Helm revision)} of release cilium."""
    out = {}
    for name, c in clusters.items():
        rel = json.loads(c.helm("list", "-n", NS, "-o", "json").stdout)
        out[name] = (rel[0]["chart"], int(rel[0]["revision"])) if rel else None
    return out


def rollout_to(playbook, clusters, version):
    """The 1.19 mesh to ``version`` with playbooks/upgrade.yml and its default batches (the canary mesh-1, then
    the rest): a refusal and a preview write nothing; a gate failure (mesh-3's clustermesh-apiserver stopped)
    stops after the canary naming mesh-3 and the check; after the repair a re-run resumes without touching
    the canary (no change reported for it) and passes every gate. (Other refusals of a target are unit tests
    of the preflight; each phase's seconds are printed.)"""
    phases, started = [], time.time()

    def phase(name):
        phases.append("%s %.0fs" % (name, time.time() - started - sum(float(p.split()[-1][:-1]) for p in phases)))
    before = releases(clusters)
    assert all(r[0].startswith("cilium-1.19.") for r in before.values()), before
    # refused by the preflight of the whole mesh before any write: a skipped minor version
    out = playbook("upgrade.yml", HOSTS, "-e", "cilium_chart_version=1.21.0", expect_rc=2)
    assert "skips a minor version" in out, out[-3000:]
    assert "Upgrade this batch" not in out, out[-3000:]
    phase("refusal")
    # a preview of the whole mesh in one batch writes nothing
    out = playbook("upgrade.yml", HOSTS, "-e", "cilium_chart_version=%s" % version, "--check", "--diff",
                   "-e", json.dumps({"meshops_upgrade_batches": ["100%"]}))
    # one batch: one gate, over every member
    assert out.count("would wait up to") == 1, out[-3000:]
    assert "would wait up to 300s for every member (mesh-1, mesh-2, mesh-3)" in out, out[-3000:]
    assert releases(clusters) == before
    phase("preview")
    # mesh-3's clustermesh-apiserver stopped: the canary (mesh-1) is upgraded, the gate names mesh-3, and
    # nothing further is written
    down = clusters["mesh-3"]
    down.kubectl("-n", NS, "scale", "deployment/clustermesh-apiserver", "--replicas=0")
    try:
        out = playbook("upgrade.yml", HOSTS, "-e", "cilium_chart_version=%s" % version,
                       "-e", "upgrade_gate_timeout=10", expect_rc=2)
    finally:
        down.kubectl("-n", NS, "scale", "deployment/clustermesh-apiserver", "--replicas=1")
    assert "Rollout stopped after batch mesh-1: the mesh gate failed" in out, out[-5000:]
    assert "mesh-3: clustermesh-apiserver not ready" in out, out[-5000:]
    assert "Gate passed" not in out, out[-5000:]
    canary = releases(clusters)
    assert canary["mesh-1"] == ("cilium-%s" % version, before["mesh-1"][1] + 1), canary
    assert canary["mesh-2"] == before["mesh-2"] and canary["mesh-3"] == before["mesh-3"], canary
    phase("gate failure")
    # repaired: the re-run resumes, the canary untouched, one Helm revision per cluster in all; every gate passed
    out = playbook("upgrade.yml", HOSTS, "-e", "cilium_chart_version=%s" % version)
    assert "mesh-1: release already at chart %s" % version in out, out[-5000:]
    for batch in ("mesh-1", "mesh-2, mesh-3"):
        assert "Gate passed after batch %s: every member (mesh-1, mesh-2, mesh-3) ready" % batch in out, out[-5000:]
    assert Playbook.recap(out)["mesh-1"]["changed"] == 0, out[-3000:]
    after = releases(clusters)
    assert after == dict((h, ("cilium-%s" % version, before[h][1] + 1)) for h in HOSTS), (before, after)
    phase("resume")
    print("rollout phases: " + ", ".join(phases))


# the verify role's one task that reads the status of every cluster of the run (run once)
READ_ALL = "verify : Read the mesh status of the clusters of this run (one module process, side by side)"


@pytest.mark.parametrize("minor", ["1.19", "1.20"])
def test_real_kvstoremesh_reports_every_peer_connected_and_synced(
        fleet, collections_path, tmp_path, clusters, run_module, minor):
    version = [v for v in fleet.chart_versions if v.startswith(minor + ".")][0]
    playbook = Playbook(fleet, collections_path, tmp_path)
    if minor == "1.19":
        out = playbook("site.yml", HOSTS, "-v", "-e", "cilium_chart_version=%s" % version)
        # the first converge writes: the mesh play waits for the status of every cluster
        assert set(Playbook.outcomes(out, "Wait for the mesh status of this cluster").values()) == {"ok"}, out[-3000:]
        # ... which includes the clustermesh-apiserver's readiness: the install only waited for its
        # LoadBalancer address (the connect replaces its pods: their peers' host aliases)
        assert out.count('"Service/clustermesh-apiserver": "127.') == len(HOSTS), out[-3000:]
        assert '"Deployment/clustermesh-apiserver"' not in out, out[-3000:]
        # a no-op re-run writes nothing: the status each preflight description read is still current, so
        # the mesh play takes it (no second read, no wait) and the verify role asserts on it
        out = playbook("site.yml", HOSTS, "-e", "cilium_chart_version=%s" % version)
        assert all(r["changed"] == 0 for r in Playbook.recap(out).values()), out[-3000:]
        # (the include of the wait is skipped: one worker per cluster, not one per task it holds)
        assert Playbook.outcomes(out, "or wait for the mesh status") == dict.fromkeys(HOSTS, "skipping"), out[-3000:]
        assert "TASK [meshops.cilium.clustermesh : Wait for the mesh status" not in out, out[-3000:]
        # ... and the verify role reads nothing either: it asserts on the status the preflight read
        assert Playbook.outcomes(out, READ_ALL) == {HOSTS[0]: "skipping"}, out[-3000:]  # run once, for all
        for h in HOSTS:
            assert "%s: meshed with %s" % (h, ", ".join(sorted(set(HOSTS) - {h}))) in out, out[-3000:]
        # status.yml reads every cluster in one module process, each through its own connection: a
        # cluster whose own context is wrong fails alone, named, and the others are still verified
        broken = dict((h, {"meshops_context": "no-such-context"} if h == HOSTS[-1] else {}) for h in HOSTS)
        out = playbook("status.yml", broken, expect_rc=2)
        assert Playbook.outcomes(out, READ_ALL) == {HOSTS[0]: "ok"}, out[-3000:]
        verdicts = Playbook.outcomes(out, "every other member is an expected peer, and report")
        assert verdicts == dict(dict.fromkeys(HOSTS[:-1], "ok"), **{HOSTS[-1]: "fatal"}), out[-3000:]
        assert '%s: context \\"no-such-context\\" not found' % HOSTS[-1] in out, out[-3000:]
        for h in HOSTS[:-1]:
            assert "%s: meshed with %s" % (h, ", ".join(sorted(set(HOSTS) - {h}))) in out, out[-3000:]
    else:
        # the upgrade is a fleet rollout (playbooks/upgrade.yml)
        started = time.time()
        rollout_to(playbook, clusters, version)
        print("rollout to %s (refusal, preview, gate failure, resume): %.0fs" % (version, time.time() - started))
    for c in clusters.values():
        rel = json.loads(c.helm("list", "-n", NS, "-o", "json").stdout)
        assert rel[0]["chart"] == "cilium-%s" % version
    assert_every_peer_ready(clusters)
    # clustermesh_status reads the same real answer; the agents on simulated nodes say they are
    # simulated, the real agent is not
    r = run_module("clustermesh_status", clusters["mesh-1"], agent_status="require")
    assert r["ready"] is True, r["not_ready"]
    assert "kvstoremesh" not in r["simulated"] and r["simulated"]["agents"]
    assert r["agents"]["available"] > len(r["simulated"]["agents"]), r["agents"]
    k = r["kvstoremesh"]["peers"]
    assert sorted(k) == ["mesh-2", "mesh-3"] and all(p["ok"] for p in k.values()), k


def _status_until(run_module, c, peer, predicate, what, timeout=120):
    seen = {}

    def check():
        r = run_module("clustermesh_status", c, agent_status="require")
        seen["r"] = r
        p = ((r.get("kvstoremesh") or {}).get("peers") or {}).get(peer)
        return p is not None and predicate(p, " ".join(p["problems"].values()))
    try:
        wait_for(check, timeout, what, interval=2)
    except AssertionError:
        raise AssertionError("%s; last status: %s" % (what, json.dumps(seen.get("r", {}).get("kvstoremesh"))[:3000]))
    return seen["r"]


def _restored(run_module, c):
    r = run_module("clustermesh_status", c, agent_status="require", wait=True, wait_timeout=180, wait_interval=3)
    assert r["_rc"] == 0 and r["ready"] is True, r.get("msg")


def _b64(data):
    return base64.b64encode(data if isinstance(data, bytes) else data.encode()).decode()


def test_a_peer_entry_at_a_wrong_port_never_connects(clusters, run_module):
    """mesh-1's entry for mesh-3 (Secret cilium-kvstoremesh) changed behind our back to a port
    where nothing listens: the real KVStoreMesh never establishes that connection. (Cilium keeps
    the dial error to itself while a first connection is pending: its status says "Waiting for
    initial connection to be established" for up to 15 minutes, remote_cluster.go.)"""
    c1 = clusters["mesh-1"]
    core = c1.core()
    original = core.read_namespaced_secret("cilium-kvstoremesh", NS).data["mesh-3"]
    text = base64.b64decode(original).decode()
    assert ":2379" in text, text
    bad = base64.b64encode(text.replace(":2379", ":2399").encode()).decode()
    core.patch_namespaced_secret("cilium-kvstoremesh", NS, {"data": {"mesh-3": bad}})
    try:
        r = _status_until(run_module, c1, "mesh-3", lambda p, why: p["ready"] == 0 and p["connected"] == 0,
                          "mesh-1's KVStoreMesh to drop mesh-3 at port 2399")
        why = " ".join(r["kvstoremesh"]["peers"]["mesh-3"]["problems"].values())
        assert "Waiting for initial connection to be established" in why, why
        # the cause, from Cilium's own troubleshoot in that KVStoreMesh pod
        assert "Cannot establish TCP connection to mesh-3.mesh.cilium.io:2399" in why, why
        assert "connection refused" in why, why
        assert r["kvstoremesh"]["peers"]["mesh-2"]["ok"] is True
        assert "peer mesh-3 not ready on KVStoreMesh" in " ".join(r["not_ready"])
        assert "connection refused" in " ".join(r["not_ready"])
        # the same verdict straight from kvstoremesh-dbg (false fields are omitted in its JSON)
        st = real_kvstoremesh(c1)
        assert not st["mesh-3"].get("connected") and not st["mesh-3"].get("ready"), st["mesh-3"]
    finally:
        core.patch_namespaced_secret("cilium-kvstoremesh", NS, {"data": {"mesh-3": original}})
        _restored(run_module, c1)


def test_a_peer_ca_replaced_behind_our_back_is_never_trusted(clusters, run_module):
    """mesh-1's KVStoreMesh is made to trust, for mesh-3, a CA someone else generated (its entry in
    Secret cilium-kvstoremesh changed behind our back, the way Cilium names a per-cluster CA): mesh-3's
    server certificate, issued by the mesh's CA, never verifies, and Cilium says so. (A server
    certificate replaced on mesh-3's side instead makes its own pod unready, so the Service answers no
    connection at all: the stopped-peer case of test_realmesh_status.py.)"""
    sys.path.insert(0, REPO)
    from hack.fleet import pki  # noqa: PLC0415 - the fleet's own certificate helper

    c1 = clusters["mesh-1"]
    core = c1.core()
    original = core.read_namespaced_secret("cilium-kvstoremesh", NS).data["mesh-3"]
    text = base64.b64decode(original).decode()
    ca_line = [line for line in text.splitlines() if line.startswith("trusted-ca-file:")]
    assert ca_line, text
    foreign = os.path.join(os.path.dirname(ca_line[0].split(":", 1)[1].strip()), "mesh-3.etcd-client-ca.crt")
    ca_pem = pki.make_ca("someone-else's CA")[0]
    core.patch_namespaced_secret("cilium-kvstoremesh", NS, {"data": {
        "mesh-3": _b64(text.replace(ca_line[0], "trusted-ca-file: %s" % foreign)),
        "mesh-3.etcd-client-ca.crt": _b64(ca_pem)}})
    try:
        r = _status_until(run_module, c1, "mesh-3",
                          lambda p, why: p["ready"] == 0 and p["connected"] == 0 and "TLS connection" in why,
                          "mesh-1's KVStoreMesh to distrust mesh-3 behind a foreign CA", timeout=300)
        why = " ".join(r["kvstoremesh"]["peers"]["mesh-3"]["problems"].values())
        # the cause, from Cilium's own troubleshoot: the TLS handshake fails on the certificate
        assert "Cannot establish TLS connection to mesh-3.mesh.cilium.io:2379" in why, why
        assert "x509" in why or "certificate" in why, why
        assert r["kvstoremesh"]["peers"]["mesh-2"]["ok"] is True
        st = real_kvstoremesh(c1)
        assert not st["mesh-3"].get("connected") and not st["mesh-3"].get("ready"), st["mesh-3"]
    finally:
        core.patch_namespaced_secret("cilium-kvstoremesh", NS, {"data": {
            "mesh-3": original, "mesh-3.etcd-client-ca.crt": None}})
        # later tests reuse this mesh: it must be whole again, even when an assertion failed
        _restored(run_module, c1)


def test_the_agent_standin_refuses_kvstoremesh_status(fleet):
    """KVStoreMesh is never simulated: asked for it, the stand-in fails."""
    import subprocess  # noqa: PLC0415

    proc = subprocess.run([sys.executable, os.path.join(REPO, "hack", "fleet", "agent_standin.py"), "kvstoremesh",
                           "kvstoremesh-dbg", "status", "-o", "json"], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, check=False)
    assert proc.returncode != 0 and proc.stdout == ""
    assert "not simulated" in proc.stderr
