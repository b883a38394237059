"""Every read, write and helm call goes to the cluster the task names, and the result names it.

Two real API servers of the fleet: the TARGET (mesh-3) and the OTHER (mesh-4). Each connection
setup (token kubeconfig, client-certificate kubeconfig, exec-plugin kubeconfig, inline
kubeconfig, host + api_key, and a kubeconfig of the other cluster overridden by host + api_key)
is run with the K8S_AUTH_* environment of an AWX credential pointing at the OTHER cluster. The
audit logs of both API servers prove where each request went: every request for the objects
the modules touch reached the target, none reached the other.
"""
import json
import sys

import pytest
import yaml

from conftest import NS, uninstall_cilium
from hack.fleet import runner

SECRET = "cilium-ipsec-keys"


@pytest.fixture(scope="module")
def pair(fleet):
    target, other = fleet.clusters[2], fleet.clusters[3]
    uninstall_cilium([target, other])
    for c in (target, other):
        c.kubectl("-n", NS, "delete", "secret", SECRET, "--ignore-not-found")
    yield target, other
    uninstall_cilium([target, other])
    for c in (target, other):
        c.kubectl("-n", NS, "delete", "secret", SECRET, "--ignore-not-found")


def awx_env(cluster):
    """What AWX's Kubernetes credential puts in the environment: one cluster for the whole job."""
    return {"K8S_AUTH_HOST": cluster.server, "K8S_AUTH_API_KEY": runner.admin_token(cluster.data),
            "K8S_AUTH_SSL_CA_CERT": cluster.data["ca_file"], "K8S_AUTH_VERIFY_SSL": "true"}


def setups(target, other, tmp_path):
    """{name: connection options} that all name ``target``."""
    token = runner.admin_token(target.data)
    with open(target.kubeconfig) as f:
        inline = yaml.safe_load(f)
    plugin = tmp_path / "token-plugin"
    plugin.write_text("#!%s\nimport json\nprint(json.dumps({'apiVersion': 'client.authentication.k8s.io/v1', "
                      "'kind': 'ExecCredential', 'status': {'token': %r}}))\n" % (sys.executable, token))
    plugin.chmod(0o755)
    exec_cfg = json.loads(json.dumps(inline))
    exec_cfg["users"][0]["user"] = {"exec": {"apiVersion": "client.authentication.k8s.io/v1",
                                             "command": str(plugin), "interactiveMode": "Never"}}
    exec_path = tmp_path / "kubeconfig-exec"
    exec_path.write_text(yaml.safe_dump(exec_cfg))
    return {
        "token kubeconfig": dict(kubeconfig=target.kubeconfig, context=target.name),
        "client certificate kubeconfig": dict(kubeconfig=target.data["dir"] + "/kubeconfig-cert"),
        "exec plugin kubeconfig": dict(kubeconfig=str(exec_path)),
        "inline kubeconfig": dict(kubeconfig=inline, context=target.name),
        "host + api_key": dict(host=target.server, api_key=token, ca_cert=target.data["ca_file"]),
        "other kubeconfig + host + api_key": dict(kubeconfig=other.kubeconfig, host=target.server, api_key=token,
                                                  ca_cert=target.data["ca_file"]),
    }


def touched(cluster, mark, names):
    """Audit events since ``mark`` on objects called one of ``names`` (or Helm release records)."""
    out = []
    for e in cluster.audit_events()[mark:]:
        ref = e.get("objectRef") or {}
        name = ref.get("name") or ""
        if e.get("stage") != "ResponseComplete":
            continue
        if name in names or name.startswith("sh.helm.release.v1.cilium.") or \
                (ref.get("resource") == "secrets" and "owner=helm" in e.get("requestURI", "")):
            out.append((e.get("verb"), ref.get("resource"), name))
    return out


def test_ipsec_keys_every_auth_form_with_the_environment_pointing_elsewhere(pair, run_module, tmp_path):
    target, other = pair
    for name, conn in setups(target, other, tmp_path).items():
        target.kubectl("-n", NS, "delete", "secret", SECRET, "--ignore-not-found")
        marks = target.audit_mark(), other.audit_mark()
        r = run_module("ipsec_keys", None, env=awx_env(other), namespace=NS, **conn)
        assert r["_rc"] == 0 and r["changed"], (name, r["_output"][-2000:])
        assert r["api_server"] == target.server, name
        assert r["connection"]["ignored_environment"] == sorted(awx_env(other)), name
        writes = [t for t in touched(target, marks[0], {SECRET}) if t[0] == "create"]
        assert writes == [("create", "secrets", "")] or writes == [("create", "secrets", SECRET)], (name, writes)
        assert touched(other, marks[1], {SECRET}) == [], name
        assert other.kubectl("-n", NS, "get", "secret", SECRET, check=False).returncode != 0, name


def test_install_ca_and_connect_go_to_the_named_cluster_only(pair, run_module, fleet, tmp_path):
    target, other = pair
    conns = setups(target, other, tmp_path)
    env = awx_env(other)
    mark_other = other.audit_mark()

    # cilium_ca: created in the target only
    r = run_module("cilium_ca", None, env=env, **conns["exec plugin kubeconfig"])
    assert r["_rc"] == 0 and r["action"] == "created" and r["api_server"] == target.server, r["_output"][-2000:]

    # cilium_install: the release read and the helm install both on the target
    install = dict(chart_ref=fleet.chart(fleet.chart_versions[-1]), cluster_name=target.name, cluster_id=3,
                   ipam_mode="kubernetes", kube_proxy_replacement=True, k8s_service_host="127.0.0.1",
                   k8s_service_port=int(target.server.rsplit(":", 1)[1]),
                   clustermesh_apiserver={"enabled": True, "service_type": "LoadBalancer"},
                   values={"operator": {"replicas": 1}})
    mark_target = target.audit_mark()
    r = run_module("cilium_install", None, env=env, **dict(install, **conns["other kubeconfig + host + api_key"]))
    assert r["_rc"] == 0 and r["changed"] and r["api_server"] == target.server, r["_output"][-3000:]
    assert ("create", "secrets", "") in touched(target, mark_target, set()) or \
        ("create", "secrets", "sh.helm.release.v1.cilium.v1") in touched(target, mark_target, set())
    assert target.helm("status", "cilium", "-n", NS).returncode == 0
    assert other.helm("status", "cilium", "-n", NS, check=False).returncode != 0

    # clustermesh_connect: one peer added through one helm upgrade, on the target
    info = run_module("clustermesh_info", None, env=env, **conns["inline kubeconfig"])
    assert info["_rc"] == 0 and info["api_server"] == target.server, info["_output"][-2000:]
    peer = {"cluster_name": "peer-x", "cluster_id": 9, "max_connected_clusters": info["max_connected_clusters"],
            "ca": info["ca"], "endpoint": {"address": "127.0.0.9", "port": 2379}}
    r = run_module("clustermesh_connect", None, env=env, peers=[peer], **conns["client certificate kubeconfig"])
    assert r["_rc"] == 0 and r["changed"] and r["api_server"] == target.server, r["_output"][-3000:]
    values = json.loads(target.helm("get", "values", "cilium", "-n", NS, "-o", "json").stdout)
    assert "peer-x" in json.dumps(values["clustermesh"]["config"]["clusters"])

    # nothing of any of it reached the other cluster
    assert touched(other, mark_other, {"cilium-ca", "cilium-config", "clustermesh-apiserver"}) == []
    assert other.mutations_since(mark_other) == []


def test_a_host_that_would_carry_a_contexts_token_elsewhere_is_refused(pair, run_module):
    target, other = pair
    marks = target.audit_mark(), other.audit_mark()
    r = run_module("ipsec_keys", None, kubeconfig=other.kubeconfig, context=other.name, host=target.server,
                   namespace=NS)
    assert r["_rc"] != 0 and "differs from the server" in r["msg"] and r["msg"].startswith(other.name + ": ")
    assert runner.admin_token(other.data) not in r["_output"]
    assert target.audit_events()[marks[0]:] == [] and other.audit_events()[marks[1]:] == []
