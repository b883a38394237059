"""clustermesh_connect / clustermesh_status against real API servers with the real Cilium chart.

Needs 4 fleet clusters (MESHOPS_FLEET_CLUSTERS=4). Cilium 1.19 is installed with helm on every
cluster, sharing mesh-1's CA (Secret cilium-ca copied with its Helm metadata before install, the
documented way); the modules run through the real `ansible` command with the collection on
ANSIBLE_COLLECTIONS_PATH. Helm upgrades are counted by release revision (each upgrade writes
exactly one revision) and by the audit log's creates of release Secrets.
"""
import concurrent.futures
import json
import os

import pytest

from conftest import NS, ModuleRunner, mesh_secret_peers, release_values, revision, uninstall_cilium, wait_for

VERSION = os.environ.get("MESHOPS_CONNECT_CHART", "1.19.2")


@pytest.fixture(scope="module")
def clusters(fleet):
    if len(fleet.clusters) < 4:
        pytest.fail("needs 4 fleet clusters (MESHOPS_FLEET_CLUSTERS=4)")
    return fleet.clusters[:4]


class Runner(ModuleRunner):
    def connect(self, cluster, peers, **kw):
        return self("clustermesh_connect", cluster, peers=peers, helm_binary=self.fleet.binaries["helm"], **kw)


@pytest.fixture(scope="module")
def run(fleet, collections_path):
    return Runner(fleet, collections_path)


def _values(c, index):
    return ["--set", "cluster.name=%s" % c.name, "--set", "cluster.id=%d" % index,
            "--set", "ipam.mode=kubernetes", "--set", "kubeProxyReplacement=true",
            "--set", "k8sServiceHost=127.0.0.1", "--set", "k8sServicePort=%d" % c.data["ports"]["apiserver"],
            "--set", "clustermesh.useAPIServer=true",
            "--set", "clustermesh.apiserver.service.type=LoadBalancer"]


def _copy_ca(src, dst):
    secret = src.core().read_namespaced_secret("cilium-ca", NS)
    secret.metadata = type(secret.metadata)(name="cilium-ca", namespace=NS, labels=secret.metadata.labels,
                                            annotations=secret.metadata.annotations)
    dst.core().create_namespaced_secret(NS, secret)


def _install(fleet, c, index):
    c.helm("install", "cilium", fleet.chart(VERSION), "--namespace", NS, *_values(c, index), timeout=300)


def release_clusters(c):
    values = release_values(c)
    return values.get("clustermesh", {}).get("config", {})


def release_creates(c, mark):
    return [e for e in c.audit_events()[mark:]
            if e.get("verb") == "create" and e.get("stage") == "ResponseComplete"
            and (e.get("objectRef") or {}).get("resource") == "secrets"
            and ((e.get("objectRef") or {}).get("name") or "").startswith("sh.helm.release.v1.cilium.")]


@pytest.fixture(scope="module")
def mesh(fleet, clusters, run):
    """Cilium on mesh-1..4 (one CA), not yet connected; the descriptors of all four."""
    uninstall_cilium(clusters)
    _install(fleet, clusters[0], 1)
    wait_for(lambda: _has_ca(clusters[0]), 60, "cilium-ca on mesh-1")
    for c in clusters[1:]:
        _copy_ca(clusters[0], c)
    with concurrent.futures.ThreadPoolExecutor(3) as pool:
        list(pool.map(lambda ic: _install(fleet, ic[1], ic[0] + 2), enumerate(clusters[1:])))

    def describe():
        out = [run("clustermesh_info", c, context=c.name) for c in clusters]
        return out if all(d.get("endpoint") and d["endpoint"]["ips"] for d in out) else None
    infos = wait_for(describe, 90, "LoadBalancer IPs of every clustermesh-apiserver", interval=2)
    yield {"clusters": clusters, "infos": infos}
    if not os.environ.get("MESHOPS_KEEP_MESH"):
        uninstall_cilium(clusters)


def _has_ca(c):
    try:
        return bool(c.core().read_namespaced_secret("cilium-ca", NS).data)
    except Exception:
        return False


def _lb_ips(info):
    return info["endpoint"]["ips"]


def test_descriptors_share_one_ca_and_have_lb_endpoints(mesh):
    infos = mesh["infos"]
    assert [i["cluster_name"] for i in infos] == ["mesh-1", "mesh-2", "mesh-3", "mesh-4"]
    assert len(set(i["ca"]["sha256"] for i in infos)) == 1
    for i, c in zip(infos, mesh["clusters"]):
        assert i["endpoint"]["service_type"] == "LoadBalancer"
        assert set(_lb_ips(i)) <= set(c.network["lb_pool"])
        assert i["release"]["chart_version"] == VERSION and i["kvstoremesh"] is True


def test_check_mode_on_a_fresh_mesh_writes_nothing(mesh, run):
    clusters, infos = mesh["clusters"], mesh["infos"][:3]
    marks = [c.audit_mark() for c in clusters]
    for c in clusters[:3]:
        res = run.connect(c, infos, context=c.name, check=True, diff=True)
        assert res["_rc"] == 0, res["_output"]
        assert res["changed"] is True and len(res["added"]) == 2 and c.name not in res["added"]
    for c, m in zip(clusters, marks):
        assert c.mutations_since(m) == [], c.name


def test_connect_three_one_upgrade_each(mesh, run):
    clusters, infos = mesh["clusters"][:3], mesh["infos"][:3]
    before = [revision(c) for c in clusters]
    marks = [c.audit_mark() for c in clusters]
    for c in clusters:
        res = run.connect(c, infos, context=c.name)
        assert res["_rc"] == 0, res["_output"]
        others = sorted(i["cluster_name"] for i in infos if i["cluster_name"] != c.name)
        assert res["changed"] is True and res["peers"] == others and res["added"] == others
        assert res["skipped_self"] == [c.name] and res["clusters_form"] == "list"
        assert "only the clustermesh-apiserver" in res["rollout"]
    for c, rev, m in zip(clusters, before, marks):
        assert revision(c) == rev + 1, c.name
        creates = release_creates(c, m)
        assert len(creates) <= 1, creates
        cfg = release_clusters(c)
        assert cfg["enabled"] is True
        want = [{"name": i["cluster_name"], "ips": sorted(_lb_ips(i)), "port": i["endpoint"]["port"]}
                for i in infos if i["cluster_name"] != c.name]
        assert cfg["clusters"] == want, c.name
        assert sorted(mesh_secret_peers(c)) == [w["name"] for w in want], c.name


def test_status_reports_control_plane_and_agent_exec_as_unavailable(mesh, run):
    c = mesh["clusters"][0]
    res = run("clustermesh_status", c, context=c.name, wait=True, wait_timeout=120, exec_timeout=10)
    assert res["_rc"] == 0, res["_output"]
    assert res["expected_peers"] == ["mesh-2", "mesh-3"] and res["local_name"] == "mesh-1"
    assert res["apiserver"]["ready"] is True and res["kvstoremesh_enabled"] is True
    agents = res["agents"]
    # kwok's simulated kubelets serve no exec here: every agent is reported, none is a traceback.
    assert agents["total"] == 3
    if agents["available"] == 0:
        assert agents["unverifiable"] is True and len(agents["unavailable"]) == 3
        assert res["verified"]["agents"] is False
        # (the "NOT verified" warning is checked in the unit tests: the one-line callback used
        # here does not print warnings)
        assert all("empty output" in r or "exec" in r for r in agents["unavailable"].values())
    print("agent status on the fleet:", json.dumps(agents["unavailable"])[:400])


def test_second_run_changes_nothing_and_writes_nothing(mesh, run):
    clusters, infos = mesh["clusters"], mesh["infos"][:3]
    marks = [c.audit_mark() for c in clusters]
    for c in clusters[:3]:
        res = run.connect(c, infos, context=c.name)
        assert res["_rc"] == 0, res["_output"]
        assert res["changed"] is False and res["rollout"] is None
    for c, m in zip(clusters, marks):
        assert c.mutations_since(m) == [], c.name


def test_adding_a_fourth_upgrades_each_existing_cluster_once(mesh, run):
    clusters, infos = mesh["clusters"], mesh["infos"]
    before = [revision(c) for c in clusters]
    for c in clusters:
        res = run.connect(c, infos, context=c.name)
        assert res["_rc"] == 0, res["_output"]
        assert res["changed"] is True
        assert res["added"] == (["mesh-4"] if c.name != "mesh-4" else ["mesh-1", "mesh-2", "mesh-3"])
    for c, rev in zip(clusters, before):
        assert revision(c) == rev + 1, c.name
        others = [n for n in ("mesh-1", "mesh-2", "mesh-3", "mesh-4") if n != c.name]
        assert [e["name"] for e in release_clusters(c)["clusters"]] == others
        assert sorted(mesh_secret_peers(c)) == others


def test_exact_prunes_and_merge_keeps(mesh, run):
    clusters, infos = mesh["clusters"], mesh["infos"]
    m1 = clusters[0]
    rev = revision(m1)
    res = run.connect(m1, infos[:3], context=m1.name, diff=True)
    assert res["_rc"] == 0, res["_output"]
    assert res["changed"] is True and res["removed"] == ["mesh-4"] and res["peers"] == ["mesh-2", "mesh-3"]
    assert revision(m1) == rev + 1
    assert [e["name"] for e in release_clusters(m1)["clusters"]] == ["mesh-2", "mesh-3"]
    assert sorted(mesh_secret_peers(m1)) == ["mesh-2", "mesh-3"]
    # merge with only one peer listed keeps the others and changes nothing
    m2 = clusters[1]
    mark = m2.audit_mark()
    res = run.connect(m2, infos[:1], context=m2.name, membership="merge")
    assert res["_rc"] == 0, res["_output"]
    assert res["changed"] is False and res["kept"] == ["mesh-3", "mesh-4"]
    assert m2.mutations_since(mark) == []


@pytest.mark.parametrize("field, change, words", [
    ("cluster_id", {"cluster_id": 3}, "both have cluster ID 3"),
    ("max_connected_clusters", {"max_connected_clusters": 511}, "mesh-1 has 255, mesh-2 has 511"),
    ("ca", {"ca": {"sha256": "AB:CD:EF", "subject_key_id": "abcd"}}, "the CAs differ"),
])
def test_refusals_write_nothing(mesh, run, field, change, words):
    clusters, infos = mesh["clusters"], mesh["infos"]
    bad = dict(infos[1], **change)
    marks = [c.audit_mark() for c in clusters]
    m1 = clusters[0]
    rev = revision(m1)
    res = run.connect(m1, [infos[0], bad, infos[2]], context=m1.name)
    assert res["_rc"] != 0 and "localhost | FAILED" in res["_output"]
    assert "refusing to connect" in res["msg"] and words in res["msg"], res["msg"]
    assert field in [p["field"] for p in res["problems"]]
    assert all("mesh-2" in p["clusters"] for p in res["problems"])
    assert revision(m1) == rev
    for c, m in zip(clusters, marks):
        assert c.mutations_since(m) == [], c.name
