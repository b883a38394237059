"""playbooks/site.yml on the fleet: check mode on a fresh fleet, and the helpers that judge a mesh.

The converge itself, its no-op re-run (zero writes, at most 15 requests per cluster), --limit and
disconnect.yml run in test_rbac.py, as the least-privileged automation identity (deploy/rbac):
one converge serves both, and a converge that needs more than the shipped permissions fails there."""
import json

import pytest

from conftest import NS, Playbook, marks, mesh_secret_peers, release_values, uninstall_cilium, writes


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


def peers_of(c):
    """{name: entry} of clustermesh.config.clusters: a list before chart 1.20, a map from 1.20."""
    clusters = release_values(c)["clustermesh"]["config"]["clusters"]
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


def test_check_mode_on_a_fresh_fleet_writes_nothing_and_reports_changes(fleet, fresh, playbook):
    three = fresh[:3]
    mark = marks(fresh)
    out = playbook("install.yml", [c.name for c in three], "--check", "--diff")
    recap = Playbook.recap(out)
    assert all(r["changed"] >= 2 for r in recap.values()), out[-3000:]
    assert writes(fresh, mark) == {c.name: [] for c in fresh}
    for c in three:
        assert json.loads(c.helm("list", "-n", NS, "-o", "json").stdout) == []
