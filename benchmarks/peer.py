"""The benchmark's reference peer (issue 13): the upstream cilium-cli, the tool the Cilium docs
use, doing a ClusterMesh the documented way on the clusters the benchmark gives it.

    build(log) -> path of the `cilium` binary (hack/gotools/cilium-cli, built once and cached by
                  hack/fleet/build.py build_cilium_cli), or PeerUnavailable with the reason;
    run(cli, clusters, log, timeout=1200) -> figures (see run()).

What run() does, as the Cilium docs ("Setting up Cluster Mesh") do it:
  1. `cilium install --context C --chart-directory <the fleet's chart> --set cluster.name=..
     --set cluster.id=.. --set ipam.mode=kubernetes` on each cluster, after copying Secret
     `cilium-ca` of the first cluster to the others (the documented shared-CA step: this
     cilium-cli has no --inherit-ca; the copy carries the first release's Helm metadata, so the
     chart adopts it);
  2. `cilium clustermesh enable --context C --service-type LoadBalancer` on each cluster;
  3. `cilium clustermesh connect --context A --destination-context B` for every pair
     (bidirectional, the default mode; MESHOPS_PEER_CONNECT=mesh makes it one
     `--connection-mode mesh` call with every other cluster as destination);
  4. `cilium clustermesh status --context C --wait` on each cluster (in parallel, bounded).

The chart comes from the fleet's archives (never the network): --chart-directory on the
extracted cilium-<version>.tgz (default: the fleet's default chart, the Cilium module's
version; MESHOPS_PEER_CHART_VERSION chooses another one the fleet holds).

Fleet stand-in (marked in notes): `clustermesh enable` forces TLS method cronJob, whose
certgen Job kwok only simulates (it writes no certificate; the certgen image's module is not
served by the Go proxy). After each enable, peer.py issues the certificates the rendered Job's
CILIUM_CERTGEN_CONFIG asks for, from the cluster's cilium-ca, as certgen would. That time is
outside enable_s and its writes are excluded from `writes` (a real certgen writes as a
kube-system ServiceAccount, which the fleet's audit policy does not record either).

`clustermesh status --wait` execs `/usr/bin/clustermesh-apiserver kvstoremesh-dbg status -o json`
in container kvstoremesh and `cilium status -o json` in container cilium-agent; kwok runs execs on
this host, where the fleet puts its shims at those paths only in kwok's own mount namespace (an
overlay on /usr/bin, hack/fleet/runner.py), so it succeeds on the fleet. Should that overlay be
refused, peer.py stops status --wait as soon as the exec error repeats (status_ok false, the reason
in notes) and reads the same KVStoreMesh status through the fleet's exec shim, so notes still say
whether the mesh cilium-cli configured is really connected.

After `clustermesh enable`, peer.py waits until every clustermesh-apiserver Service has its address
(counted in enable_s), as the Cilium docs' `status --wait` does before `connect`: enable returns
first, and connect refuses a Service without one ("unable to derive service IPs automatically").

    python -m benchmarks.peer --clusters 3     # against the running fleet (MESHOPS_FLEET_DIR)
"""
import argparse
import base64
import collections
import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import threading
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)

NS = "kube-system"
RELEASE = "cilium"
SERVICE_TYPE = os.environ.get("MESHOPS_PEER_SERVICE_TYPE", "LoadBalancer")
CONNECT_MODE = os.environ.get("MESHOPS_PEER_CONNECT", "pairs")  # pairs | mesh
# Upper bound of the `clustermesh status --wait` phase (all clusters in parallel), seconds.
STATUS_WAIT = int(os.environ.get("MESHOPS_PEER_STATUS_WAIT", "300"))
MUTATING = ("create", "update", "patch", "delete", "deletecollection")
CERTGEN_LABEL = "k8s-app=clustermesh-apiserver-generate-certs"
# What makes `clustermesh status --wait` unable to ever succeed here: an exec whose program does
# not exist on the machine that answers the exec (kwok runs it on this host).
EXEC_NOT_FOUND = ("executable file not found", "no such file or directory")


class PeerUnavailable(Exception):
    """why cilium-cli cannot be built or run here (exact text)"""


# --------------------------------------------------------------------------------- build
def build(log):
    """Path of the cilium binary (builds once, cached), or raise PeerUnavailable."""
    from hack.fleet import build as fbuild  # noqa: PLC0415 - the fleet's build code
    if shutil.which("go") is None:
        raise PeerUnavailable("the Go toolchain is required to build cilium-cli (go not on PATH)")
    spec = fbuild.cilium_cli_spec()
    out = fbuild.tool_dir("cilium-cli", spec)
    if not os.path.exists(os.path.join(out, ".complete")):
        log("building cilium-cli %s from its Go module into %s (cold on 2 cores: %s; the Go "
            "build cache makes later builds fast)" % (spec["version"], out, fbuild.COLD_ESTIMATES["cilium-cli"]))
    try:
        path = fbuild.build_cilium_cli()
    except SystemExit as e:
        raise PeerUnavailable("cilium-cli %s did not build: %s" % (spec["version"], e))
    if not os.access(path, os.X_OK):
        raise PeerUnavailable("cilium-cli build left no executable at %s" % path)
    return path


# ------------------------------------------------------------------------------- helpers
def _chart_dir(workdir):
    """The fleet's chart archive, extracted for --chart-directory."""
    from hack.fleet import build as fbuild  # noqa: PLC0415
    version = os.environ.get("MESHOPS_PEER_CHART_VERSION") or fbuild.cilium_version().lstrip("v")
    candidates = [fbuild.chart_path(version)]
    if version == fbuild.cilium_version().lstrip("v"):
        candidates.append(fbuild.cilium_chart_path())
    tgz = next((p for p in candidates if os.path.exists(p)), None)
    if tgz is None:
        raise PeerUnavailable("no chart archive cilium-%s.tgz (looked at %s): run python -m hack.fleet build"
                              % (version, ", ".join(candidates)))
    dest = os.path.join(workdir, "chart")
    with tarfile.open(tgz) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest, filter="data")
        else:
            tar.extractall(dest)  # noqa: S202 - our own archive
    return os.path.join(dest, "cilium"), version, tgz


def _merged_kubeconfig(clusters, path):
    """One kubeconfig holding every cluster's context (connect needs source and destination
    contexts in one file); cluster and user entries renamed after the context."""
    import yaml  # noqa: PLC0415
    merged = {"apiVersion": "v1", "kind": "Config", "preferences": {}, "clusters": [], "users": [], "contexts": []}
    for c in clusters:
        with open(c["kubeconfig"]) as f:
            kc = yaml.safe_load(f)
        base = os.path.dirname(os.path.abspath(c["kubeconfig"]))
        ctx = next((x for x in kc.get("contexts") or [] if x["name"] == c["context"]), None)
        if ctx is None:
            raise PeerUnavailable("kubeconfig %s has no context %s" % (c["kubeconfig"], c["context"]))
        cl = next(x for x in kc["clusters"] if x["name"] == ctx["context"]["cluster"])["cluster"]
        user = next(x for x in kc["users"] if x["name"] == ctx["context"]["user"])["user"]
        for entry, keys in ((cl, ("certificate-authority",)), (user, ("client-certificate", "client-key", "tokenFile"))):
            for k in keys:
                if entry.get(k) and not os.path.isabs(entry[k]):
                    entry[k] = os.path.join(base, entry[k])
        name = c["context"]
        merged["clusters"].append({"name": name, "cluster": cl})
        merged["users"].append({"name": name, "user": user})
        merged["contexts"].append({"name": name, "context": {"cluster": name, "user": name}})
    merged["current-context"] = clusters[0]["context"]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(merged, f)
    return path


class _Kube(object):
    """The few reads (and the CA copy / certgen stand-in writes) peer.py makes itself."""

    def __init__(self, kubeconfig, context):
        from kubernetes import client, config  # noqa: PLC0415
        self.client = client
        api_client = config.new_client_from_config(config_file=kubeconfig, context=context)
        self.core = client.CoreV1Api(api_client)
        self.batch = client.BatchV1Api(api_client)

    def secret(self, name):
        try:
            return self.core.read_namespaced_secret(name, NS)
        except self.client.ApiException as e:
            if e.status == 404:
                return None
            raise

    def service_address(self, name="clustermesh-apiserver"):
        """The LoadBalancer (ingress) address of Service ``name``, or None while it has none."""
        try:
            svc = self.core.read_namespaced_service(name, NS)
        except self.client.ApiException as e:
            if e.status == 404:
                return None
            raise
        if (svc.spec.type or "") != "LoadBalancer":
            return svc.spec.cluster_ip
        ingress = (svc.status.load_balancer.ingress if svc.status and svc.status.load_balancer else None) or []
        return next((i.ip or i.hostname for i in ingress if i.ip or i.hostname), None)

    def releases(self):
        """{revision: secret} of Helm release `cilium`."""
        items = self.core.list_namespaced_secret(NS, label_selector="owner=helm,name=%s" % RELEASE).items
        return {int(s.metadata.labels.get("version", 0)): s for s in items}

    def latest_release(self):
        rel = self.releases()
        if not rel:
            return 0, None
        rev = max(rel)
        raw = base64.b64decode(base64.b64decode(rel[rev].data["release"]))
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        return rev, json.loads(raw)


def _audit_mark(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def _audit_writes(path, start, end):
    """Mutating requests recorded in [start, end) of a JSON-lines audit log:
    (count, Counter of 'verb resource', Counter of users, failed count)."""
    count, failed = 0, 0
    what, users = collections.Counter(), collections.Counter()
    try:
        with open(path, "rb") as f:
            f.seek(start)
            data = f.read(max(0, end - start))
    except OSError:
        return 0, what, users, 0
    for line in data.splitlines():
        try:
            ev = json.loads(line)
        except ValueError:
            continue
        if ev.get("verb") not in MUTATING or ev.get("stage", "ResponseComplete") != "ResponseComplete":
            continue
        count += 1
        ref = ev.get("objectRef") or {}
        what["%s %s%s" % (ev["verb"], ref.get("resource", "?"), "/" + ref["subresource"] if ref.get("subresource") else "")] += 1
        users[(ev.get("user") or {}).get("username", "?")] += 1
        if ((ev.get("responseStatus") or {}).get("code") or 0) >= 400:
            failed += 1
    return count, what, users, failed


def _run_cmd(argv, env, log, label, logfile, timeout, abort=None):
    """Run one cilium-cli command in its own process group; stream its output to logfile (and
    the last lines to log). Returns dict(rc, seconds, lines, reason); rc None when it was
    stopped (timeout or abort(line) returned a reason)."""
    started = time.time()
    lines, reason = [], [None]
    with open(logfile, "a") as out:
        out.write("$ %s\n" % " ".join(argv))
        out.flush()
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, start_new_session=True, universal_newlines=True, errors="replace")

        def reader():
            for line in proc.stdout:
                out.write(line)
                out.flush()
                lines.append(line.rstrip("\n"))
                if abort is not None and reason[0] is None:
                    why = abort(line)
                    if why:
                        reason[0] = why
                        _stop(proc)
        t = threading.Thread(target=reader, daemon=True)
        t.start()
        try:
            rc = proc.wait(timeout=max(1, timeout))
        except subprocess.TimeoutExpired:
            reason[0] = "timed out after %ds" % timeout
            _stop(proc)
            rc = None
        t.join(10)
        if reason[0] is not None:
            rc = None
    secs = time.time() - started
    log("  %s: %s in %.1fs" % (label, "ok" if rc == 0 else ("exit %s" % rc if rc is not None else reason[0]), secs))
    if rc != 0:
        for ln in lines[-8:]:
            log("    | " + ln)
    return dict(rc=rc, seconds=secs, lines=lines, reason=reason[0])


def _stop(proc):
    """End a command this module started: its own process group, by its id."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        try:
            proc.wait(timeout=5)
            return
        except subprocess.TimeoutExpired:
            continue


def _copy_ca(src, dst, notes):
    """Cilium's documented shared-CA step: kubectl get secret cilium-ca -o yaml (first
    cluster) | kubectl create -f - (next cluster), before installing there."""
    s = src.secret("cilium-ca")
    if s is None:
        raise PeerUnavailable("the first cluster has no Secret %s/cilium-ca after cilium install" % NS)
    body = {"apiVersion": "v1", "kind": "Secret", "type": s.type, "data": s.data,
            "metadata": {"name": "cilium-ca", "namespace": NS, "labels": s.metadata.labels,
                         "annotations": s.metadata.annotations}}
    if dst.secret("cilium-ca") is not None:
        dst.core.delete_namespaced_secret("cilium-ca", NS)
        notes.append("a cilium-ca Secret was already present in a cluster to install: replaced by the copy")
    dst.core.create_namespaced_secret(NS, body)


def _certgen_standin(kube, deadline):
    """Issue what the rendered certgen Job would, from cilium-ca: returns the Secret names
    written (empty when there is no certgen Job, e.g. TLS method helm)."""
    import yaml  # noqa: PLC0415
    from cryptography import x509  # noqa: PLC0415
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415
    from hack.fleet import pki  # noqa: PLC0415
    jobs = []
    while time.time() < deadline:
        jobs = kube.batch.list_namespaced_job(NS, label_selector=CERTGEN_LABEL).items
        if jobs:
            break
        time.sleep(0.5)
    if not jobs:
        return []
    ctr = jobs[0].spec.template.spec.containers[0]
    cfg = next((e.value for e in ctr.env or [] if e.name == "CILIUM_CERTGEN_CONFIG"), None)
    ca = kube.secret("cilium-ca")
    if not cfg or ca is None:
        return []
    ca_pem = base64.b64decode(ca.data["ca.crt"])
    ca_cert = x509.load_pem_x509_certificate(ca_pem)
    ca_key = serialization.load_pem_private_key(base64.b64decode(ca.data["ca.key"]), password=None)
    written = []
    for cert in yaml.safe_load(cfg).get("certs") or []:
        if kube.secret(cert["name"]) is not None:
            continue
        usage = cert.get("usage") or []
        server = "server auth" in usage
        crt, key = pki.issue(ca_cert, ca_key, cert["commonName"],
                             server_names=[str(h) for h in cert.get("hosts") or []] if server else (),
                             client=not server)

        def b64(d):
            return base64.b64encode(d).decode()
        kube.core.create_namespaced_secret(cert.get("namespace") or NS, {
            "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/tls",
            "metadata": {"name": cert["name"], "namespace": cert.get("namespace") or NS},
            "data": {"ca.crt": b64(ca_pem), "tls.crt": b64(crt), "tls.key": b64(key)}})
        written.append(cert["name"])
    return written


def _mask(value):
    if isinstance(value, dict):
        return {k: ("********" if k in ("tls", "key", "cert", "caCert") else _mask(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask(v) for v in value]
    return value


def _etcd_endpoints(secret):
    """{key: endpoints} of a Secret holding one etcd client configuration per remote cluster."""
    import yaml  # noqa: PLC0415
    out = {}
    for k, v in sorted((secret.data or {}).items() if secret is not None else []):
        text = base64.b64decode(v).decode(errors="replace")
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError:
            doc = None
        out[k] = doc.get("endpoints") if isinstance(doc, dict) and "endpoints" in doc else "(%d bytes, no endpoints)" % len(text)
    return out


def _peer_config(kube):
    rev, rel = kube.latest_release()
    values = (rel or {}).get("config") or {}
    clusters = ((values.get("clustermesh") or {}).get("config") or {}).get("clusters")
    return {
        "release_revision": rev,
        "chart": ((rel or {}).get("chart") or {}).get("metadata", {}).get("version"),
        "clustermesh.config.clusters": _mask(clusters),
        "tls.caBundle.enabled": ((values.get("tls") or {}).get("caBundle") or {}).get("enabled", False),
        "secret cilium-clustermesh": _etcd_endpoints(kube.secret("cilium-clustermesh")),
        "secret cilium-kvstoremesh": _etcd_endpoints(kube.secret("cilium-kvstoremesh")),
    }


# ----------------------------------------------------------------------------------- run
def run(cli, clusters, log, timeout=1200):
    """clusters: list of dicts with keys name, context, kubeconfig (a kubeconfig file that has the context),
    cluster_id, audit_log; Cilium is NOT installed on them yet (the caller removed it).
    Does what the Cilium docs say for a mesh with cilium-cli: install Cilium on each cluster with
    cluster.name/cluster.id (shared CA: --inherit-ca or the documented way), then
    `cilium clustermesh enable` on each, `cilium clustermesh connect` for every pair needed, and
    `cilium clustermesh status --wait`.  Returns {"install_s", "enable_s", "connect_s", "status_s",
    "total_s" (enable+connect+status), "helm_upgrades": {cluster: count of release revisions created by enable+connect},
    "writes": {cluster: count of mutating audit events (create/update/patch/delete) during enable+connect},
    "peers": {cluster: the clustermesh peer configuration it wrote (Secret cilium-clustermesh keys /
    the chart's clustermesh.config.clusters entries, secrets masked)}, "status_ok": bool, "notes": [str]}"""
    if len(clusters) < 2:
        raise ValueError("a mesh needs at least 2 clusters")
    deadline = time.time() + timeout

    def left():
        return deadline - time.time()
    notes = []
    result = {"install_s": 0.0, "enable_s": 0.0, "connect_s": 0.0, "status_s": 0.0, "total_s": 0.0,
              "helm_upgrades": {}, "writes": {}, "peers": {}, "status_ok": False, "notes": notes}
    workdir = tempfile.mkdtemp(prefix="meshops-peer-")
    os.chmod(workdir, 0o700)
    cmdlog = os.path.join(workdir, "cilium-cli.log")
    try:
        return _run(cli, clusters, log, deadline, left, notes, result, workdir, cmdlog)
    finally:
        keep = os.environ.get("MESHOPS_PEER_KEEP_LOG")
        if keep:
            shutil.copyfile(cmdlog, keep)
            notes.append("cilium-cli output kept in %s" % keep)
        shutil.rmtree(workdir, ignore_errors=True)


def _run(cli, clusters, log, deadline, left, notes, result, workdir, cmdlog):
    names = [c["name"] for c in clusters]
    kubeconfig = _merged_kubeconfig(clusters, os.path.join(workdir, "kubeconfig"))
    env = dict(os.environ, KUBECONFIG=kubeconfig, HOME=workdir, NO_COLOR="1")
    kube = {c["name"]: _Kube(kubeconfig, c["context"]) for c in clusters}
    chart, chart_version, tgz = _chart_dir(workdir)
    version = subprocess.run([cli, "version", "--client"], check=False, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             universal_newlines=True, env=env, timeout=60).stdout.strip().splitlines()
    notes.append("cilium-cli: %s; chart %s from %s (--chart-directory)" % (" / ".join(version[:2]), chart_version, tgz))
    for c in clusters:
        if kube[c["name"]].releases():
            raise PeerUnavailable("%s already has a Helm release %s: the caller must remove Cilium first"
                                  % (c["name"], RELEASE))

    def cmd(label, args, abort=None, budget=None):
        res = _run_cmd([cli] + args, env, log, label, cmdlog, min(left(), budget or left()), abort)
        return res

    def need(res, what):
        if res["rc"] != 0:
            tail = " | ".join(res["lines"][-5:])
            raise PeerUnavailable("%s failed (%s): %s" % (what, res["reason"] or "exit %s" % res["rc"], tail))

    # 1. install, first cluster first; its cilium-ca copied to the others before their install
    log("cilium-cli peer: install on %d clusters (chart %s)" % (len(clusters), chart_version))
    t0 = time.time()
    for i, c in enumerate(clusters):
        if i:
            _copy_ca(kube[clusters[0]["name"]], kube[c["name"]], notes)
        need(cmd("install %s" % c["name"], [
            "install", "--context", c["context"], "--chart-directory", chart,
            "--set", "cluster.name=%s" % c["name"], "--set", "cluster.id=%d" % int(c["cluster_id"]),
            "--set", "ipam.mode=kubernetes"]), "cilium install on %s" % c["name"])
    result["install_s"] = round(time.time() - t0, 2)
    notes.append("shared CA: Secret cilium-ca of %s copied to the others before their install (the documented "
                 "way; this cilium-cli has no --inherit-ca flag)" % names[0])

    rev0 = {n: max(kube[n].releases() or [0]) for n in names}
    mark0 = {c["name"]: _audit_mark(c["audit_log"]) for c in clusters}
    excluded = {n: [] for n in names}   # audit ranges of the certgen stand-in

    # 2. enable
    log("cilium-cli peer: clustermesh enable (--service-type %s)" % SERVICE_TYPE)
    standin = {}
    for c in clusters:
        res = cmd("enable %s" % c["name"], ["clustermesh", "enable", "--context", c["context"],
                                            "--service-type", SERVICE_TYPE])
        result["enable_s"] += res["seconds"]
        need(res, "cilium clustermesh enable on %s" % c["name"])
        a = _audit_mark(c["audit_log"])
        standin[c["name"]] = _certgen_standin(kube[c["name"]], min(deadline, time.time() + 30))
        excluded[c["name"]].append((a, _audit_mark(c["audit_log"])))
    # enable returns before the clustermesh-apiserver Service has its address, and connect reads it
    # ("unable to derive service IPs automatically" otherwise): the docs wait for it between the two
    # (`cilium clustermesh status --wait`); this waits for the address alone, counted in enable_s
    started = time.time()
    for c in clusters:
        while kube[c["name"]].service_address() is None:
            if time.time() > min(deadline, started + 120):
                raise PeerUnavailable("clustermesh-apiserver Service of %s has no address 120 s after enable" % c["name"])
            time.sleep(0.5)
    waited = time.time() - started
    result["enable_s"] += waited
    log("  enable: every clustermesh-apiserver Service has its address after %.1fs more" % waited)
    rev_enable = {n: max(kube[n].releases() or [0]) for n in names}
    mark_enable = {c["name"]: _audit_mark(c["audit_log"]) for c in clusters}
    if any(standin.values()):
        notes.append("fleet stand-in for the certgen Job (TLS method cronJob, which enable forces; kwok only "
                     "simulates Jobs): issued %s from each cluster's cilium-ca, outside enable_s and the write counts"
                     % ", ".join(sorted(set(sum(standin.values(), [])))))

    # 3. connect
    if CONNECT_MODE == "mesh":
        plan = [(clusters[0], clusters[1:])]
    else:
        plan = [(a, [b]) for i, a in enumerate(clusters) for b in clusters[i + 1:]]
    log("cilium-cli peer: clustermesh connect (%s: %d call(s))" % (CONNECT_MODE, len(plan)))
    for src, dsts in plan:
        args = ["clustermesh", "connect", "--context", src["context"]]
        for d in dsts:
            args += ["--destination-context", d["context"]]
        if CONNECT_MODE == "mesh":
            args += ["--connection-mode", "mesh"]
        res = cmd("connect %s -> %s" % (src["name"], ",".join(d["name"] for d in dsts)), args)
        result["connect_s"] += res["seconds"]
        need(res, "cilium clustermesh connect %s -> %s" % (src["name"], ",".join(d["name"] for d in dsts)))
    mark1 = {c["name"]: _audit_mark(c["audit_log"]) for c in clusters}
    rev1 = {n: max(kube[n].releases() or [0]) for n in names}

    # figures of enable + connect
    for c in clusters:
        n = c["name"]
        result["helm_upgrades"][n] = rev1[n] - rev0[n]
        ranges = [(mark0[n], mark_enable[n]), (mark_enable[n], mark1[n])]
        per_phase = []
        total_what = collections.Counter()
        for lo, hi in ranges:
            cnt, what, users, failed = 0, collections.Counter(), collections.Counter(), 0
            cuts = sorted(r for r in excluded[n] if lo <= r[0] < hi)
            pos = lo
            for a, b in cuts + [(hi, hi)]:
                k, w, u, fl = _audit_writes(c["audit_log"], pos, a)
                cnt, failed = cnt + k, failed + fl
                what.update(w)
                users.update(u)
                pos = b
            per_phase.append((cnt, users, failed))
            total_what.update(what)
        result["writes"][n] = per_phase[0][0] + per_phase[1][0]
        notes.append("%s: enable %d upgrade(s) %d write(s), connect %d upgrade(s) %d write(s)%s; users %s; %s" % (
            n, rev_enable[n] - rev0[n], per_phase[0][0], rev1[n] - rev_enable[n], per_phase[1][0],
            " (%d refused)" % (per_phase[0][2] + per_phase[1][2]) if per_phase[0][2] + per_phase[1][2] else "",
            dict(per_phase[0][1] + per_phase[1][1]),
            ", ".join("%s x%d" % (k, v) for k, v in sorted(total_what.items()))))
        result["peers"][n] = _peer_config(kube[n])
        if _audit_mark(c["audit_log"]) < mark0[n]:
            notes.append("%s: the audit log was rotated during the run; its write count is incomplete" % n)

    # 4. status --wait, every cluster in parallel, bounded
    budget = max(10, min(STATUS_WAIT, int(left()) - 5))
    log("cilium-cli peer: clustermesh status --wait on every cluster (bounded: %ds)" % budget)
    seen = collections.Counter()

    def abort(line):
        low = line.lower()
        if "unable to determine status of pod" in low and any(s in low for s in EXEC_NOT_FOUND):
            seen[line.split("for clusters to be connected:")[-1].strip()[:300]] += 1
            if sum(seen.values()) >= 3:
                return "stopped early: the status exec cannot succeed on this fleet"
        return None
    outcomes = {}
    t0 = time.time()
    threads = []
    for c in clusters:
        def one(c=c):
            outcomes[c["name"]] = _run_cmd(
                [cli, "clustermesh", "status", "--context", c["context"], "--wait",
                 "--wait-duration", "%ds" % budget], env, log, "status %s" % c["name"],
                cmdlog + "." + c["name"], budget + 15, abort)
        th = threading.Thread(target=one)
        th.start()
        threads.append(th)
    for th in threads:
        th.join()
    result["status_s"] = round(time.time() - t0, 2)
    for c in clusters:
        try:
            with open(cmdlog + "." + c["name"]) as f, open(cmdlog, "a") as out:
                out.write(f.read())
        except OSError:
            pass
    result["status_ok"] = all(outcomes[n]["rc"] == 0 for n in names)
    for n in names:
        o = outcomes[n]
        if o["rc"] != 0:
            last = [ln.strip() for ln in o["lines"] if ln.strip()][-1:]
            notes.append("status %s: %s: %s" % (n, o["reason"] or "exit %s" % o["rc"], " | ".join(last)[:400]))
    if seen:
        notes.append("why status --wait cannot succeed on this fleet: cilium-cli execs "
                     "`/usr/bin/clustermesh-apiserver kvstoremesh-dbg status -o json` in container kvstoremesh (and "
                     "`cilium status -o json` in container cilium-agent); kwok runs exec commands on this host, where "
                     "the fleet puts its shims at those names only in kwok's own mount namespace (an overlay on "
                     "/usr/bin) and on kwok's PATH: the overlay mount was refused (see the fleet's log), or the fleet "
                     "was started before it was added (restart it)")
    if not result["status_ok"]:
        notes.append(_real_kvstoremesh(clusters, kubeconfig, min(60, max(5, left()))))
    for k in ("enable_s", "connect_s"):
        result[k] = round(result[k], 2)
    result["total_s"] = round(result["enable_s"] + result["connect_s"] + result["status_s"], 2)
    return result


def _real_kvstoremesh(clusters, kubeconfig, budget):
    """What the real KVStoreMesh of each cluster says of its peers, through the fleet's exec
    (`clustermesh-apiserver kvstoremesh-dbg status -o json` in container kvstoremesh): the check
    cilium-cli's status makes, which its absolute program path keeps it from making here."""
    from hack.fleet import build as fbuild  # noqa: PLC0415
    kubectl = fbuild.binaries().get("kubectl")
    if not kubectl or not os.path.exists(kubectl):
        kubectl = shutil.which("kubectl")
    if not kubectl:
        return "real KVStoreMesh status: not read (no kubectl)"
    started, deadline = time.time(), time.time() + budget
    while True:
        views, all_ready = [], True
        for c in clusters:
            argv = [kubectl, "--kubeconfig", kubeconfig, "--context", c["context"], "-n", NS, "exec",
                    "deploy/clustermesh-apiserver", "-c", "kvstoremesh", "--", "clustermesh-apiserver",
                    "kvstoremesh-dbg", "status", "-o", "json"]
            proc = subprocess.run(argv, check=False, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  universal_newlines=True, timeout=30)
            try:
                remotes = {r["name"]: r for r in json.loads(proc.stdout)}
            except (ValueError, TypeError, KeyError):
                remotes = None
            want = [o["name"] for o in clusters if o["name"] != c["name"]]
            if remotes is None:
                all_ready = False
                views.append("%s: unreadable (%s)" % (c["name"], (proc.stderr or proc.stdout).strip()[-200:]))
                continue
            parts = []
            for w in want:
                r = remotes.get(w) or {}
                ok = bool(r.get("connected") and r.get("ready"))
                all_ready = all_ready and ok
                parts.append("%s %s" % (w, "connected+ready" if ok else "NOT ready (%s)" % (r.get("status") or "absent")))
            views.append("%s -> %s" % (c["name"], ", ".join(parts)))
        if all_ready or time.time() >= deadline:
            break
        time.sleep(2)
    return "real KVStoreMesh status (read through the fleet's exec in %.0fs): %s%s" % (
        time.time() - started, "; ".join(views), "" if all_ready else " (not all ready within %ds)" % budget)


# ----------------------------------------------------------------------------------- CLI
def _fleet_clusters(n):
    from hack.fleet import runner  # noqa: PLC0415 - MESHOPS_FLEET_DIR picks the fleet
    fleet = runner.Fleet.load()
    if fleet is None:
        raise SystemExit("no fleet state in %s (set MESHOPS_FLEET_DIR)" % runner.FLEET_DIR)
    cs = fleet.state["clusters"][:n]
    if len(cs) < n:
        raise SystemExit("the fleet has %d clusters, not %d" % (len(fleet.state["clusters"]), n))
    return [dict(name=c["name"], context=c["name"], kubeconfig=fleet.state.get("kubeconfig") or c["kubeconfig"],
                 cluster_id=c["index"], audit_log=c["audit_log"]) for c in cs]


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m benchmarks.peer", description=__doc__.split("\n\n", maxsplit=1)[0])
    p.add_argument("--clusters", type=int, default=3)
    p.add_argument("--timeout", type=int, default=1200)
    p.add_argument("--build-only", action="store_true", help="only build (or find) cilium-cli")
    args = p.parse_args(argv)

    def log(msg):
        print("[peer] " + msg, flush=True)
    try:
        cli = build(log)
        log("cilium-cli: %s" % cli)
        if args.build_only:
            return 0
        out = run(cli, _fleet_clusters(args.clusters), log, timeout=args.timeout)
    except PeerUnavailable as e:
        print(json.dumps({"unavailable": str(e)}, indent=2))
        return 2
    print(json.dumps(out, indent=2, sort_keys=True, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
