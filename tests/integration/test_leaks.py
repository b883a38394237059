"""No planted secret leaks through a side door, on the newest and the oldest ansible-core.

Plants, on one fleet cluster and only in namespace ``leaktest``:
* a CA key (and other secret keys) in ``values`` of ``cilium_install`` (check mode with --diff, a real
  helm run that fails on a missing chart, and a failure before helm);
* a malformed IPsec Secret ``cilium-ipsec-keys`` whose key hex is known, read by ``ipsec_keys_info``
  and refused by ``ipsec_keys`` (present, rotated, check mode with reconcile);
* an inline kubeconfig with a token, an exec plugin's env value, an auth-provider secret and a proxy
  password (in users and clusters the current context does not use, beside the real ones).

Runs them with ansible-playbook -vvv and ANSIBLE_INJECT_INVOCATION=1 (so every result carries the
module arguments) with .venv and .venv-oldest, and searches the whole output for the planted strings and
their base64. Writes nothing outside namespace ``leaktest`` (release ``leaktest`` never gets a revision:
one run is check mode, the other fails in helm before any write) and deletes the namespace at the end.
"""
import base64
import copy
import json
import os
import secrets

import pytest
import yaml

from conftest import REPO, Playbook, wait_for

NS = "leaktest"
RELEASE = "leaktest"
VENVS = (".venv", ".venv-oldest")

# Fresh per run, so no earlier output or file could match by accident; long enough to be unambiguous.
CA_KEY = base64.b64encode(("-----BEGIN EC PRIVATE KEY-----\nleak-ca-%s\n" % secrets.token_hex(16)).encode()).decode()
APISERVER_KEY = "leak-apiserver-key-%s" % secrets.token_hex(12)
CA_KEY_CAMEL = "leak-cakey-%s" % secrets.token_hex(12)
VALUES_PASSWORD = "leak-values-password-%s" % secrets.token_hex(12)
IPSEC_HEX = secrets.token_hex(20)
IPSEC_LINE = "3+ %s rfc4106(gcm(aes)) 128" % IPSEC_HEX  # key hex where the algorithm belongs
TOKEN = "leak-token-%s" % secrets.token_hex(16)
EXEC_ENV = "leak-exec-env-%s" % secrets.token_hex(12)
AUTH_PROVIDER = "leak-auth-provider-%s" % secrets.token_hex(12)
PROXY_PASSWORD = "leak-proxy-pw-%s" % secrets.token_hex(12)
PLANTED = {
    "values tls.ca.key": CA_KEY,
    "values clustermesh.apiserver.tls.server.key": APISERVER_KEY,
    "values caKey": CA_KEY_CAMEL,
    "values password": VALUES_PASSWORD,
    "IPsec key hex": IPSEC_HEX,
    "IPsec key line": IPSEC_LINE,
    "kubeconfig token": TOKEN,
    "kubeconfig exec env": EXEC_ENV,
    "kubeconfig auth-provider": AUTH_PROVIDER,
    "kubeconfig proxy password": PROXY_PASSWORD,
}


def _forms(value):
    """The value, its upper-case form (hex) and its base64."""
    yield value
    yield value.upper()
    yield base64.b64encode(value.encode()).decode()


def leaks(text):
    """Names of the planted secrets found in ``text`` (never the secrets themselves)."""
    return sorted(name for name, value in PLANTED.items() if any(f in text for f in _forms(value)))


def redacted(text):
    for value in PLANTED.values():
        for form in _forms(value):
            text = text.replace(form, "<planted>")
    return text


def _wait_namespace_gone(core):
    from kubernetes.client.rest import ApiException

    def gone():
        try:
            core.read_namespace(NS)
        except ApiException as e:
            return e.status == 404
        return False
    wait_for(gone, 180, "namespace %s to be deleted" % NS)


def _delete_namespace(core):
    from kubernetes.client.rest import ApiException
    try:
        core.delete_namespace(NS)
    except ApiException as e:
        if e.status != 404:
            raise
    _wait_namespace_gone(core)


@pytest.fixture(scope="module")
def planted(fleet):
    """Namespace leaktest on the first cluster, holding the malformed IPsec Secret; removed afterwards."""
    cluster = fleet.clusters[0]
    core = cluster.core()
    _delete_namespace(core)  # a left-over of an interrupted run
    core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    core.create_namespaced_secret(NS, {
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque", "metadata": {"name": "cilium-ipsec-keys"},
        "data": {"keys": base64.b64encode(IPSEC_LINE.encode()).decode()}})
    yield cluster
    _delete_namespace(core)


def inline_kubeconfig(cluster):
    """The cluster's kubeconfig as a dict, plus users and a cluster the current context does not use."""
    with open(cluster.kubeconfig) as f:
        cfg = yaml.safe_load(f)
    cfg = copy.deepcopy(cfg)
    cfg["clusters"].append({"name": "behind-proxy", "cluster": {
        "server": "https://proxied.invalid:6443",
        "proxy-url": "http://proxyuser:%s@127.0.0.1:9" % PROXY_PASSWORD}})
    cfg["users"] += [
        {"name": "planted-token", "user": {"token": TOKEN}},
        {"name": "planted-exec", "user": {"exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1", "command": "false",
            "env": [{"name": "AWS_SECRET_ACCESS_KEY", "value": EXEC_ENV}]}}},
        {"name": "planted-oidc", "user": {"auth-provider": {"name": "oidc", "config": {
            "client-id": "leaktest-client", "client-secret": AUTH_PROVIDER}}}},
    ]
    return cfg


def playbook_text(kubeconfig, host):
    values = {
        "tls": {"ca": {"cert": base64.b64encode(b"not a secret").decode(), "key": CA_KEY}},
        "clustermesh": {"apiserver": {"tls": {"server": {"cert": "Y2VydA==", "key": APISERVER_KEY}}}},
        "certgen": {"caKey": CA_KEY_CAMEL},
        "extraConfig": {"nested": [{"password": VALUES_PASSWORD}]},
    }
    conn = {"kubeconfig": kubeconfig}
    install = dict(conn, release_name=RELEASE, namespace=NS, cluster_name=host, cluster_id=1, values=values)
    tasks = [
        {"name": "install, check mode with diff", "meshops.cilium.cilium_install":
            dict(install, chart_ref="{{ cilium_chart_ref }}"),
         "check_mode": True, "diff": True, "register": "install_check"},
        {"name": "install, helm fails on a missing chart (no revision is stored)", "meshops.cilium.cilium_install":
            dict(install, chart_ref="/nonexistent/leaktest-chart.tgz", helm_binary="{{ meshops_helm_binary }}"),
         "register": "install_helm", "ignore_errors": True},
        {"name": "install, fails before helm (no chart_ref)", "meshops.cilium.cilium_install": install,
         "register": "install_early", "ignore_errors": True},
        {"name": "IPsec info of the malformed Secret", "meshops.cilium.ipsec_keys_info":
            dict(conn, namespace=NS, release_name=RELEASE), "register": "info"},
        {"name": "IPsec present refuses the malformed Secret", "meshops.cilium.ipsec_keys":
            dict(conn, namespace=NS, release_name=RELEASE), "register": "present", "ignore_errors": True},
        {"name": "IPsec rotation refuses the malformed Secret", "meshops.cilium.ipsec_keys":
            dict(conn, namespace=NS, release_name=RELEASE, state="rotated", ignore_rollout=True),
         "register": "rotated", "ignore_errors": True},
        {"name": "IPsec reconcile, check mode with diff", "meshops.cilium.ipsec_keys":
            dict(conn, namespace=NS, release_name=RELEASE, reconcile=True),
         "check_mode": True, "diff": True, "register": "reconcile"},
        {"name": "show the results", "ansible.builtin.debug": {"var": "item"},
         "loop": ["{{ install_check }}", "{{ install_helm }}", "{{ install_early }}", "{{ info }}",
                  "{{ present }}", "{{ rotated }}", "{{ reconcile }}"]},
        {"name": "the paths ran", "ansible.builtin.assert": {"that": [
            "install_check is changed and install_check is not failed",
            "install_helm is failed and 'helm failed' in install_helm.msg",
            "install_helm is not changed",
            "install_early is failed and 'chart_ref is needed' in install_early.msg",
            "info.exists and not info.valid and 'field 2, SPI 3' in info.error",
            "present is failed and 'unusable' in present.msg",
            "rotated is failed and 'nothing to rotate' in rotated.msg",
            "reconcile is changed and reconcile.action == 'replaced'",
        ]}},
    ]
    return json.dumps([{"name": "leak test", "hosts": host, "gather_facts": False, "tasks": tasks}], indent=1)


@pytest.mark.parametrize("venv", VENVS)
def test_no_planted_secret_in_the_output(fleet, collections_path, tmp_path, planted, venv):
    bin_dir = os.path.join(REPO, venv, "bin")
    assert os.path.exists(os.path.join(bin_dir, "ansible-playbook")), (
        "%s is missing: create it with bash hack/venv.sh %s" % (venv, venv))
    book = tmp_path / "leaks.yml"
    book.write_text(playbook_text(inline_kubeconfig(planted), planted.name))
    pb = Playbook(fleet, collections_path, tmp_path)
    pb.env = dict(pb.env, ANSIBLE_INJECT_INVOCATION="1", PATH=bin_dir + os.pathsep + pb.env["PATH"])
    out = pb(str(book), [planted.name], "-vvv", bin_dir=bin_dir, expect_rc=None)
    recap = Playbook.recap(out).get(planted.name)
    # on failure show the end of the output, with every planted secret masked
    assert recap and recap["failed"] == 0 and recap.get("unreachable", 0) == 0, redacted(out)[-8000:]
    # the output really holds the module arguments and the results
    assert "module_args" in out and "release_name" in out and "cilium-ipsec-keys" in out
    assert "field 2, SPI 3" in out
    assert leaks(out) == [], "planted secrets in the output of %s: %s" % (venv, ", ".join(leaks(out)))
    # nothing of the release was stored, the Secret is still the planted one
    core = planted.core()
    helm_records = core.list_namespaced_secret(NS, label_selector="owner=helm").items
    assert helm_records == []
    stored = core.read_namespaced_secret("cilium-ipsec-keys", NS)
    assert base64.b64decode(stored.data["keys"]).decode() == IPSEC_LINE
