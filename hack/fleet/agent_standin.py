"""Stand-in for `cilium-dbg status -o json` of the agents on the fleet's SIMULATED nodes, where
no cilium-agent runs (on each cluster's real node Cilium's own agent runs and an exec into it
runs the real cilium-dbg: hack/fleet/nodes.py, pods.py). KVStoreMesh is NOT simulated: the
clustermesh-apiserver pods run Cilium's own programs (hack/fleet/pods.py) and an exec into
container `kvstoremesh` runs the real `clustermesh-apiserver kvstoremesh-dbg status` there;
asked for KVStoreMesh status, this module refuses.

How it is reached: kube-apiserver sends `kubectl exec` to each node's "kubelet", which on the
fleet is kwok's server; a ClusterExec in that cluster's kwok config (cluster_exec_yaml) makes
kwok run the requested command on this host, with the shims of write_shims first on kwok's
PATH and MESHOPS_FLEET_CLUSTER / MESHOPS_FLEET_CONTAINER naming the cluster and container.
The ClusterExec passes neither the pod nor the node, so every simulated agent of a cluster
reports the same view; a real pod has a kwok Exec object of its own that sets
MESHOPS_FLEET_POD, and the `cilium-dbg` shim then enters that pod's real container instead.

Every answer is marked simulated (top-level key `meshops-simulated`, and in `cilium.msg`);
clustermesh_status reports that mark. What it reports:

* the remote clusters are the keys of Secret `cilium-clustermesh` whose value holds an etcd
  configuration;
* an endpoint `https://clustermesh-apiserver.<ns>.svc:<port>` is the LOCAL KVStoreMesh: the
  agent's view of that peer is what the real KVStoreMesh reports for it (its `kvstoremesh-dbg
  status`, read through the real container), marked `kvstoremesh`;
* any other endpoint (KVStoreMesh off) is judged from the objects, as before: it resolves
  through the DaemonSet's hostAliases, the peer's Service must expose that address and port,
  its Deployment must have a Ready replica, and both clusters' Secret `cilium-ca` must hold the
  same certificate;
* counts: nodes (Nodes of the peer), endpoints (its pods that are not hostNetwork), shared
  services (its Services annotated service.cilium.io/global, not shared=false).

Field names and shapes follow cilium's api/v1 models (StatusResponse.cluster-mesh ->
ClusterMeshStatus{clusters[], num-global-services}, RemoteCluster, RemoteClusterConfig,
RemoteClusterSynced): false booleans and zero numbers are omitted as the real JSON does.
Standard library only: it starts once per exec.
"""
import base64
import datetime
import fcntl
import json
import os
import http.client
import ssl
import subprocess
import sys
import time
import urllib.parse

try:
    from . import enter
except ImportError:  # run as a script by kwok's exec (its directory is on sys.path)
    import enter

NS = "kube-system"
SIMULATED = "meshops fleet stand-in: no cilium-agent runs on this simulated node; this agent status is simulated"
HERE = os.path.dirname(os.path.abspath(__file__))
# how long the simulated agents of one cluster share one answer (shared_answer)
SHARE_S = 1.0


# --------------------------------------------------------------------------- fleet plumbing
def bin_dir(fleet_dir):
    return os.path.join(fleet_dir, "agent-bin")


def write_shims(fleet_dir, python):
    """Executables named like the real binaries, run by kwok's exec: `cilium-dbg` is this
    stand-in; `clustermesh-apiserver` enters the real container (hack/fleet/enter.py)."""
    d = bin_dir(fleet_dir)
    os.makedirs(d, exist_ok=True)
    # `python -S`: both scripts use the standard library only; site's start is not paid per exec
    enter = '"%s" -S "%s"' % (python, os.path.join(HERE, "enter.py"))
    # MESHOPS_FLEET_POD is set only by the Exec object of a real pod (hack/fleet/pods.py):
    # a real agent's cilium-dbg runs in its container; a simulated agent gets this stand-in
    agent = ('[ -n "$MESHOPS_FLEET_POD" ] && exec %s "$MESHOPS_FLEET_CONTAINER" '
             '/usr/local/bin/cilium-dbg "$@"\nexec "%s" -S "%s" agent "$@"' % (enter, python, os.path.abspath(__file__)))
    shims = {
        # the image's `cilium` is cilium-dbg under its old name (cilium-cli's status runs it)
        "cilium-dbg": agent, "cilium": agent,
        "clustermesh-apiserver": 'exec %s "$MESHOPS_FLEET_CONTAINER" /usr/bin/clustermesh-apiserver "$@"' % enter,
    }
    for name, cmd in shims.items():
        path = os.path.join(d, name)
        with open(path, "w") as f:
            f.write("#!/bin/sh\n%s\n" % cmd)
        os.chmod(path, 0o755)
    return d


def cluster_exec_yaml(cluster, state_file):
    """kwok ClusterExec: exec into the Cilium containers of kube-system runs the shims, with the
    cluster and the container named in the environment."""
    def target(container):
        return {"containers": [container], "local": {"envs": [
            {"name": "MESHOPS_FLEET_CLUSTER", "value": cluster},
            {"name": "MESHOPS_FLEET_STATE", "value": state_file},
            {"name": "MESHOPS_FLEET_CONTAINER", "value": container}]}}
    doc = {
        "apiVersion": "kwok.x-k8s.io/v1alpha1", "kind": "ClusterExec",
        "metadata": {"name": "meshops-cilium-exec"},
        "spec": {"selector": {"matchNamespaces": [NS]},
                 "execs": [target("cilium-agent"), target("kvstoremesh")]},
    }
    return "---\n" + json.dumps(doc, indent=1) + "\n"


class Api(object):
    """Cached GETs against one fleet cluster as user fleet:kwok (the fleet's own machinery, which
    the audit policy leaves out), over one kept-alive connection."""

    def __init__(self, cluster):
        url = urllib.parse.urlsplit(cluster["server"])
        ctx = ssl.create_default_context(cafile=cluster["ca_file"])
        self.conn = http.client.HTTPSConnection(url.hostname, url.port, context=ctx, timeout=10)
        with open(cluster["admin_token_file"]) as f:
            self.token = [ln.split(",")[0] for ln in f if ln.split(",")[1] == "fleet:kwok"][0]
        self.cache = {}

    def get(self, path):
        if path not in self.cache:
            self.conn.request("GET", path, headers={"Authorization": "Bearer " + self.token})
            r = self.conn.getresponse()
            body = r.read()
            if r.status == 404:
                self.cache[path] = None
            elif r.status != 200:
                raise OSError("GET %s: HTTP %d" % (path, r.status))
            else:
                self.cache[path] = json.loads(body.decode())
        return self.cache[path]

    def obj(self, kind, name, ns=NS):
        group = "apis/apps/v1" if kind in ("deployments", "daemonsets") else "api/v1"
        return self.get("/%s/namespaces/%s/%s/%s" % (group, ns, kind, name))

    def items(self, path):
        return (self.get(path) or {}).get("items") or []


def _secret_text(secret, key):
    try:
        return base64.b64decode(((secret or {}).get("data") or {}).get(key) or "").decode()
    except (ValueError, TypeError):
        return ""


def etcd_configs(secret):
    """{key: endpoint URL} for the keys holding an etcd configuration."""
    out = {}
    for key in sorted(((secret or {}).get("data") or {})):
        text = _secret_text(secret, key)
        if "endpoints:" not in text:
            continue
        for line in text.splitlines():
            line = line.strip()
            if line.startswith("- ") and "://" in line:
                out[key] = line[2:].strip()
                break
    return out


def config_host_aliases(secret):
    """{hostname: [ips]} from the ``cilium-host-aliases`` of every etcd configuration in ``secret``: what
    Cilium's static dialer resolves from chart 1.20 on (rendered with the peers' ``ips``), without the pod
    template's hostAliases (clustermesh.disableKubernetesHostAliases)."""
    out = {}
    for key in sorted(((secret or {}).get("data") or {})):
        inside, host = False, None
        for line in _secret_text(secret, key).splitlines():
            text = line.strip()
            if not line.startswith((" ", "-")):
                inside, host = text == "cilium-host-aliases:", None
                continue
            if not inside:
                continue
            if text.startswith("- hostname:") or text.startswith("hostname:"):
                host = text.split("hostname:", 1)[1].strip().strip("'\"")
                out.setdefault(host, [])
            elif host and text.startswith("- ") and ": " not in text and not text.endswith(":"):
                out[host].append(text[2:].strip().strip("'\""))
    return out


def host_aliases(workload):
    spec = ((((workload or {}).get("spec") or {}).get("template") or {}).get("spec") or {})
    aliases = {}
    for a in spec.get("hostAliases") or []:
        for h in a.get("hostnames") or []:
            aliases.setdefault(h, []).append(a.get("ip"))
    return aliases


def ready_replicas(deployment):
    return int(((deployment or {}).get("status") or {}).get("readyReplicas") or 0)


# --------------------------------------------------------------------------- the model
class Fleet(object):
    def __init__(self, state, local, fleet_dir=None):
        self.fleet_dir = fleet_dir
        self.clusters = dict((c["name"], c) for c in state["clusters"])
        self.local = local
        self._apis = {}
        self._by_cilium_name = None

    def api(self, fleet_name):
        if fleet_name not in self._apis:
            self._apis[fleet_name] = Api(self.clusters[fleet_name])
        return self._apis[fleet_name]

    def by_cilium_name(self, name):
        """The fleet cluster whose cilium-config says cluster-name: name."""
        if self._by_cilium_name is None:
            self._by_cilium_name = {}
            for fleet_name in self.clusters:
                try:
                    cm = self.api(fleet_name).obj("configmaps", "cilium-config")
                except (OSError, ValueError):
                    continue
                cn = ((cm or {}).get("data") or {}).get("cluster-name")
                if cn:
                    self._by_cilium_name[cn] = fleet_name
        return self._by_cilium_name.get(name)


def failed_entry(name, why):
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return {"name": name, "status": why, "num-failures": 1, "last-failure": now,
            "config": {"required": True}, "synced": {}}


def remote_view(fleet, name, url, aliases, local_ca):
    """One RemoteCluster entry for remote ``name`` reached at ``url`` (a remote endpoint)."""
    parsed = urllib.parse.urlsplit(url)
    host, port = parsed.hostname, parsed.port or 2379
    entry = {"name": name}

    def failed(why):
        return failed_entry(name, why)

    ips = aliases.get(host) or ([host] if host and host.replace(".", "").isdigit() else [])
    if not ips:
        return failed("failed to connect to etcd: dial tcp: lookup %s: no such host" % host)
    peer = fleet.by_cilium_name(name)
    if peer is None:
        return failed("failed to connect to etcd %s: no cluster named %s answers there" % (url, name))
    api = fleet.api(peer)
    svc = api.obj("services", "clustermesh-apiserver")
    exposed = set()
    if svc:
        spec = svc.get("spec") or {}
        p0 = (spec.get("ports") or [{}])[0]
        if spec.get("type") == "LoadBalancer":
            for ing in ((svc.get("status") or {}).get("loadBalancer") or {}).get("ingress") or []:
                if ing.get("ip"):
                    exposed.add((ing["ip"], int(p0.get("port") or 0)))
        if spec.get("type") in ("NodePort", "LoadBalancer") and p0.get("nodePort"):
            for node in api.items("/api/v1/nodes"):
                for a in (node.get("status") or {}).get("addresses") or []:
                    if a.get("type") in ("InternalIP", "ExternalIP"):
                        exposed.add((a["address"], int(p0["nodePort"])))
    targets = [(ip, port) for ip in ips]
    if not exposed.intersection(targets):
        return failed("failed to connect to etcd %s: dial tcp %s:%d: connect: connection refused"
                      % (url, ips[0], port))
    if ready_replicas(api.obj("deployments", "clustermesh-apiserver")) < 1:
        return failed("failed to connect to etcd %s: dial tcp %s:%d: connect: connection refused "
                      "(no Ready clustermesh-apiserver in %s)" % (url, ips[0], port, name))
    if _secret_text(api.obj("secrets", "cilium-ca"), "ca.crt") != local_ca:
        return failed("failed to connect to etcd %s: remote error: tls: bad certificate" % url)
    cfg = ((api.obj("configmaps", "cilium-config") or {}).get("data") or {})
    pods = api.items("/api/v1/pods")
    services = api.items("/api/v1/services")
    shared = [s for s in services
              if ((s.get("metadata") or {}).get("annotations") or {}).get("service.cilium.io/global") == "true"
              and ((s.get("metadata") or {}).get("annotations") or {}).get("service.cilium.io/shared") != "false"]
    entry.update({
        "connected": True, "ready": True,
        "status": "etcd: 1/1 connected, leases=0, lock leases=0, has-quorum=true: "
                  "%s - 3.6.0 (Leader)" % url,
        "num-nodes": len(api.items("/api/v1/nodes")),
        "num-endpoints": len([p for p in pods if not (p.get("spec") or {}).get("hostNetwork")]),
        "num-shared-services": len(shared),
        "config": {"required": True, "retrieved": True, "sync-canaries": True,
                   "cluster-id": int(cfg.get("cluster-id") or 0)},
        "synced": {"nodes": True, "services": True, "identities": True, "endpoints": True},
    })
    return _omit_empty(entry)


def _omit_empty(entry):
    out = dict((k, v) for k, v in entry.items() if v not in (False, 0, "", None))
    for sub in ("config", "synced"):
        if sub in entry:
            out[sub] = dict((k, v) for k, v in entry[sub].items() if v not in (False, 0, "", None))
    return out


def real_kvstoremesh(fleet_dir, cluster):
    """{name: remote cluster} as the cluster's REAL KVStoreMesh reports it (kvstoremesh-dbg status
    in the real container, entered as hack/fleet/enter.py does), or raises OSError with its error."""
    pid, why = enter.container_pid(fleet_dir, cluster, "kvstoremesh")
    if pid is None:
        raise OSError(why)
    proc = subprocess.run(enter.nsenter_argv(pid, ["/usr/bin/clustermesh-apiserver", "kvstoremesh-dbg", "status",
                                                   "-o", "json"]),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True,
                          timeout=30, check=False)
    if proc.returncode != 0:
        raise OSError("kvstoremesh-dbg status: %s" % (proc.stderr or proc.stdout).strip()[:300])
    return dict((c["name"], c) for c in json.loads(proc.stdout) if c.get("name"))


def shared_answer(fleet_dir, cluster, compute):
    """The answer of ``compute()`` for this cluster, shared by the simulated agents' execs that ask
    within SHARE_S of its start: kwok passes no pod to the ClusterExec, so every simulated agent of
    a cluster answers the same, and one status read execs into all of them at once. The first
    exec computes it (under a lock, the others wait) and the others read it; an error is not
    kept. Older than SHARE_S, it is computed again."""
    d = os.path.join(fleet_dir, "standin")
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, cluster + ".json")
    with open(path + ".lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            # the file's mtime is when its computation started
            if 0 <= time.time() - os.stat(path).st_mtime < SHARE_S:
                with open(path) as f:
                    return f.read()
        except OSError:
            pass
        start = time.time()
        text = compute()
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.utime(tmp, (start, start))
        os.replace(tmp, path)
        return text


def agent_status(fleet):
    api = fleet.api(fleet.local)
    cfg = ((api.obj("configmaps", "cilium-config") or {}).get("data") or {})
    local_name = cfg.get("cluster-name")
    local_ca = _secret_text(api.obj("secrets", "cilium-ca"), "ca.crt")
    clustermesh_secret = api.obj("secrets", "cilium-clustermesh")
    configs = etcd_configs(clustermesh_secret)
    configs.pop(local_name, None)
    deploy = api.obj("deployments", "clustermesh-apiserver")
    # the static dialer's names first (chart 1.20+), then the DaemonSet's hostAliases (/etc/hosts)
    ds_aliases = dict(host_aliases(api.obj("daemonsets", "cilium")), **config_host_aliases(clustermesh_secret))
    kvsm = None
    kvsm_error = None
    clusters = []
    for name, url in configs.items():
        host = urllib.parse.urlsplit(url).hostname or ""
        if host.startswith("clustermesh-apiserver.") and host.endswith(".svc"):
            # through the local KVStoreMesh: connected to it, ready when it is
            if ready_replicas(deploy) < 1:
                clusters.append(failed_entry(name, "failed to connect to etcd %s: connection refused "
                                                   "(no Ready local clustermesh-apiserver)" % url))
                continue
            if kvsm is None:
                try:
                    kvsm = real_kvstoremesh(fleet.fleet_dir, fleet.local)
                except (OSError, ValueError, subprocess.TimeoutExpired) as e:
                    kvsm = {}
                    kvsm_error = str(e)
                else:
                    kvsm_error = None
            remote = dict(kvsm.get(name) or {"name": name, "status": "remote cluster %s not cached by "
                                             "KVStoreMesh%s" % (name, (": " + kvsm_error) if kvsm_error else ""),
                                             "config": {"required": True}})
            remote["connected"] = True
            remote["config"] = dict(remote.get("config") or {}, kvstoremesh=True)
            if not remote.get("ready"):
                remote["status"] = "kvstoremesh: " + remote.get("status", "")
            clusters.append(_omit_empty(remote))
        else:
            clusters.append(remote_view(fleet, name, url, ds_aliases, local_ca))
    services = api.items("/api/v1/services")
    n_global = len([s for s in services
                    if ((s.get("metadata") or {}).get("annotations") or {}).get("service.cilium.io/global") == "true"])
    out = {"cilium": {"state": "Ok", "msg": SIMULATED}, "meshops-simulated": SIMULATED}
    if configs:
        out["cluster-mesh"] = _omit_empty({"clusters": clusters, "num-global-services": n_global})
    return out


def main(argv):
    role, args = (argv[1] if len(argv) > 1 else ""), argv[2:]
    if role == "kvstoremesh" or "kvstoremesh-dbg" in args:
        sys.stderr.write("meshops fleet stand-in: KVStoreMesh status is not simulated; the fleet runs the "
                         "real KVStoreMesh (exec into container kvstoremesh)\n")
        return 3
    wanted = {"agent": ["status"]}.get(role)
    words = [a for a in args if not a.startswith("-") and a != "json"]
    if wanted is None or words != wanted or "json" not in args:
        sys.stderr.write("meshops fleet stand-in: only '%s -o json' is simulated, not %s\n"
                         % (" ".join(wanted or ["?"]), " ".join(args)))
        return 2
    try:
        state_file = os.environ["MESHOPS_FLEET_STATE"]
        cluster = os.environ["MESHOPS_FLEET_CLUSTER"]

        def compute():
            with open(state_file) as f:
                state = json.load(f)
            fleet = Fleet(state, cluster, os.path.dirname(state_file))
            return json.dumps(agent_status(fleet), indent=2, sort_keys=True) + "\n"
        text = shared_answer(os.path.dirname(state_file), cluster, compute)
    except (KeyError, OSError, ValueError) as e:
        sys.stderr.write("meshops fleet stand-in: %s: %s\n" % (type(e).__name__, e))
        return 1
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
