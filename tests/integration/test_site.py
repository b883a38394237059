"""playbooks/site.yml end to end on the fleet: inventory -> connected ClusterMesh."""
import json

import pytest

from conftest import NS, Playbook, marks, mesh_secret_peers, uninstall_cilium, write_inventory, writes


@pytest.fixture(scope="module", autouse=True)
def _clean_after_module(fleet):
    yield
    uninstall_cilium(fleet.clusters)


@pytest.fixture
def fresh(fleet):
    """Every cluster of the fleet without Cilium and without a CA, before the test (a test may
    leave its mesh to the next one; the module cleans up after its last test)."""
    uninstall_cilium(fleet.clusters)
    return fleet.clusters


def release(c):
    out = c.helm("get", "values", "cilium", "-n", NS, "-o", "json").stdout
    return json.loads(out)


def revision(c):
    return json.loads(c.helm("status", "cilium", "-n", NS, "-o", "json").stdout)["version"]


def peers_of(c):
    """{name: entry} of clustermesh.config.clusters: a list before chart 1.20, a map from 1.20."""
    clusters = release(c)["clustermesh"]["config"]["clusters"]
    if isinstance(clusters, dict):
        return dict((n, dict(e, name=n)) for n, e in clusters.items())
    return {e["name"]: e for e in clusters}


def lb_ip(c):
    return c.core().read_namespaced_service("clustermesh-apiserver", NS).status.load_balancer.ingress[0].ip


def ca_cert(c):
    return c.core().read_namespaced_secret("cilium-ca", NS).data["ca.crt"]


def requests_by_module(c, mark):
    """{module: requests} since ``mark``, from the user agent our modules send (exec streams aside)."""
    out = {}
    for e in c.audit_events()[mark:]:
        agent = (e.get("userAgent") or "").split(" ")[0]
        if e.get("stage") != "ResponseComplete" or not agent.startswith("meshops.cilium"):
            continue
        name = agent.split("/", 1)[1] if "/" in agent else "(copy source)"
        out[name] = out.get(name, 0) + 1
    return out


def assert_meshed(clusters):
    names = sorted(c.name for c in clusters)
    ca = {ca_cert(c) for c in clusters}
    assert len(ca) == 1, "clusters do not share one CA"
    ips = {c.name: lb_ip(c) for c in clusters}
    for c in clusters:
        others = [n for n in names if n != c.name]
        peers = peers_of(c)
        assert sorted(peers) == others, (c.name, peers)
        for n in others:
            assert peers[n]["ips"] == [ips[n]] and peers[n]["port"] == 2379, (c.name, n, peers[n])
        assert sorted(mesh_secret_peers(c)) == others, c.name


def test_site_converges_is_idempotent_and_survives_limit(fleet, fresh, playbook):
    three = fresh[:3]
    hosts = [c.name for c in three]
    out = playbook("site.yml", hosts)
    assert_meshed(three)
    # install (1) + connect (1): at most 2 Helm revisions per cluster
    assert {c.name: revision(c) for c in three} == {n: 2 for n in hosts}, out[-3000:]

    # the re-run takes its inventory from the fleet's kubeconfig through the inventory plugin
    # meshops.cilium.kubeconfig (hosts, connection variables and cluster IDs): it must find the same mesh
    mark = marks(fresh)
    plugin_inv = write_inventory(playbook.tmp_path, hosts, name="inv-plugin", kubeconfig=fleet.kubeconfig)
    out = playbook.run(plugin_inv, "site.yml")
    assert sorted(Playbook.recap(out)) == hosts, out[-3000:]
    assert all(r["changed"] == 0 for r in Playbook.recap(out).values()), out[-3000:]
    assert writes(fresh, mark) == {c.name: [] for c in fresh}
    # a no-op run reads each cluster's state once and hands it on: one description (5 reads), no CA
    # reads (the preflight saw the same complete CA everywhere), the release once by the install (an
    # unchanged release is not polled) and once by the connect (identity and CA from the description),
    # one mesh status (4 reads): at most 15 requests per cluster
    for c in three:
        by_module = requests_by_module(c, mark[c.name])
        assert by_module.get("clustermesh_info") == 5, (c.name, by_module)
        assert "cilium_ca" not in by_module and "(copy source)" not in by_module, (c.name, by_module)
        assert by_module.get("cilium_install") == 1 and by_module.get("clustermesh_connect") == 1, (c.name, by_module)
        assert by_module.get("clustermesh_status") == 4, (c.name, by_module)
        assert sum(by_module.values()) <= 15, (c.name, by_module)

    # --limit: only mesh-2 is in the play, yet it keeps its full peer list and nothing else is written
    mark = marks(fresh)
    out = playbook("site.yml", hosts, "--limit", "mesh-2")
    assert sorted(Playbook.recap(out)) == ["mesh-2"]
    assert sorted(peers_of(three[1])) == ["mesh-1", "mesh-3"]
    assert writes(fresh, mark) == {c.name: [] for c in fresh}


def _is_meshed(clusters):
    try:
        assert_meshed(clusters)
    except Exception:  # noqa: BLE001 - any missing piece means "not meshed"
        return False
    return True


def test_disconnect_removes_one_member_everywhere(fleet, playbook):
    """disconnect.yml on the mesh the test above leaves (converged here when run alone). Adding a
    fourth cluster (one Helm upgrade per existing member) is test_connect.py's."""
    three = fleet.clusters[:3]
    if not _is_meshed(three):
        uninstall_cilium(fleet.clusters)
        playbook("site.yml", [c.name for c in three])
    gone = three[2]
    out = playbook("disconnect.yml", [c.name for c in three], "-e", json.dumps({"clustermesh_remove": [gone.name]}))
    rest = [c for c in three if c is not gone]
    for c in rest:
        assert gone.name not in peers_of(c), c.name
    assert_meshed(rest)
    assert peers_of(gone) == {}, out[-2000:]


def test_check_mode_on_a_fresh_fleet_writes_nothing_and_reports_changes(fleet, fresh, playbook):
    three = fresh[:3]
    mark = marks(fresh)
    out = playbook("install.yml", [c.name for c in three], "--check", "--diff")
    recap = Playbook.recap(out)
    assert all(r["changed"] >= 2 for r in recap.values()), out[-3000:]
    assert writes(fresh, mark) == {c.name: [] for c in fresh}
    for c in three:
        assert json.loads(c.helm("list", "-n", NS, "-o", "json").stdout) == []
