"""Helpers for deploy/rbac/meshops-automation.yaml (the automation identity's permissions).

  python -m hack.rbac_manifest records [--write]
      The Helm release record names (Secrets sh.helm.release.v1.<release>.v<revision>) that the
      manifest lists by name, revisions 1..MAX_REVISION. Without --write: exit 1 and say so
      when the manifest's generated block differs; with --write: rewrite the block.

  python -m hack.rbac_manifest chart-objects HELM CHART.tgz [CHART.tgz ...]
      Renders each chart with the values the collection's roles set (helm template, no cluster)
      and prints kind, namespace and name of every object, then checks that each object of a
      kind the manifest names per object (ConfigMap, Secret, Service, ServiceAccount, DaemonSet,
      Deployment, Role, RoleBinding, ClusterRole, ClusterRoleBinding) is listed in the rule for
      its kind. Exit 1 when one is missing.

RBAC cannot match a name prefix, so the release records are listed one by one; MAX_REVISION is
the documented bound (docs/rbac.md): past it, helm's update of the previous record is refused
(403) and the block must be regenerated with a higher bound.
"""
import os
import re
import subprocess
import sys
import tempfile

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MANIFEST = os.path.join(REPO, "deploy", "rbac", "meshops-automation.yaml")
RELEASE = "cilium"
MAX_REVISION = 1000
BEGIN = "# BEGIN generated release records"
END = "# END generated release records"

# What the roles pass to cilium_install / clustermesh_connect (roles/cilium/defaults,
# plugins/module_utils/values.py), with one peer so that the clustermesh Secrets render.
ROLE_VALUES = {
    "cluster": {"name": "mesh-1", "id": 1},
    "ipam": {"mode": "kubernetes"},
    "kubeProxyReplacement": "false",
    "routingMode": "tunnel",
    "tunnelProtocol": "vxlan",
    "clustermesh": {
        "useAPIServer": True,
        "maxConnectedClusters": 255,
        "apiserver": {"service": {"type": "LoadBalancer"}, "kvstoremesh": {"enabled": True},
                      "tls": {"auto": {"enabled": True, "method": "helm"}}},
        "config": {"enabled": True, "clusters": [{"name": "mesh-2", "ips": ["192.0.2.10"], "port": 2379}]},
    },
}
# The same with IPsec (playbooks/ipsec.yml + cilium_encryption_type: ipsec).
IPSEC_VALUES = dict(ROLE_VALUES, encryption={"enabled": True, "type": "ipsec"})

NAMED_KINDS = {
    # kind: (API group, resource)
    "ConfigMap": ("", "configmaps"),
    "Secret": ("", "secrets"),
    "Service": ("", "services"),
    "ServiceAccount": ("", "serviceaccounts"),
    "DaemonSet": ("apps", "daemonsets"),
    "Deployment": ("apps", "deployments"),
    "Role": ("rbac.authorization.k8s.io", "roles"),
    "RoleBinding": ("rbac.authorization.k8s.io", "rolebindings"),
    "ClusterRole": ("rbac.authorization.k8s.io", "clusterroles"),
    "ClusterRoleBinding": ("rbac.authorization.k8s.io", "clusterrolebindings"),
    "Namespace": ("", "namespaces"),
}
# The fleet's Kubernetes minor (helm template defaults to an old one the charts refuse).
KUBE_VERSION = "1.34.0"
NAMED_VERBS = ("get", "update", "patch", "delete")


def record_names(release=RELEASE, max_revision=MAX_REVISION):
    return ["sh.helm.release.v1.%s.v%d" % (release, n) for n in range(1, max_revision + 1)]


def _block(indent, names):
    pad = " " * indent
    lines = ["%s%s: %s v1-v%d (python -m hack.rbac_manifest records --write)"
             % (pad, BEGIN, RELEASE, len(names)), pad + "resourceNames:"]
    lines += ["%s  - %s" % (pad, n) for n in names]
    lines.append(pad + END)
    return "\n".join(lines)


_BLOCK_RE = re.compile(r"^(?P<pad>[ ]*)" + re.escape(BEGIN) + r".*?^[ ]*" + re.escape(END) + r"$", re.M | re.S)


def with_records(text, names=None):
    """``text`` (the manifest) with its generated block holding ``names``."""
    m = _BLOCK_RE.search(text)
    if not m:
        raise SystemExit("%s: no '%s' ... '%s' block" % (MANIFEST, BEGIN, END))
    block = _block(len(m.group("pad")), record_names() if names is None else names)
    return text[:m.start()] + block + text[m.end():]


def load(path=MANIFEST):
    """The manifest's objects (the items of its List)."""
    with open(path) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    out = []
    for d in docs:
        out.extend(d["items"] if d.get("kind") == "List" else [d])
    return out


def named(objects, namespace, group, resource, verbs=NAMED_VERBS):
    """Names that the rules of ``objects`` grant every one of ``verbs`` on, for ``resource`` in
    ``namespace`` (a Role there) or at cluster scope/every namespace (a ClusterRole, namespace None)."""
    per_verb = dict((v, set()) for v in verbs)
    for o in objects:
        if o["kind"] == "Role" and o["metadata"].get("namespace") != namespace:
            continue
        if o["kind"] not in ("Role", "ClusterRole"):
            continue
        for rule in o.get("rules") or []:
            if group in rule.get("apiGroups", []) and resource in rule.get("resources", []):
                for v in set(verbs) & set(rule.get("verbs", [])):
                    per_verb[v].update(rule.get("resourceNames") or [])
    return set.intersection(*per_verb.values())


def render(helm, chart, values, namespace="kube-system"):
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
        yaml.safe_dump(values, f)
        f.flush()
        out = subprocess.run([helm, "template", "cilium", chart, "-n", namespace, "-f", f.name,
                              "--kube-version", KUBE_VERSION],
                             check=True, stdout=subprocess.PIPE, universal_newlines=True).stdout
    objs = []
    for d in yaml.safe_load_all(out):
        if d and d.get("kind"):
            ns = d["metadata"].get("namespace")
            objs.append((d["kind"], ns, d["metadata"]["name"]))
    return objs


def missing_rules(rendered, objects, namespace="kube-system"):
    """Rendered objects of NAMED_KINDS that no named rule of the manifest covers."""
    missing = []
    for kind, ns, name in rendered:
        if kind not in NAMED_KINDS:
            continue
        group, resource = NAMED_KINDS[kind]
        cluster_scoped = kind in ("ClusterRole", "ClusterRoleBinding", "Namespace")
        # namespaced objects outside the Cilium namespace (cilium-secrets) need a ClusterRole rule
        where = None if cluster_scoped or (ns or namespace) != namespace else namespace
        names = named(objects, where, group, resource)
        if where is not None:
            names |= named(objects, None, group, resource)
        if name not in names:
            missing.append((kind, ns, name))
    return missing


def main(argv):
    if argv[:1] == ["records"]:
        with open(MANIFEST) as f:
            text = f.read()
        new = with_records(text)
        if "--write" in argv:
            if new != text:
                with open(MANIFEST, "w") as f:
                    f.write(new)
            return 0
        if new != text:
            print("%s: the generated release records are out of date; run python -m hack.rbac_manifest "
                  "records --write" % MANIFEST)
            return 1
        return 0
    if argv[:1] == ["chart-objects"] and len(argv) >= 3:
        helm, charts = argv[1], argv[2:]
        objects = load()
        status = 0
        for chart in charts:
            for label, values in (("roles' values", ROLE_VALUES), ("with IPsec", IPSEC_VALUES)):
                rendered = render(helm, chart, values)
                print("# %s, %s" % (os.path.basename(chart), label))
                for kind, ns, name in sorted(set(rendered)):
                    print("%s\t%s\t%s" % (kind, ns or "-", name))
                for kind, ns, name in missing_rules(rendered, objects):
                    print("MISSING in the manifest: %s %s/%s" % (kind, ns or "-", name))
                    status = 1
        return status
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
