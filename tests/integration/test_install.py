"""cilium_ca, cilium_install and clustermesh_enable through real ansible-playbook runs against
the fleet, with the real Cilium chart (newest supported version)."""
import base64
import json
import os
import tempfile
import textwrap

import pytest

from conftest import NS, Playbook, marks, uninstall_cilium, write_inventory, writes


@pytest.fixture(scope="module")
def env(fleet, collections_path, tmp_path_factory):
    root = tmp_path_factory.mktemp("install")
    hosts = {c.name: {"cluster_id": i + 1, "api_port": c.data["ports"]["apiserver"]}
             for i, c in enumerate(fleet.clusters)}
    inv = write_inventory(root, hosts, {"kc": fleet.kubeconfig, "chart": newest_chart(fleet)}, name="inventory",
                          cluster_ids=False)
    uninstall_cilium(fleet.clusters)
    yield {"root": str(root), "book": Playbook(fleet, collections_path, root), "inventory": inv}
    uninstall_cilium(fleet.clusters)


def newest_chart(fleet):
    version = sorted(fleet.chart_versions, key=lambda v: tuple(int(x) for x in v.split(".")))[-1]
    return fleet.chart(version)


def playbook(env, tasks, limit=None, check=False, diff=False, expect_fail=False, extra=None):
    """Run ``tasks`` on every mesh host (or ``limit``); returns {host: last registered result}."""
    out = tempfile.mkdtemp(dir=env["root"])
    play = [{
        "hosts": "mesh", "gather_facts": False,
        "module_defaults": {
            "group/meshops.cilium.cluster": {"kubeconfig": "{{ kc }}", "context": "{{ inventory_hostname }}"}},
        "tasks": tasks + [{"ansible.builtin.copy": {"content": "{{ r | to_json }}",
                                                    "dest": "%s/{{ inventory_hostname }}.json" % out},
                           "check_mode": False, "diff": False}],
    }]
    for t in play[0]["tasks"][:-1]:
        t["register"] = "r"
        t.setdefault("ignore_errors", expect_fail)
    path = os.path.join(out, "play.yml")
    with open(path, "w") as f:
        json.dump(play, f)
    argv = []
    if limit:
        argv += ["--limit", limit]
    if check:
        argv.append("--check")
    if diff:
        argv.append("--diff")
    for k, v in (extra or {}).items():
        argv += ["-e", "%s=%s" % (k, v)]
    proc = env["book"].execute(env["inventory"], path, *argv, timeout=900)
    results = {}
    for name in os.listdir(out):
        if name.endswith(".json"):
            with open(os.path.join(out, name)) as f:
                results[name[:-5]] = json.load(f)
    assert proc.returncode == 0 or expect_fail, proc.stdout[-6000:]
    results["_stdout"] = proc.stdout
    return results


def no_mutations(fleet, mark):
    assert writes(fleet.clusters, mark) == {c.name: [] for c in fleet.clusters}


def ca_fingerprint(cluster, secret="cilium-ca"):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    s = cluster.core().read_namespaced_secret(secret, NS)
    cert = x509.load_pem_x509_certificate(base64.b64decode(s.data["ca.crt"]))
    return ":".join("%02X" % b for b in cert.fingerprint(hashes.SHA256()))


CA_FIRST = [{"meshops.cilium.cilium_ca": {}, "when": "inventory_hostname == 'mesh-1'"}]
CA_COPY = [{"meshops.cilium.cilium_ca": {"source": {"kubeconfig": "{{ kc }}", "context": "mesh-1"},
                                         "force": "{{ force | default(false) | bool }}"},
            "when": "inventory_hostname != 'mesh-1'"}]

INSTALL = textwrap.dedent("""\
    chart_ref: "{{ chart }}"
    cluster_name: "{{ inventory_hostname }}"
    cluster_id: "{{ cluster_id }}"
    ipam_mode: kubernetes
    kube_proxy_replacement: true
    k8s_service_host: 127.0.0.1
    k8s_service_port: "{{ api_port }}"
    clustermesh_apiserver:
      enabled: true
      service_type: LoadBalancer
    values:
      operator:
        replicas: 1
    wait: true
    wait_timeout: 300
""")


def install_task(**over):
    import yaml
    args = yaml.safe_load(INSTALL)
    args.update(over)
    return [{"meshops.cilium.cilium_install": args}]


def test_1_shared_ca(fleet, env):
    # a different CA already in mesh-3: copying needs force
    r = playbook(env, [{"meshops.cilium.cilium_ca": {"key_type": "rsa"}}], limit="mesh-3")
    assert r["mesh-3"]["action"] == "created"
    other = r["mesh-3"]["fingerprint"]

    r = playbook(env, CA_FIRST + CA_COPY, expect_fail=True)
    first = ca_fingerprint(fleet.clusters[0])
    assert r["mesh-2"]["action"] == "copied" and r["mesh-2"]["fingerprint"] == first
    assert r["mesh-3"]["failed"] and "force=true" in r["mesh-3"]["msg"]
    assert "breaks every ClusterMesh connection" in r["mesh-3"]["msg"] and other in r["mesh-3"]["msg"]
    assert "ca.key" not in json.dumps(r["mesh-2"])

    r = playbook(env, CA_COPY, limit="mesh-3", extra={"force": "true"})
    assert r["mesh-3"]["action"] == "replaced"
    assert {ca_fingerprint(c) for c in fleet.clusters} == {first}

    mark = marks(fleet.clusters)
    r = playbook(env, CA_FIRST + CA_COPY)
    assert all(r[c.name]["changed"] is False for c in fleet.clusters), r
    no_mutations(fleet, mark)


def test_2_check_mode_and_refusals_write_nothing(fleet, env):
    mark = marks(fleet.clusters)
    r = playbook(env, install_task(), limit="mesh-3", check=True, diff=True)
    assert r["mesh-3"]["changed"] and r["mesh-3"]["action"] == "installed"
    assert "clustermesh.useAPIServer" in r["mesh-3"]["changed_keys"]
    # a free-form value that contradicts an option: refused before anything is written
    bad = install_task(values={"cluster": {"name": "someone-else"}})
    r = playbook(env, bad, limit="mesh-3", expect_fail=True)
    assert r["mesh-3"]["failed"] and "cluster.name='someone-else' contradicts" in r["mesh-3"]["msg"]
    r = playbook(env, install_task(kube_proxy_replacement="strict"), limit="mesh-3", expect_fail=True)
    assert "removed in Cilium 1.16" in r["mesh-3"]["msg"]
    no_mutations(fleet, mark)


def test_3_install_everywhere_then_idempotent(fleet, env):
    r = playbook(env, install_task())
    for c in fleet.clusters:
        res = r[c.name]
        assert res["changed"] and res["action"] == "installed", res
        assert res["release"]["chart_version"] == os.path.basename(newest_chart(fleet))[7:-4]
        assert res["ready"]["Deployment/clustermesh-apiserver"].startswith("1/1")
        cfg = c.core().read_namespaced_config_map("cilium-config", NS).data
        assert cfg["cluster-name"] == c.name
    # the chart adopted our CA: same fingerprint everywhere, and it signed the apiserver's certificates
    fps = {ca_fingerprint(c) for c in fleet.clusters}
    assert len(fps) == 1
    assert {ca_fingerprint(c, "clustermesh-apiserver-server-cert") for c in fleet.clusters} == fps

    mark = marks(fleet.clusters)
    r = playbook(env, CA_FIRST + CA_COPY + install_task())
    for c in fleet.clusters:
        assert r[c.name]["changed"] is False and r[c.name]["action"] == "unchanged", r[c.name]
        assert "ready" not in r[c.name], "an unchanged release is not polled (as helm upgrade --wait)"
    no_mutations(fleet, mark)


def test_4_identity_change_refused(fleet, env):
    mark = marks(fleet.clusters)
    r = playbook(env, install_task(cluster_id=42), limit="mesh-2", expect_fail=True)
    msg = r["mesh-2"]["msg"]
    assert "cluster.id (2 -> 42)" in msg and "allow_identity_change" in msg and "restarted" in msg
    no_mutations(fleet, mark)


def test_5_enable_keeps_values_and_is_idempotent(fleet, env):
    task = [{"meshops.cilium.clustermesh_enable": {"service_type": "LoadBalancer"}}]
    mark = marks(fleet.clusters)
    r = playbook(env, task, limit="mesh-1")
    assert r["mesh-1"]["changed"] is False
    no_mutations(fleet, mark)
    r = playbook(env, [{"meshops.cilium.clustermesh_enable": {"service_type": "NodePort", "node_port": 32001}}],
                 limit="mesh-1")
    assert r["mesh-1"]["changed_keys"] == ["clustermesh.apiserver.service.nodePort",
                                           "clustermesh.apiserver.service.type"]
    svc = fleet.clusters[0].core().read_namespaced_service("clustermesh-apiserver", NS)
    assert svc.spec.type == "NodePort" and svc.spec.ports[0].node_port == 32001
    # back through cilium_install: its options win again, everything else kept
    r = playbook(env, install_task(), limit="mesh-1")
    assert r["mesh-1"]["action"] == "upgraded"
    assert set(r["mesh-1"]["changed_keys"]) == {"clustermesh.apiserver.service.nodePort",
                                                "clustermesh.apiserver.service.type"}
