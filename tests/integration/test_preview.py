"""Check mode that always previews (issue 11): every playbook with ``--check --diff`` on a table of
fleet states exits 0 (an unreachable member is reported by name), shows what would change per
cluster, never waits, and writes nothing (the audit log of every cluster is read).

The states follow one another in file order, each built from the previous one by one real run: empty
with one release installed by plain `helm install`; all installed, not meshed (install.yml); converged
(mesh.yml: every preview reports no change); converged, then one peer's Service port changed; one
member's API server stopped. The playbooks of a state run concurrently.
"""
import json
import subprocess
import time

import pytest

from conftest import NS, Playbook, listed, marks, meshed, uninstall_cilium, write_inventory, writes
from hack.fleet import runner


REMOVE = json.dumps({"clustermesh_remove": ["mesh-3"]})
PLAYBOOKS = {
    "site": ("site.yml",),
    "install": ("install.yml",),
    "mesh": ("mesh.yml",),
    "ipsec": ("ipsec.yml",),
    "rotate_ipsec": ("rotate_ipsec.yml",),
    "disconnect": ("disconnect.yml", "-e", REMOVE),
}


@pytest.fixture(scope="module")
def three(fleet):
    return fleet.clusters[:3]


@pytest.fixture(scope="module")
def inv(tmp_path_factory, three):
    return write_inventory(tmp_path_factory.mktemp("preview"), [c.name for c in three], name="inv")


@pytest.fixture(scope="module")
def book(fleet, collections_path, tmp_path_factory):
    return Playbook(fleet, collections_path, tmp_path_factory.mktemp("preview-runs"))


def previews(book, inv, names):
    """Run the named playbooks of PLAYBOOKS with --check --diff at the same time:
    {name: (rc, output, seconds)}."""
    procs = {}
    for name in names:
        argv = Playbook.command(inv, PLAYBOOKS[name][0], "--check", "--diff", *PLAYBOOKS[name][1:])
        procs[name] = (subprocess.Popen(argv, env=book.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        universal_newlines=True), time.time())
    out = {}
    for name, (proc, start) in procs.items():
        text = proc.communicate(timeout=900)[0]
        out[name] = (proc.returncode, text, time.time() - start)
        print("%-13s rc=%d %5.1f s" % (name, proc.returncode, out[name][2]))
    return out


def assert_previewed(results, names, expect_rc=0):
    for name in names:
        rc, out, seconds = results[name]
        assert rc == expect_rc, "%s --check exited %d:\n%s" % (name, rc, out[-6000:])
        # never waits: the readiness wait is skipped, and nothing takes the 300 s wait timeout
        assert "Wait for the mesh status" not in out or "skipping" in out.split("Wait for the mesh status", 1)[1][:400]
        # the time is printed by previews(); "under a minute" is a figure of `make bench`, not an assertion
        # here (concurrent runs share 2 CPUs with the fleet)


def test_preview_empty_fleet_and_a_release_installed_by_plain_helm(fleet, book, inv, three):
    """mesh-1 runs a release installed by plain `helm install` (with a hand-set value), mesh-2 and
    mesh-3 have nothing: every playbook previews, exits 0 and writes nothing."""
    uninstall_cilium(fleet.clusters)
    chart = fleet.chart(fleet.chart_versions[-1])
    three[0].helm("install", "cilium", chart, "-n", NS, "--set", "cluster.name=mesh-1", "--set", "cluster.id=1",
                  "--set", "operator.replicas=1", "--set", "ipam.mode=kubernetes")
    try:
        mark = marks(fleet.clusters)
        names = ["site", "mesh", "ipsec", "rotate_ipsec", "disconnect"]  # install.yml: the first plays of site
        res = previews(book, inv, names)
        assert writes(fleet.clusters, mark) == {c.name: [] for c in fleet.clusters}
    finally:
        uninstall_cilium(fleet.clusters)
    assert_previewed(res, names)
    site, mesh = res["site"][1], res["mesh"][1]
    expected = [
        # install: the CA that plain helm created on mesh-1 would be copied, mesh-2/3 installed
        ("site", site, "changed: [mesh-2]", "Copy the mesh CA to this cluster"),
        # connect: peers of clusters this run installs are computed from what it would do
        ("site", site, "Planned (installed by this run first): mesh-2, mesh-3", None),
        ("site", site, "mesh-2: would be connected once installed by this run; peers: mesh-1, mesh-3", None),
        ("site", site, '"(known once installed by this run)"', None),
        # mesh alone: the clusters without Cilium are left out by name, mesh-1 still previewed
        ("mesh", mesh, "mesh-2: Cilium is not installed (run install.yml first)", None),
        ("ipsec", res["ipsec"][1], "would copy the IPsec key from mesh-1", None),
        ("rotate_ipsec", res["rotate_ipsec"][1], "a real run would refuse to rotate", None),
        ("disconnect", res["disconnect"][1], "mesh-3: Cilium is not installed, nothing to connect or disconnect", None),
    ]
    missing = []
    for name, out, text, after in expected:
        part = out.split(after, 1)[1][:1500] if after and after in out else out
        if text not in part:
            missing.append("%s: %r" % (name, text))
    assert not missing, "%s\n\n%s\n\n%s" % (missing, site[-5000:], mesh[-3000:])
    assert all(Playbook.recap(site)[c.name]["changed"] >= 2 for c in three), Playbook.recap(site)


def test_preview_all_installed_not_meshed(fleet, book, inv, three):
    """Every cluster runs Cilium (install.yml, for real) but none is connected: the mesh and site previews
    plan every peer on every cluster, exit 0 and write nothing."""
    proc = book.execute(inv, "install.yml")
    assert proc.returncode == 0, proc.stdout[-6000:]
    assert not any(listed(c) for c in three)
    mark = marks(fleet.clusters)
    names = ["site", "mesh", "disconnect"]
    res = previews(book, inv, names)
    assert writes(fleet.clusters, mark) == {c.name: [] for c in fleet.clusters}
    assert_previewed(res, names)
    for name in ("site", "mesh"):
        r = Playbook.recap(res[name][1])
        assert all(r[c.name]["changed"] >= 1 and r[c.name]["failed"] == 0 for c in three), (name, r)
    # disconnect of mesh-3 from a mesh not connected yet: mesh-3 has nothing to drop, the two that stay
    # would be connected to each other (only)
    dis = res["disconnect"][1]
    r = Playbook.recap(dis)
    assert r["mesh-3"]["changed"] == 0 and r["mesh-1"]["changed"] == 1 and r["mesh-2"]["changed"] == 1, (r, dis[-3000:])
    assert '"name": "mesh-3"' not in dis.split("TASK [meshops.cilium.clustermesh : Connect this cluster", 1)[-1]
    assert not any(listed(c) for c in three)


def test_preview_of_a_converged_mesh_changes_nothing(fleet, book, inv, three):
    """mesh.yml (for real) connects them; then the site, install and mesh previews report no change on
    any cluster (a preview of a converged fleet is as quiet as a re-run) and write nothing."""
    proc = book.execute(inv, "mesh.yml")
    assert proc.returncode == 0, proc.stdout[-6000:]
    assert meshed(three)
    mark = marks(fleet.clusters)
    names = ["site", "install", "mesh"]
    res = previews(book, inv, names)
    assert writes(fleet.clusters, mark) == {c.name: [] for c in fleet.clusters}
    assert_previewed(res, names)
    for name in names:
        r = Playbook.recap(res[name][1])
        assert all(r[c.name]["changed"] == 0 for c in three), (name, r, res[name][1][-4000:])


def test_preview_converged_mesh_after_a_peer_port_changed(fleet, book, inv, three):
    """Converged, then mesh-2's clustermesh-apiserver port changes: mesh and disconnect previews show
    the peer change on mesh-1 and mesh-3, do not wait, write nothing."""
    t0 = time.time()
    if not meshed(three):  # run alone; in file order the previous test leaves the converged mesh
        uninstall_cilium(fleet.clusters)
        proc = book.execute(inv, "site.yml")
        assert proc.returncode == 0, proc.stdout[-6000:]
    print("converged state ready in %.1f s" % (time.time() - t0))
    svc = ["-n", NS, "patch", "svc", "clustermesh-apiserver", "--type=json", "-p"]
    three[1].kubectl(*svc + ['[{"op":"replace","path":"/spec/ports/0/port","value":2380}]'])
    try:
        mark = marks(fleet.clusters)
        res = previews(book, inv, ["mesh", "disconnect"])
        assert writes(fleet.clusters, mark) == {c.name: [] for c in fleet.clusters}
    finally:
        three[1].kubectl(*svc + ['[{"op":"replace","path":"/spec/ports/0/port","value":2379}]'])
    assert_previewed(res, ["mesh", "disconnect"])
    out = res["mesh"][1]
    assert '+            "port": 2380' in out, out[-4000:]
    r = Playbook.recap(out)
    assert r["mesh-1"]["changed"] >= 1 and r["mesh-3"]["changed"] >= 1 and r["mesh-2"]["changed"] == 0, r
    # disconnect: mesh-3 would drop every peer, the others would drop mesh-3
    dis = res["disconnect"][1]
    assert '+    "peers": []' in dis, dis[-4000:]
    assert all(Playbook.recap(dis)[c.name]["changed"] >= 1 for c in three), Playbook.recap(dis)
    # the real state is unchanged
    assert meshed(three)


def test_preview_with_one_member_unreachable_names_it_and_previews_the_others(fleet, book, inv, three):
    runner.stop_apiserver("mesh-3")
    try:
        mark = marks(three[:2])
        res = previews(book, inv, ["site"])
        assert writes(three[:2], mark) == {c.name: [] for c in three[:2]}
    finally:
        runner.start_apiserver("mesh-3")
    for name in ("site",):
        rc, out, _seconds = res[name]
        assert "mesh-3" in out and "127.0.0.1:%d" % (int(three[2].server.rsplit(":", 1)[1])) in out, out[-4000:]
        r = Playbook.recap(out)
        # the others are previewed to the end: no failure there
        assert r["mesh-1"]["failed"] == 0 and r["mesh-2"]["failed"] == 0, (name, r, out[-4000:])
        # no readiness wait on the way (the time itself is printed)
        assert "Wait for the mesh status" not in out or "skipping" in out.split("Wait for the mesh status", 1)[1][:400]
    # the site preview goes through its preflight (a warning names mesh-3) instead of stopping
    assert "cannot read the cluster" in res["site"][1], res["site"][1][-4000:]


BAD_VALUES = {
    # host: {cilium_values}; each cluster holds five bad values the chart or cilium_install would refuse
    "mesh-1": {"kubeProxyReplacement": "strict", "cluster": {"id": 7}, "MTU": "1500", "l7Proxy": "no",
               "devices": 5},
    "mesh-2": {"clustermesh": {"apiserver": {"tls": {"ca": {"cert": "eA=="}}}}, "routingMode": "native",
               "operator": {"replicas": "two"}, "k8sServicePort": [6443], "encryption": {"enabled": "yes"}},
    "mesh-3": {"kubeProxyReplacement": "partial", "bpf": {"masquerade": "on"}, "debug": {"enabled": 1},
               "ipv4NativeRoutingCIDR": ["10.0.0.0/8"], "hubble": {"enabled": "true"}},
}
# (cluster, field of the preflight table, words of the problem)
EXPECTED_ROWS = [
    ("mesh-1", "cilium_values", "strict"), ("mesh-1", "cilium_values", "cluster.id"),
    ("mesh-1", "cilium_values.MTU", "is not of type"), ("mesh-1", "cilium_values.l7Proxy", "is not of type"),
    ("mesh-1", "cilium_values.devices", "is not of type"),
    ("mesh-2", "cilium_values", "removed in chart 1.15"), ("mesh-2", "cilium_values", "routingMode"),
    ("mesh-2", "cilium_values.operator.replicas", "is not of type"),
    ("mesh-2", "cilium_values.k8sServicePort", "is not of type"),
    ("mesh-2", "cilium_values.encryption.enabled", "is not of type"),
    ("mesh-3", "cilium_values", "partial"), ("mesh-3", "cilium_values.bpf.masquerade", "is not of type"),
    ("mesh-3", "cilium_values.debug.enabled", "is not of type"),
    ("mesh-3", "cilium_values.ipv4NativeRoutingCIDR", "is not of type"),
    ("mesh-3", "cilium_values.hubble.enabled", "is not of type"),
]


def test_preflight_refuses_fifteen_bad_cilium_values_before_any_write(fleet, book, three, tmp_path):
    """Fifteen bad values given only through per-host cilium_values: install.yml (a real run) stops in its
    preflight with one table naming cluster, value path and fix for each, and nothing is written anywhere."""
    inv_bad = write_inventory(tmp_path, {h: {"cilium_values": v} for h, v in BAD_VALUES.items()}, name="bad")
    mark = marks(fleet.clusters)
    t0 = time.time()
    proc = book.execute(inv_bad, "install.yml")
    print("install.yml with 15 bad values: rc=%d %.1f s" % (proc.returncode, time.time() - t0))
    out = proc.stdout
    assert proc.returncode == 2, out[-6000:]
    assert writes(fleet.clusters, mark) == {c.name: [] for c in fleet.clusters}
    assert "Traceback" not in out
    result = json.JSONDecoder().raw_decode(out.split("FAILED! => ", 1)[1])[0]
    rows = [(p["cluster"], p["field"], p["problem"], p["fix"]) for p in result["problems"]]
    missing = [e for e in EXPECTED_ROWS
               if not any(r[0] == e[0] and r[1] == e[1] and e[2] in r[2] and r[3] for r in rows)]
    assert not missing, (missing, rows)
    assert "TASK [meshops.cilium.cilium" not in out  # stopped before the CA or any release
