"""playbooks/site.yml with Helm 4 (the fleet's helm4, built from helm.sh/helm/v4), chosen through
meshops_helm_binary as a user would, as the least-privilege automation identity (deploy/rbac).

Helm 3's converge and no-op re-run are test_rbac.py's (the fleet's helm, the same identity and
checks, and the same proof of which helm wrote the release); each costs about two minutes on the
CI machine, so the suite runs each major's once.

On the fleet's last two clusters (Cilium uninstalled first): one converge from nothing (a meshed
pair, two Helm revisions per cluster: install and connect), then a re-run that changes nothing
(changed=0 on every host, no write, no new revision). The release must really be Helm 4's work:
the requests that wrote its records carry Helm 4's user agent (Helm/4.3.2, so also the version
ldflag of the build), the records say server-side apply (``apply_method: ssa``: Helm 4 installs
so and keeps the method on upgrade, where Helm 3 records none) and helm's fields of cilium-config
are owned through an Apply operation (Helm 3: Update); helm4's own ``history`` reads the release.
Then ``cilium_install state=absent wait=true`` with helm4 removes the release of one cluster: Helm
4's ``uninstall --wait=legacy`` (HelmDialect). Phase seconds are printed (pytest -s shows them).
"""
import json
import os
import subprocess
import time

import pytest

from conftest import (NS, Playbook, helm_operations, marks, release_records, release_writers, uninstall_cilium,
                      write_inventory, writes)
from hack.fleet import build
from test_rbac import EXEC, MANIFEST, USER, _apply, _denied
from test_site import assert_meshed

TOOL = "helm4"


@pytest.fixture(scope="module")
def pair(fleet):
    """The fleet's last two clusters, Cilium uninstalled, the automation identity given the shipped
    permissions; after: Cilium uninstalled and the permissions removed again (the fleet's start)."""
    clusters = fleet.clusters[-2:]
    uninstall_cilium(clusters)
    for c in clusters:
        _apply(c, MANIFEST, EXEC)
    yield clusters
    uninstall_cilium(clusters)
    for c in clusters:
        c.kubectl("delete", "-f", EXEC, "-f", MANIFEST, "--ignore-not-found", "--wait=false", check=False)


def helm4(fleet):
    """The fleet's helm4 (build.binaries() for a fleet started before helm4 existed)."""
    path = fleet.binaries.get(TOOL) or build.binaries()[TOOL]
    assert os.access(path, os.X_OK), "%s is not built (python -m hack.fleet build)" % path
    return path


def history(fleet, c):
    """[(revision, status)] of ``c``'s release as helm4 reads it."""
    proc = subprocess.run([helm4(fleet), "--kubeconfig", c.kubeconfig, "history", "cilium", "-n", NS, "-o", "json"],
                          check=True, stdout=subprocess.PIPE, universal_newlines=True, timeout=120)
    return [(r["revision"], r["status"]) for r in json.loads(proc.stdout)]


def test_converge_and_noop_rerun_with_helm_4(fleet, pair, playbook, run_module, tmp_path):
    version = build.HELM4_VERSION
    bin_dir = os.path.join(os.path.dirname(fleet.kubeconfig), "bin")
    # what meshops_helm_binary names below is the built Helm 4
    assert os.path.realpath(os.path.join(bin_dir, TOOL)) == os.path.realpath(helm4(fleet))
    inv = write_inventory(tmp_path, {c.name: {"meshops_kubeconfig": c.data["automation_kubeconfig"]} for c in pair},
                          {"meshops_helm_binary": "{{ meshops_fleet.bin_dir }}/%s" % TOOL}, name="inv-helm4")
    phases = {}

    t = time.time()
    mark = marks(pair)
    out = playbook.run(inv, "site.yml")
    phases["converge"] = time.time() - t
    recap = Playbook.recap(out)
    assert sorted(recap) == sorted(c.name for c in pair) and all(r["failed"] == 0 for r in recap.values()), out[-3000:]
    assert_meshed(pair)
    for c in pair:
        assert _denied(c, mark[c.name]) == [], c.name  # the shipped permissions are enough for Helm 4
        # install + connect, read by Helm 4
        assert history(fleet, c) == [(1, "superseded"), (2, "deployed")], c.name
        # written by Helm 4: its user agent on every write of a release record ...
        assert release_writers(c, mark[c.name]) == {"Helm/" + version.lstrip("v")}, c.name
        # ... server-side, installed so and kept so by the upgrade
        recs = release_records(c)
        assert {r: recs[r].get("apply_method") for r in recs} == {1: "ssa", 2: "ssa"}, c.name
        assert helm_operations(c) == {"Apply"}, c.name
        events = [e for e in c.audit_events()[mark[c.name]:] if e.get("stage") == "ResponseComplete"
                  and e.get("verb") in ("create", "update", "patch")]
        assert {e["user"]["username"] for e in events} == {USER}, c.name

    t = time.time()
    mark = marks(fleet.clusters)
    out = playbook.run(inv, "site.yml")
    phases["no-op re-run"] = time.time() - t
    recap = Playbook.recap(out)
    assert sorted(recap) == sorted(c.name for c in pair), out[-3000:]
    assert all(r["changed"] == 0 and r["failed"] == 0 for r in recap.values()), out[-3000:]
    assert writes(fleet.clusters, mark) == {c.name: [] for c in fleet.clusters}
    for c in pair:
        assert history(fleet, c)[-1] == (2, "deployed"), c.name

    # Helm 4's uninstall with the module's wait (--wait=legacy), on one cluster (as admin)
    t = time.time()
    c = pair[-1]
    res = run_module("cilium_install", c, state="absent", wait=True, wait_timeout=120, helm_binary=helm4(fleet))
    phases["uninstall --wait"] = time.time() - t
    assert res["_rc"] == 0 and res["changed"] is True and res["action"] == "uninstalled", res["_output"][-2000:]
    assert release_records(c) == {}
    assert c.kubectl("-n", NS, "get", "configmap", "cilium-config", "--ignore-not-found", "-o", "name").stdout == ""
    print("\n[%s %s] %s" % (TOOL, version, ", ".join("%s %.0fs" % kv for kv in phases.items())))
