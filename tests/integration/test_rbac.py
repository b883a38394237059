"""site.yml end to end with a token bound ONLY to deploy/rbac/*.yaml, on RBAC-enabled API servers.

The base manifest plus the optional status-exec Role (the local inventory reads agent status
through exec): a converge from an empty fleet (at most 2 Helm revisions per cluster), its no-op
re-run (zero writes, at most 15 API requests per cluster), --limit, the traffic check with its
optional Role and provided Namespace, a missing permission's 403 message, and disconnect.yml.
This is the suite's site.yml converge: a step that needs more than the shipped permissions fails.
It is also the suite's Helm 3 converge and no-op re-run (test_helm_majors.py runs Helm 4's).
"""
import json
import os
import re

import pytest

from conftest import (NS, REPO, Playbook, helm_operations, marks, release_records, release_writers, revision,
                      uninstall_cilium, write_inventory, writes)
from hack import rbac_manifest
from hack.fleet import build
from test_site import assert_meshed, peers_of, requests_by_module

RBAC = os.path.join(REPO, "deploy", "rbac")
MANIFEST = os.path.join(RBAC, "meshops-automation.yaml")
EXEC = os.path.join(RBAC, "meshops-automation-status-exec.yaml")
TRAFFIC = os.path.join(RBAC, "meshops-automation-traffic-check.yaml")
TRAFFIC_NS = "meshops-traffic-check"
USER = "meshops-automation"


def _apply(c, *manifests):
    for m in manifests:
        c.kubectl("apply", "-f", m)


def _only_our_bindings(c):
    """Delete every binding of USER that none of our manifests holds (another checkout's, a
    previous version's), so that the identity has exactly the permissions applied here."""
    ours = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"])
            for m in (MANIFEST, EXEC, TRAFFIC) for o in rbac_manifest.load(m)}
    for kind in ("rolebindings", "clusterrolebindings"):
        items = json.loads(c.kubectl("get", kind, "-A", "-o", "json").stdout)["items"]
        for b in items:
            key = (b["kind"], b["metadata"].get("namespace"), b["metadata"]["name"])
            if key not in ours and any(s.get("name") == USER for s in b.get("subjects") or []):
                args = ["-n", key[1]] if key[1] else []
                c.kubectl(*(args + ["delete", kind, key[2]]))


@pytest.fixture(scope="module")
def automation(fleet):
    three = fleet.clusters[:3]
    uninstall_cilium(three)
    for c in three:
        _only_our_bindings(c)
        _apply(c, MANIFEST, EXEC)
    yield three
    for c in three:  # put back whatever a test removed, then leave the clusters clean
        _apply(c, MANIFEST, EXEC)
        c.kubectl("delete", "-f", TRAFFIC, "--ignore-not-found", "--wait=false", check=False)
    uninstall_cilium(three)


def _inv(tmp_path, clusters, name="inv-automation"):
    return write_inventory(tmp_path, {c.name: {"meshops_kubeconfig": c.data["automation_kubeconfig"]}
                                      for c in clusters}, name=name)


def _denied(c, mark):
    """(verb, resource, subresource, name) of every request of USER refused since ``mark``."""
    return [(e["verb"], e["objectRef"].get("resource"), e["objectRef"].get("subresource"), e["objectRef"].get("name"))
            for e in c.audit_events()[mark:]
            if e.get("stage") == "ResponseComplete" and e["user"]["username"] == USER
            and e.get("responseStatus", {}).get("code") == 403]


def _rule_index(c, role, match):
    """Index of the first rule of Role ``role`` for which ``match(rule)`` holds."""
    rules = json.loads(c.kubectl("-n", NS, "get", "role", role, "-o", "json").stdout)["rules"]
    hits = [i for i, r in enumerate(rules) if match(r)]
    assert hits, rules
    return hits[0], rules[hits[0]]


def test_the_manifest_names_every_object_the_charts_render(fleet):
    """Every supported chart, rendered with the roles' values (and with IPsec): each ConfigMap,
    Secret, Service, ServiceAccount, DaemonSet, Deployment, (Cluster)Role(Binding) and Namespace is
    named in a rule granting get/update/patch/delete (no cluster needed: helm template)."""
    objects = rbac_manifest.load(MANIFEST)
    for version in fleet.chart_versions:
        for values in (rbac_manifest.ROLE_VALUES, rbac_manifest.IPSEC_VALUES):
            rendered = rbac_manifest.render(fleet.binaries["helm"], fleet.chart(version), values)
            assert rendered and rbac_manifest.missing_rules(rendered, objects) == [], version


def test_site_is_green_with_only_the_shipped_permissions(fleet, automation, playbook, tmp_path):
    for c in automation:  # the identity has no other binding: it cannot even read cilium-ca without ours
        who = c.kubectl("--kubeconfig", c.data["automation_kubeconfig"], "auth", "whoami", "-o", "json").stdout
        assert json.loads(who)["status"]["userInfo"]["username"] == USER
        # the narrowed base: no Secret outside the named ones and the release records can be written
        can = c.kubectl("--kubeconfig", c.data["automation_kubeconfig"], "auth", "can-i", "update",
                        "secrets/bootstrap-token-abcdef", "-n", NS, check=False).stdout.strip()
        assert can == "no"
    mark = marks(automation)
    out = playbook.run(_inv(tmp_path, automation), "site.yml")
    assert all(r["failed"] == 0 for r in Playbook.recap(out).values()), out[-3000:]
    assert_meshed(automation)
    # install (1) + connect (1): at most 2 Helm revisions per cluster
    assert {c.name: revision(c) for c in automation} == {c.name: 2 for c in automation}, out[-3000:]
    # this is the suite's Helm 3 converge (test_helm_majors.py has Helm 4's): written by the fleet's
    # helm, client-side (no apply method recorded, helm's fields owned through Update operations)
    for c in automation:
        assert release_writers(c, mark[c.name]) == {"Helm/" + build.HELM_VERSION.lstrip("v")}, c.name
        assert [r.get("apply_method") for r in release_records(c).values()] == [None, None], c.name
        assert helm_operations(c) == {"Update"}, c.name
    for c in automation:
        events = [e for e in c.audit_events()[mark[c.name]:] if e.get("stage") == "ResponseComplete"]
        users = {e["user"]["username"] for e in events if e.get("verb") in {"create", "update", "patch"}}
        assert users == {USER}, (c.name, users)  # every write came from the automation identity
        assert _denied(c, mark[c.name]) == [], c.name
        # agent status was read through the optional exec Role
        assert c.execs_since(mark[c.name]), c.name


def test_a_converged_rerun_writes_nothing_and_limit_keeps_every_peer(fleet, automation, playbook, tmp_path):
    # the re-run takes its inventory from the clusters' own kubeconfig files (one per cluster, the
    # automation identity's) through the inventory plugin meshops.cilium.kubeconfig: hosts, connection
    # variables and cluster IDs; it must find the same mesh
    hosts = [c.name for c in automation]
    inv = write_inventory(tmp_path, hosts, name="inv-plugin",
                          kubeconfig=[c.data["automation_kubeconfig"] for c in automation])
    mark = marks(fleet.clusters)
    out = playbook.run(inv, "site.yml")
    assert sorted(Playbook.recap(out)) == hosts, out[-3000:]
    assert all(r["changed"] == 0 for r in Playbook.recap(out).values()), out[-3000:]
    assert writes(fleet.clusters, mark) == {c.name: [] for c in fleet.clusters}
    # a no-op run reads each cluster's state once and hands it on: one description that also reads the
    # mesh status (5 + 3 reads: ConfigMap cilium-config once for both, one module run), no CA reads (the preflight saw the same complete CA
    # everywhere), no read by the install (the description shows the release already deployed with this
    # chart and these values: the action plugin answers, no module runs), no read by the connect either
    # (this cluster's description shows exactly the wanted peers deployed: its action plugin answers),
    # and no second status read (nothing was written, so the mesh play takes the preflight's): 8
    # requests per cluster (and the 4 status commands), within the 15 of the target
    for c in automation:
        by_module = requests_by_module(c, mark[c.name])
        assert by_module.get("clustermesh_info") == 8, (c.name, by_module)
        assert "cilium_ca" not in by_module and "(copy source)" not in by_module, (c.name, by_module)
        assert "cilium_install" not in by_module and "clustermesh_connect" not in by_module, (c.name, by_module)
        assert "clustermesh_status" not in by_module, (c.name, by_module)
        assert sum(by_module.values()) <= 15, (c.name, by_module)
        assert _denied(c, mark[c.name]) == [], c.name

    # --limit: only mesh-2 is in the play, yet it keeps its full peer list and nothing else is written
    mark = marks(fleet.clusters)
    out = playbook.run(inv, "site.yml", "--limit", automation[1].name)
    assert sorted(Playbook.recap(out)) == [automation[1].name]
    assert sorted(peers_of(automation[1])) == sorted([automation[0].name, automation[2].name])
    assert writes(fleet.clusters, mark) == {c.name: [] for c in fleet.clusters}


def test_the_traffic_check_runs_with_its_optional_role(fleet, automation, playbook, tmp_path):
    """verify_traffic on the fleet, as the automation identity with the check's optional Role: the
    check's pods run for real on the real nodes (the local inventory's node selector), every
    cluster answers, and every request the check makes was allowed."""
    for c in automation:
        _apply(c, TRAFFIC)
    mark = marks(automation)
    # 40 requests spread over 3 clusters: one cluster left without an answer by chance is 3*(2/3)^40
    extra = {"verify_traffic": True, "verify_traffic_create_namespace": False, "verify_traffic_requests": 40}
    out = playbook.run(_inv(tmp_path, automation), "status.yml", "-e", json.dumps(extra))
    for c in automation:
        answered = re.search(r"%s: 40 requests; answers from ([^;\"]*)" % c.name, out)
        assert answered, out[-3000:]
        assert sorted(re.findall(r"(mesh-\d+) \(\d+\)", answered.group(1))) == sorted(x.name for x in automation)
        assert _denied(c, mark[c.name]) == [], c.name
        created = {(e["objectRef"].get("resource"), e["objectRef"].get("name")) for e in c.mutations_since(mark[c.name])
                   if e["verb"] == "create"}
        assert {("deployments", "meshops-echo-" + c.name), ("services", "meshops-echo"),
                ("jobs", "meshops-echo-client")} <= created, (c.name, created)
        # the provided Namespace (and so the Role in it) is kept; the check's objects are gone
        assert c.kubectl("get", "namespace", TRAFFIC_NS, "-o", "name").stdout.strip() == "namespace/" + TRAFFIC_NS
        left = c.kubectl("-n", TRAFFIC_NS, "get", "deployments,services,jobs", "-o", "name").stdout.split()
        assert left == [], (c.name, left)
        assert not [e for e in c.mutations_since(mark[c.name]) if e["objectRef"].get("resource") == "namespaces"]
    assert "Traceback" not in out


def test_a_removed_permission_gives_the_403_message(fleet, automation, playbook, tmp_path):
    c = automation[0]
    i, rule = _rule_index(c, USER, lambda r: "cilium-ca" in (r.get("resourceNames") or []))
    assert rule["resources"] == ["secrets"] and "get" in rule["verbs"]
    verbs = [v for v in rule["verbs"] if v != "get"]
    c.kubectl("-n", NS, "patch", "role", USER, "--type=json",
              "-p", json.dumps([{"op": "replace", "path": "/rules/%d/verbs" % i, "value": verbs}]))
    mark = marks(fleet.clusters)
    try:
        out = playbook.run(_inv(tmp_path, automation), "site.yml", expect_rc=2)
        written = writes(fleet.clusters, mark)  # before the manifest is applied again below
    finally:
        c.kubectl("apply", "-f", MANIFEST)  # the next test starts with every permission
    assert ('%s: permission denied (403) while trying to read Secret kube-system/cilium-ca: user "%s" is missing '
            'the permission to get "secrets" in the core API group in namespace "kube-system"' % (c.name, USER)) in out
    assert "Traceback" not in out
    assert written == {x.name: [] for x in fleet.clusters}


def test_a_permission_helm_needs_gives_the_403_message(fleet, automation, playbook, tmp_path):
    c = automation[1]
    i, rule = _rule_index(c, USER, lambda r: "cilium-config" in (r.get("resourceNames") or []))
    assert rule["resources"] == ["configmaps"]
    verbs = [v for v in rule["verbs"] if v not in ("patch", "update")]
    c.kubectl("-n", NS, "patch", "role", USER, "--type=json",
              "-p", json.dumps([{"op": "replace", "path": "/rules/%d/verbs" % i, "value": verbs}]))
    # a changed agent value makes helm patch ConfigMap cilium-config
    try:
        out = playbook.run(_inv(tmp_path, automation), "install.yml", "--limit", c.name,
                           "-e", json.dumps({"cilium_values": {"debug": {"enabled": True}}}), expect_rc=2)
    finally:
        c.kubectl("apply", "-f", MANIFEST)
    assert ('%s: permission denied (403): user "%s" is missing the permission to patch "configmaps" in the core '
            'API group in namespace "kube-system"; helm failed to' % (c.name, USER)) in out, out[-3000:]
    assert "Traceback" not in out


def test_disconnect_removes_one_member_everywhere(fleet, automation, playbook, tmp_path):
    """disconnect.yml, as the automation identity, on the mesh converged above (last: it leaves
    two). Adding a fourth cluster (one Helm upgrade per existing member) is test_connect.py's."""
    gone = automation[2]
    rest = [c for c in automation if c is not gone]
    mark = marks(fleet.clusters)
    out = playbook.run(_inv(tmp_path, automation), "disconnect.yml",
                       "-e", json.dumps({"clustermesh_remove": [gone.name]}))
    for c in rest:
        assert gone.name not in peers_of(c), c.name
    assert_meshed(rest)
    assert peers_of(gone) == {}, out[-2000:]
    for c in automation:
        assert _denied(c, mark[c.name]) == [], c.name
