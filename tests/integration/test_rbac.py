"""site.yml with a token bound ONLY to deploy/rbac/meshops-automation.yaml, on RBAC-enabled API servers."""
import json
import os

import pytest

from conftest import REPO
from safety_helpers import NS, inventory, recap, reset, run
from test_site import assert_meshed, marks, writes

MANIFEST = os.path.join(REPO, "deploy", "rbac", "meshops-automation.yaml")
USER = "meshops-automation"


@pytest.fixture(scope="module")
def automation(fleet):
    three = fleet.clusters[:3]
    reset(three)
    for c in three:
        c.kubectl("apply", "-f", MANIFEST)
    yield three
    for c in three:  # put back whatever a test removed, then leave the clusters clean
        c.kubectl("apply", "-f", MANIFEST)
    reset(three)


def _inv(tmp_path, clusters, name="inv-automation"):
    return inventory(tmp_path, name, {c.name: {"meshops_kubeconfig": c.data["automation_kubeconfig"]}
                                      for c in clusters})


def test_site_is_green_with_only_the_shipped_permissions(fleet, automation, collections_path, tmp_path):
    for c in automation:  # the identity has no other binding: it cannot even list Secrets without ours
        who = c.kubectl("--kubeconfig", c.data["automation_kubeconfig"], "auth", "whoami", "-o", "json").stdout
        assert json.loads(who)["status"]["userInfo"]["username"] == USER
    mark = marks(automation)
    out = run(fleet, collections_path, _inv(tmp_path, automation), "site.yml")
    assert all(r["failed"] == 0 for r in recap(out).values()), out[-3000:]
    assert_meshed(automation)
    for c in automation:
        events = [e for e in c.audit_events()[mark[c.name]:] if e.get("stage") == "ResponseComplete"]
        users = {e["user"]["username"] for e in events if e.get("verb") in {"create", "update", "patch"}}
        assert users == {USER}, (c.name, users)  # every write came from the automation identity
        denied = [(e["verb"], e["objectRef"].get("resource")) for e in events
                  if e["user"]["username"] == USER and e.get("responseStatus", {}).get("code") == 403]
        assert denied == [], (c.name, denied)


def test_a_removed_permission_gives_the_403_message(fleet, automation, collections_path, tmp_path):
    c = automation[0]
    role = json.loads(c.kubectl("-n", NS, "get", "role", USER, "-o", "json").stdout)
    assert role["rules"][0]["resources"] == ["secrets"]
    verbs = [v for v in role["rules"][0]["verbs"] if v != "get"]
    c.kubectl("-n", NS, "patch", "role", USER, "--type=json",
              "-p", json.dumps([{"op": "replace", "path": "/rules/0/verbs", "value": verbs}]))
    mark = marks(fleet.clusters)
    try:
        out = run(fleet, collections_path, _inv(tmp_path, automation), "site.yml", expect_rc=2)
        written = writes(fleet.clusters, mark)  # before the manifest is applied again below
    finally:
        c.kubectl("apply", "-f", MANIFEST)  # the next test starts with every permission
    assert ('%s: permission denied (403) while trying to read Secret kube-system/cilium-ca: user "%s" is missing '
            'the permission to get "secrets" in the core API group in namespace "kube-system"' % (c.name, USER)) in out
    assert "Traceback" not in out
    assert written == {x.name: [] for x in fleet.clusters}


def test_a_permission_helm_needs_gives_the_403_message(fleet, automation, collections_path, tmp_path):
    c = automation[1]
    role = json.loads(c.kubectl("-n", NS, "get", "role", USER, "-o", "json").stdout)
    assert role["rules"][1]["resources"][0] == "configmaps"
    verbs = [v for v in role["rules"][1]["verbs"] if v not in ("patch", "update")]
    c.kubectl("-n", NS, "patch", "role", USER, "--type=json",
              "-p", json.dumps([{"op": "replace", "path": "/rules/1/verbs", "value": verbs}]))
    # a changed agent value makes helm patch ConfigMap cilium-config
    try:
        out = run(fleet, collections_path, _inv(tmp_path, automation), "install.yml", "--limit", c.name,
                  "-e", json.dumps({"cilium_values": {"debug": {"enabled": True}}}), expect_rc=2)
    finally:
        c.kubectl("apply", "-f", MANIFEST)
    assert ('%s: permission denied (403): user "%s" is missing the permission to patch "configmaps" in the core '
            'API group in namespace "kube-system"; helm failed to' % (c.name, USER)) in out, out[-3000:]
    assert "Traceback" not in out
