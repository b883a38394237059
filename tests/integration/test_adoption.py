"""Safe adoption of a release installed by plain `helm install` (issue 11).

mesh-1 runs a release installed by hand with datapath values the inventory does not repeat (native
routing and its CIDR, kube-proxy replacement with the API server address, BPF masquerading) and
one that is not datapath (operator.replicas). install.yml on a one-cluster mesh:
* by default (cilium_existing_values: refuse) stops in the preflight with one row per datapath value
  (cluster, value path, the release's value, what the run would do, the fix) and writes nothing (audit
  log); the check-mode preview shows the same table;
* with keep converges keeping every value of the release, and a re-run changes nothing;
* with reset converges without them, and a warning names the dropped operator.replicas.
"""
import json

import pytest

from conftest import NS, release_values, revision, uninstall_cilium, write_inventory

DATAPATH = ["routingMode", "ipv4NativeRoutingCIDR", "kubeProxyReplacement", "k8sServiceHost", "k8sServicePort",
            "bpf.masquerade"]


@pytest.fixture(scope="module")
def m1(fleet):
    c = fleet.clusters[0]
    uninstall_cilium([c])
    yield c
    uninstall_cilium([c])


def hand_install(fleet, c):
    uninstall_cilium([c])
    c.helm("install", "cilium", fleet.chart(fleet.chart_versions[-1]), "-n", NS,
           "--set", "cluster.name=%s" % c.name, "--set", "cluster.id=1", "--set", "ipam.mode=kubernetes",
           "--set", "routingMode=native", "--set", "ipv4NativeRoutingCIDR=10.0.0.0/8",
           "--set", "autoDirectNodeRoutes=true", "--set", "kubeProxyReplacement=true",
           "--set", "k8sServiceHost=127.0.0.1", "--set", "k8sServicePort=%d" % c.data["ports"]["apiserver"],
           "--set", "bpf.masquerade=true", "--set", "operator.replicas=1", timeout=300)


def test_refused_by_the_preflight_with_every_datapath_value_and_no_write(fleet, playbook, tmp_path, m1):
    hand_install(fleet, m1)
    inv = write_inventory(tmp_path, [m1.name], name="inv")
    mark = m1.audit_mark()
    out = playbook.run(inv, "install.yml", expect_rc=2)
    assert m1.mutations_since(mark) == [], m1.mutations_since(mark)
    assert "TASK [meshops.cilium.cilium" not in out  # stopped before the CA or the release
    result = json.JSONDecoder().raw_decode(out.split("FAILED! => ", 1)[1])[0]
    rows = dict((p["field"], p) for p in result["problems"] if p["cluster"] == m1.name)
    for path in DATAPATH:
        row = rows.get("cilium_values.%s" % path)
        assert row and row["severity"] == "error", (path, sorted(rows))
        assert "the installed release has %s=" % path in row["problem"], row
        assert "cilium_existing_values: keep" in row["fix"], row
    assert '"native"' in rows["cilium_values.routingMode"]["problem"]
    assert 'change it to "tunnel"' in rows["cilium_values.routingMode"]["problem"]
    # not datapath: no row (a warning at install time)
    assert "cilium_values.operator.replicas" not in rows
    # the preview says the same and writes nothing either
    mark = m1.audit_mark()
    out = playbook.run(inv, "install.yml", "--check", "--diff", expect_rc=2)
    assert "cilium_values.routingMode" in out and m1.mutations_since(mark) == []
    assert revision(m1) == 1


def test_keep_converges_keeping_the_release_values(fleet, playbook, tmp_path, m1):
    hand_install(fleet, m1)
    inv = write_inventory(tmp_path, [m1.name], name="inv", group_vars={"cilium_existing_values": "keep"})
    out = playbook.run(inv, "install.yml")
    v = release_values(m1)
    assert v["routingMode"] == "native" and v["ipv4NativeRoutingCIDR"] == "10.0.0.0/8", v
    assert v["kubeProxyReplacement"] is True and v["k8sServiceHost"] == "127.0.0.1", v
    assert v["bpf"] == {"masquerade": True} and v["operator"] == {"replicas": 1}, v
    assert v["cluster"] == {"name": m1.name, "id": 1}
    assert "kept the release's own value of" in out and "routingMode" in out
    rev = revision(m1)
    # a re-run with keep changes nothing
    mark = m1.audit_mark()
    out = playbook.run(inv, "install.yml")
    assert revision(m1) == rev
    assert [e for e in m1.mutations_since(mark) if (e.get("objectRef") or {}).get("resource") == "secrets"] == []


def test_reset_converges_without_them_and_names_the_other_dropped_values(fleet, playbook, tmp_path, m1):
    hand_install(fleet, m1)
    inv = write_inventory(tmp_path, [m1.name], name="inv", group_vars={"cilium_existing_values": "reset"})
    out = playbook.run(inv, "install.yml")
    v = release_values(m1)
    assert v["routingMode"] == "tunnel" and v["kubeProxyReplacement"] is False, v
    for key in ("ipv4NativeRoutingCIDR", "k8sServiceHost", "bpf", "operator", "autoDirectNodeRoutes"):
        assert key not in v, (key, v)
    assert "operator.replicas (dropped)" in out, out[-6000:]
