"""Fault behaviour and partial-inventory safety of site.yml / mesh.yml on the fleet.

One module-scoped mesh of three clusters: converged once under a fault, then reused.
"""
import subprocess

import pytest

from conftest import (Playbook, asymmetric, listed, marks, runner, uninstall_cilium, write_inventory,
                      writes)
from test_site import assert_meshed

CONNECT_BANNER = "TASK [meshops.cilium.clustermesh : Connect this cluster to every other member]"


@pytest.fixture(scope="module")
def three(fleet):
    clusters = fleet.clusters[:3]
    uninstall_cilium(clusters)
    yield clusters
    for c in clusters:
        runner.start_apiserver(c.name)  # no-op when running
    uninstall_cilium(clusters)


def _inv(tmp_path, clusters, name="inv", **group_vars):
    return write_inventory(tmp_path, [c.name for c in clusters], group_vars or None, name=name)


def test_an_api_server_failing_mid_run_leaves_the_others_meshed_and_a_rerun_converges(
        fleet, three, playbook, tmp_path):
    argv, env = Playbook.command(_inv(tmp_path, three), "site.yml"), playbook.env
    lines, killed = [], False
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            universal_newlines=True)
    try:
        for line in proc.stdout:
            lines.append(line)
            # mesh-3 was described (and so is a peer of the others), then fails before its own connect
            if not killed and line.startswith(CONNECT_BANNER):
                runner.stop_apiserver("mesh-3")
                killed = True
        rc = proc.wait(timeout=1200)
    finally:
        if proc.poll() is None:
            proc.kill()
    out = "".join(lines)
    assert killed, out[-3000:]
    assert rc == 2, out[-3000:]
    r = Playbook.recap(out)
    assert r["mesh-3"]["failed"] == 1 and r["mesh-1"]["failed"] == 0 and r["mesh-2"]["failed"] == 0, r
    assert "mesh-3: cannot connect to the API server" in out and "connection refused" in out
    # mesh-1 and mesh-2 took mesh-3 back: they list each other only
    assert "TASK [meshops.cilium.clustermesh : Take back peers added in this run" in out
    assert listed(three[0]) == {"mesh-2"} and listed(three[1]) == {"mesh-1"}
    assert "NOT verified (left out of this run): mesh-3" in out

    runner.start_apiserver("mesh-3")
    assert asymmetric(three) == [], "one-sided peers after the fault"
    playbook.run(_inv(tmp_path, three, "inv-rerun"), "site.yml")
    assert_meshed(three)
    assert asymmetric(three) == []


def test_limit_with_an_unreachable_member_never_prunes_and_writes_nothing(fleet, three, playbook, tmp_path):
    assert_meshed(three)  # the state the previous test converged
    runner.stop_apiserver("mesh-3")
    try:
        mark = marks(three)
        # site.yml stops in its preflight, which reads every member and names the one it cannot read
        out = playbook.run(_inv(tmp_path, three), "site.yml", "--limit", "mesh-1", expect_rc=2)
        assert "cannot read the cluster: mesh-3" in out, out[-3000:]
        assert "Traceback" not in out
        assert writes(three, mark) == {c.name: [] for c in three}
        # mesh.yml alone (no preflight): the clustermesh role refuses to prune what it cannot see
        # (no status wait: mesh-3 is really down, so its agents would never report it ready)
        out = playbook.run(_inv(tmp_path, three), "mesh.yml", "--limit", "mesh-1",
                           "-e", "clustermesh_wait=false")
        assert sorted(Playbook.recap(out)) == ["mesh-1"]
        assert "Exact pruning refused: this run cannot see mesh-3" in out
        assert listed(three[0]) == {"mesh-2", "mesh-3"}
        assert writes(three, mark) == {c.name: [] for c in three}
    finally:
        runner.start_apiserver("mesh-3")
    assert_meshed(three)


def test_a_simulated_job_slice_keeps_every_peer_and_writes_nothing(fleet, three, playbook, tmp_path):
    # An AWX slice holds only its own hosts and, here, only its own cluster's kubeconfig: it cannot
    # describe the other members, which the declared full membership names.
    slice_host = three[1]
    inv = write_inventory(tmp_path, {slice_host.name: {"meshops_kubeconfig": slice_host.kubeconfig}},
                          {"meshops_mesh_members": [c.name for c in three]}, name="inv-slice")
    mark = marks(three)
    out = playbook.run(inv, "mesh.yml")
    assert sorted(Playbook.recap(out)) == [slice_host.name]
    assert "Exact pruning refused: this run cannot see mesh-1, mesh-3" in out
    assert listed(slice_host) == {"mesh-1", "mesh-3"}
    assert writes(three, mark) == {c.name: [] for c in three}
    # the same slice may not prune when told to fail instead of merging
    out = playbook.run(inv, "mesh.yml", "-e", "clustermesh_incomplete_membership=fail", expect_rc=2)
    assert "Exact pruning refused, nothing was changed: this run cannot see mesh-1, mesh-3" in out
    assert writes(three, mark) == {c.name: [] for c in three}
