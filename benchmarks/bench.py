"""`make bench`: what a converged mesh costs to re-check, against the floor, kubernetes.core and cilium-cli.

One run, on a fleet of its own (build/bench/fleet, port base 26000 unless MESHOPS_FLEET_PORT_BASE
says otherwise), for every size N of --sizes (default 2 3 5 8):

* first converge of ``playbooks/site.yml`` on clusters 1..N: wall time, Helm revisions per cluster;
* adding cluster N+1 to it: Helm revisions per existing cluster;
* a no-op re-run of ``site.yml`` on the N clusters: wall time, read and mutating API requests per
  cluster (from each kube-apiserver's audit log, which leaves the fleet's own machinery out);
* ``playbooks/status.yml``: wall time, requests per cluster;
* baseline (a), the floor: one ``helm status`` task per cluster; baseline (b): the same read with
  ``kubernetes.core.helm_info`` + ``k8s_info``;
* after the converge the fleet settles (its CPU use stops falling), then the floor, kubernetes.core,
  the no-op and status.yml run in rounds (--repeats, default 3) and each figure is the median of its
  runs; every run also records the CPU of the ansible-playbook process tree and of the whole machine;
* the peer, cilium-cli (``benchmarks/peer.py``): install, ``clustermesh enable``, ``connect`` and
  ``status --wait`` on the same N clusters, with its writes and Helm revisions.

Peak memory is the largest summed RSS of the ansible-playbook process tree, sampled every 0.1 s.
Results: a table with PASS/FAIL per target, ``build/bench/results.json``, ``build/bench/bench.png``.
"""
import argparse
import concurrent.futures
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import zipfile

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(REPO, "build", "bench")
os.environ.setdefault("MESHOPS_FLEET_DIR", os.path.join(OUT, "fleet"))
os.environ.setdefault("MESHOPS_FLEET_PORT_BASE", "26000")
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
sys.path.insert(0, REPO)

from hack.fleet import build, runner  # noqa: E402

NS = "kube-system"
MUTATING = ("create", "update", "patch", "delete", "deletecollection")
# The targets.
NOOP_MAX_REQUESTS = 15
NOOP_MAX_FLOOR_RATIO = 3.0
STATUS_MAX_FLOOR_RATIO = 2.0
CONVERGE_MAX_REVISIONS = 2
ADD_ONE_REVISIONS = 1


def log(msg):
    print("[bench %s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


# -- the fleet's audit logs ------------------------------------------------------------------

def audit_mark(clusters):
    return {c["name"]: os.path.getsize(c["audit_log"]) for c in clusters}


def audit_events(cluster, mark):
    """Completed requests since ``mark`` (one per audit ID; exec streams log two stages)."""
    events = {}
    with open(cluster["audit_log"]) as f:
        f.seek(mark.get(cluster["name"], 0))
        for line in f:
            if line.strip():
                e = json.loads(line)
                events[e["auditID"]] = e
    return list(events.values())


def requests_since(clusters, mark):
    """{cluster: {reads, writes, revisions, by_agent}} since ``mark``."""
    out = {}
    for c in clusters:
        evs = audit_events(c, mark)
        writes = [e for e in evs if e["verb"] in MUTATING]
        revisions = [e for e in writes if e["verb"] == "create"
                     and (e.get("objectRef") or {}).get("resource") == "secrets"
                     and ((e.get("objectRef") or {}).get("name") or "").startswith("sh.helm.release.v1.cilium.v")]
        agents = {}
        for e in evs:
            agent = (e.get("userAgent") or "exec stream").split(" ")[0]
            agents[agent] = agents.get(agent, 0) + 1
        out[c["name"]] = {"requests": len(evs), "reads": len(evs) - len(writes), "writes": len(writes),
                          "revisions": len(revisions), "by_agent": agents}
    return out


# -- running playbooks -----------------------------------------------------------------------

def _tree_rss_kib(root):
    """Summed RSS of ``root`` and its descendants."""
    parents, rss = {}, {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            parents[int(pid)] = int(fields[1])
            rss[int(pid)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE") // 1024
        except (OSError, IndexError, ValueError):
            continue
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo.extend(p for p, pp in parents.items() if pp == pid)
    return total


class Ansible(object):
    def __init__(self, env, logdir):
        self.env = env
        self.logdir = logdir
        self.n = 0

    def run(self, playbook, inventory, name, extra=()):
        self.n += 1
        logfile = os.path.join(self.logdir, "%02d-%s.log" % (self.n, name))
        argv = [os.path.join(REPO, ".venv", "bin", "ansible-playbook"), "-i", inventory, playbook] + list(extra)
        profile = logfile[:-len(".log")] + ".profile.json"
        env = dict(self.env, MESHOPS_BENCH_PROFILE=profile)
        started = time.time()
        cpu0, ours0 = machine_cpu_s(), children_cpu_s()
        with open(logfile, "w") as out:
            p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=REPO)
            peak = [0]

            def sample():
                while p.poll() is None:
                    peak[0] = max(peak[0], _tree_rss_kib(p.pid))
                    time.sleep(0.1)
            t = threading.Thread(target=sample, daemon=True)
            t.start()
            rc = p.wait()
            t.join()
        wall = time.time() - started
        machine, ours = machine_cpu_s() - cpu0, children_cpu_s() - ours0
        if rc != 0:
            with open(logfile) as f:
                tail = f.read()[-3000:]
            raise SystemExit("%s failed (rc %d), log %s:\n%s" % (name, rc, logfile, tail))
        # CPU: the ansible-playbook process tree (ours) and the whole machine in the same time (the
        # rest is the fleet: API servers, kwok's execs, Cilium's programs, idle background)
        return {"wall_s": round(wall, 2), "peak_rss_mib": round(peak[0] / 1024.0, 1), "log": logfile,
                "cpu_s": round(ours, 2), "machine_cpu_s": round(machine, 2), "profile": costliest(profile)}


def machine_cpu_s():
    """CPU seconds the whole machine has been busy (user, nice, system, irq, softirq; /proc/stat)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:8]]
    return (fields[0] + fields[1] + fields[2] + fields[5] + fields[6]) / float(os.sysconf("SC_CLK_TCK"))


def children_cpu_s():
    """CPU seconds of this process's waited-for children and their descendants (ansible-playbook runs)."""
    import resource  # noqa: PLC0415
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def settle(timeout=90, window=2.0):
    """Wait until the machine's CPU use stops falling after a converge (pods starting, agents syncing
    and the pod runtime's rounds would otherwise be charged to the first timed run): two windows in
    a row within 5 points of each other. Returns the last window's use, in percent of all cores."""
    cores = os.cpu_count() or 1
    started, last = time.time(), None
    while True:
        a = machine_cpu_s()
        time.sleep(window)
        use = 100.0 * (machine_cpu_s() - a) / (window * cores)
        if last is not None and abs(use - last) <= 5.0 or time.time() - started > timeout:
            return round(use, 1), round(time.time() - started, 1)
        last = use


def median_run(runs):
    """The run of median wall time of ``runs`` (an odd count; the lower middle of an even one), with
    every run's wall time under ``runs_s``."""
    ranked = sorted(runs, key=lambda r: r["wall_s"])
    chosen = dict(ranked[(len(ranked) - 1) // 2])
    chosen["runs_s"] = [r["wall_s"] for r in runs]
    return chosen


def costliest(path, top=6):
    """The ``top`` costliest tasks of a run's profile (benchmarks/callbacks/bench_profile.py), with the
    number of tasks and the summed time of all the others."""
    try:
        with open(path) as f:
            tasks = json.load(f)["tasks"]
    except (OSError, ValueError, KeyError):
        return None
    ranked = sorted(tasks, key=lambda t: -t["wall_s"])
    return {"tasks": len(tasks), "top": ranked[:top], "rest_s": round(sum(t["wall_s"] for t in ranked[top:]), 2)}


def profile_lines(figs):
    """Where each no-op run spends its time, costliest tasks first."""
    lines = []
    for f in figs:
        prof = f["noop"].get("profile")
        if not prof:
            continue
        noop = f["noop"]
        cpu = ""
        if "cpu_s" in noop:
            cpu = " (runs %s s; CPU: ansible-playbook and its modules %.1f s, whole machine %.1f s)" % (
                "/".join("%.1f" % w for w in noop.get("runs_s", [noop["wall_s"]])), noop["cpu_s"],
                noop["machine_cpu_s"])
        lines.append("no-op N=%d, %.1f s%s: %s; the other %d tasks %.1f s" % (
            f["n"], noop["wall_s"], cpu, "; ".join("%s %.1f s" % (t["task"].split(" : ")[-1][:48], t["wall_s"])
                                                   for t in prof["top"]),
            max(0, prof["tasks"] - len(prof["top"])), prof["rest_s"]))
    return lines


def write_inventory(path, clusters):
    os.makedirs(os.path.join(path, "group_vars"), exist_ok=True)
    shutil.copy(os.path.join(REPO, "inventories", "local", "group_vars", "all.yml"),
                os.path.join(path, "group_vars", "all.yml"))
    lines = ["mesh:", "  hosts:"]
    for c in clusters:
        lines += ["    %s:" % c["name"], "      cilium_cluster_id: %d" % c["index"]]
    with open(os.path.join(path, "hosts.yml"), "w") as f:
        f.write("\n".join(lines) + "\n")
    # the benchmark measures the mesh's own tasks: the traffic check (its pods, its requests and the
    # objects it creates and removes) stays off, as the playbooks' defaults have it. The fleet's paths are
    # written out, as a user's inventory holds them: the local inventory finds them with lookups of the
    # fleet's state file, templated again on every task of every cluster (the floor and kubernetes.core
    # plays read the same inventory)
    state = runner.Fleet.load().state
    chart = state["chart_versions"][-1]
    literal = {
        "verify_traffic": False,
        "meshops_kubeconfig": os.path.join(runner.FLEET_DIR, "kubeconfig"),
        "meshops_helm_binary": os.path.join(state["bin_dir"], "helm"),
        "cilium_chart_version": chart,
        "cilium_chart_ref": os.path.join(state["charts_dir"], "cilium-%s.tgz" % chart),
    }
    with open(os.path.join(path, "group_vars", "mesh.yml"), "w") as f:
        json.dump(literal, f, indent=1, sort_keys=True)
    return path


def kubernetes_core(collections):
    """kubernetes.core, taken from the ``ansible`` package on PyPI (cached in the wheelhouse)."""
    dest = os.path.join(collections, "ansible_collections", "kubernetes", "core")
    if os.path.isdir(dest):
        return
    wheelhouse = os.path.join(build.CACHE, "wheelhouse")
    wheels = sorted(w for w in os.listdir(wheelhouse) if w.startswith("ansible-") and w.endswith(".whl")) \
        if os.path.isdir(wheelhouse) else []
    if not wheels:
        log("downloading the ansible package once for kubernetes.core (about 50 MB)")
        subprocess.check_call([os.path.join(REPO, ".venv", "bin", "pip"), "download", "--no-deps", "-q",
                               "ansible>=12,<15", "-d", wheelhouse])
        wheels = sorted(w for w in os.listdir(wheelhouse) if w.startswith("ansible-") and w.endswith(".whl"))
    prefix = "ansible_collections/kubernetes/core/"
    with zipfile.ZipFile(os.path.join(wheelhouse, wheels[-1])) as z:
        for name in z.namelist():
            if name.startswith(prefix) and not name.endswith("/"):
                target = os.path.join(collections, name)
                os.makedirs(os.path.dirname(target), exist_ok=True)
                with z.open(name) as src, open(target, "wb") as dst:
                    shutil.copyfileobj(src, dst)
    log("kubernetes.core from %s" % wheels[-1])


def reset(clusters, bins):
    """Every cluster without Cilium, CA and mesh Secrets (in parallel)."""
    def one(c):
        env = dict(os.environ, KUBECONFIG=c["kubeconfig"])
        subprocess.call([bins["helm"], "uninstall", "cilium", "-n", NS, "--wait", "--timeout", "2m"],
                        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.call([bins["kubectl"], "-n", NS, "delete", "secret", "--ignore-not-found",
                         "cilium-ca", "cilium-clustermesh", "cilium-kvstoremesh", "cilium-ipsec-keys",
                         "clustermesh-apiserver-remote-cert", "clustermesh-apiserver-server-cert",
                         "clustermesh-apiserver-admin-cert", "clustermesh-apiserver-local-cert"],
                        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with concurrent.futures.ThreadPoolExecutor(len(clusters)) as pool:
        list(pool.map(one, clusters))


def per_cluster(counts, key):
    return max(v[key] for v in counts.values()) if counts else 0


def measure(size, clusters, more, ansible, workdir, bins, peer, repeats=3):
    """Every figure for N = ``size`` (``more`` is the next cluster, to measure adding one)."""
    fig = {"n": size}
    inv = write_inventory(os.path.join(workdir, "inv-%d" % size), clusters)
    site = os.path.join(REPO, "playbooks", "site.yml")
    log("N=%d: removing Cilium from the fleet" % size)
    reset(clusters + ([more] if more else []), bins)

    log("N=%d: first converge (site.yml)" % size)
    mark = audit_mark(clusters)
    fig["converge"] = ansible.run(site, inv, "converge-%d" % size)
    counts = requests_since(clusters, mark)
    fig["converge"].update(revisions=dict((k, v["revisions"]) for k, v in counts.items()),
                           writes=dict((k, v["writes"]) for k, v in counts.items()))
    log("N=%d: converged in %.1f s, Helm revisions %s" % (size, fig["converge"]["wall_s"], fig["converge"]["revisions"]))

    use, waited = settle()
    log("N=%d: the fleet settled in %.0f s (CPU %.0f%% of %d cores)" % (size, waited, use, os.cpu_count() or 1))
    fig["settled_cpu_pct"] = use
    # one round = the floor, kubernetes.core, a no-op and status.yml, one after the other; the rounds
    # repeat and each figure is the median of its runs, so a burst of background load on this shared
    # machine (the fleet's API servers and Cilium's programs use the same cores) moves no ratio alone
    runs = dict((k, []) for k in ("floor", "kubernetes_core", "noop", "status"))
    noop_counts, status_counts = [], []
    for round_ in range(1, repeats + 1):
        for name, book in (("floor", "floor.yml"), ("kubernetes_core", "kubernetes_core.yml")):
            mark = audit_mark(clusters)
            r = ansible.run(os.path.join(REPO, "benchmarks", "playbooks", book), inv, "%s-%d" % (name, size))
            r["max_requests"] = per_cluster(requests_since(clusters, mark), "requests")
            runs[name].append(r)
        mark = audit_mark(clusters)
        runs["noop"].append(ansible.run(site, inv, "noop-%d" % size))
        noop_counts.append(requests_since(clusters, mark))
        mark = audit_mark(clusters)
        runs["status"].append(ansible.run(os.path.join(REPO, "playbooks", "status.yml"), inv, "status-%d" % size))
        status_counts.append(requests_since(clusters, mark))
        log("N=%d: round %d/%d: floor %.1f s, kubernetes.core %.1f s, no-op %.1f s, status.yml %.1f s" % (
            size, round_, repeats, runs["floor"][-1]["wall_s"], runs["kubernetes_core"][-1]["wall_s"],
            runs["noop"][-1]["wall_s"], runs["status"][-1]["wall_s"]))
    for name in runs:
        fig[name] = median_run(runs[name])
    # requests: the largest count of any run; writes: every no-op run's
    fig["noop"].update(requests=noop_counts[0],
                       max_requests=max(per_cluster(c, "requests") for c in noop_counts),
                       writes=sum(v["writes"] for c in noop_counts for v in c.values()))
    fig["status"]["max_requests"] = max(per_cluster(c, "requests") for c in status_counts)
    log("N=%d: no-op %.1f s (median of %s), at most %d requests per cluster, %d writes in %d runs" % (
        size, fig["noop"]["wall_s"], "/".join("%.1f" % w for w in fig["noop"]["runs_s"]),
        fig["noop"]["max_requests"], fig["noop"]["writes"], repeats))

    if more:
        log("N=%d: adding %s" % (size, more["name"]))
        inv_more = write_inventory(os.path.join(workdir, "inv-%d-plus" % size), clusters + [more])
        mark = audit_mark(clusters + [more])
        fig["add_one"] = ansible.run(site, inv_more, "add-one-%d" % size)
        counts = requests_since(clusters, mark)
        fig["add_one"]["revisions"] = dict((k, v["revisions"]) for k, v in counts.items())

    fig["peer"] = run_peer(size, clusters + ([more] if more else []), clusters, bins, peer)
    return fig


def run_peer(size, all_clusters, clusters, bins, peer):
    if peer.get("error"):
        return {"error": peer["error"]}
    log("N=%d: the peer, cilium-cli (install, clustermesh enable, connect, status --wait)" % size)
    reset(all_clusters, bins)
    from benchmarks import peer as peer_mod  # noqa: PLC0415
    merged = os.path.join(runner.FLEET_DIR, "kubeconfig")
    spec = [{"name": c["name"], "context": c["name"], "kubeconfig": merged, "cluster_id": c["index"],
             "audit_log": c["audit_log"]} for c in clusters]
    try:
        result = peer_mod.run(peer["cli"], spec, log)
    except Exception as e:  # the benchmark reports the peer's failure instead of stopping
        return {"error": "cilium-cli failed: %s" % " ".join(str(e).split())[:600]}
    return result


def find_peer():
    try:
        from benchmarks import peer as peer_mod  # noqa: PLC0415
    except ImportError as e:
        return {"error": "benchmarks/peer.py is not available: %s" % e}
    try:
        return {"cli": peer_mod.build(log)}
    except peer_mod.PeerUnavailable as e:
        return {"error": "cilium-cli cannot be built here: %s" % e}


# -- verdicts ----------------------------------------------------------------------------

def verdicts(figs, forks):
    rows = []

    def row(n, target, value, ok):
        rows.append({"n": n, "target": target, "value": value,
                     "result": "n/a" if ok is None else ("PASS" if ok else "FAIL")})
    first = figs[0]
    for f in figs:
        n, floor = f["n"], f["floor"]["wall_s"]
        row(n, "no-op site.yml writes nothing", "%d writes" % f["noop"]["writes"], f["noop"]["writes"] == 0)
        row(n, "no-op site.yml <= %d requests per cluster" % NOOP_MAX_REQUESTS,
            "%d" % f["noop"]["max_requests"], f["noop"]["max_requests"] <= NOOP_MAX_REQUESTS)
        ratio = f["noop"]["wall_s"] / floor
        row(n, "no-op site.yml <= %gx floor (a)" % NOOP_MAX_FLOOR_RATIO,
            "%.1fx (%.1f s / %.1f s)" % (ratio, f["noop"]["wall_s"], floor), ratio <= NOOP_MAX_FLOOR_RATIO)
        ratio = f["status"]["wall_s"] / floor
        row(n, "status.yml <= %gx floor (a)" % STATUS_MAX_FLOOR_RATIO,
            "%.1fx (%.1f s)" % (ratio, f["status"]["wall_s"]), ratio <= STATUS_MAX_FLOOR_RATIO)
        revs = max(f["converge"]["revisions"].values())
        row(n, "first converge <= %d Helm revisions per cluster" % CONVERGE_MAX_REVISIONS, "%d" % revs,
            revs <= CONVERGE_MAX_REVISIONS)
        if "add_one" in f:
            revs = sorted(set(f["add_one"]["revisions"].values()))
            row(n, "adding one cluster: %d revision per existing cluster" % ADD_ONE_REVISIONS,
                "/".join(map(str, revs)), revs == [ADD_ONE_REVISIONS])
        peer = f.get("peer") or {}
        if peer.get("error"):
            row(n, "first converge faster than cilium-cli enable+connect", peer["error"][:80], None)
        elif n >= 3:
            theirs = peer["enable_s"] + peer["connect_s"]
            row(n, "first converge faster than cilium-cli enable+connect",
                "%.1f s (install included) vs %.1f s (+ %.1f s install)" % (f["converge"]["wall_s"], theirs, peer["install_s"]),
                f["converge"]["wall_s"] < theirs)
            if peer.get("status_ok"):
                # like for like: our converge ends when the mesh is connected, as theirs does after status --wait
                theirs += peer["status_s"]
                row(n, "first converge vs cilium-cli enable+connect+status --wait",
                    "%.1f s vs %.1f s" % (f["converge"]["wall_s"], theirs), f["converge"]["wall_s"] < theirs)
        if n > first["n"] and n <= forks:
            grow = f["noop"]["wall_s"] / first["noop"]["wall_s"]
            row(n, "no-op wall grows sub-linearly up to forks (%d)" % forks,
                "x%.2f for x%.2f clusters" % (grow, float(n) / first["n"]), grow < float(n) / first["n"])
    return rows


def _spread(values):
    return "/".join(str(v) for v in sorted(set(values)))


def peer_summary(peer):
    if "total_s" not in peer:
        return "n/a: " + peer.get("error", "not run")[:70]
    return "%.1f s (+ install %.1f s, + status --wait %.1f s %s), %s revisions, %s writes" % (
        peer["enable_s"] + peer["connect_s"], peer.get("install_s", 0), peer.get("status_s", 0),
        "ok" if peer.get("status_ok") else "NOT ok", _spread(peer["helm_upgrades"].values()),
        _spread(peer["writes"].values()))


def table(figs, rows):
    lines = ["", "%-3s %-9s %-9s %-8s %-9s %-8s %-8s %-8s %-9s %-10s %s" % (
        "N", "converge", "no-op", "status", "floor(a)", "k8s.core", "no-op/a", "req/cl", "peak MiB", "revisions",
        "cilium-cli enable+connect")]
    for f in figs:
        peer = f.get("peer") or {}
        lines.append("%-3d %-9s %-9s %-8s %-9s %-8s %-8s %-8d %-9s %-10s %s" % (
            f["n"], "%.1f s" % f["converge"]["wall_s"], "%.1f s" % f["noop"]["wall_s"],
            "%.1f s" % f["status"]["wall_s"], "%.1f s" % f["floor"]["wall_s"],
            "%.1f s" % f["kubernetes_core"]["wall_s"], "%.1fx" % (f["noop"]["wall_s"] / f["floor"]["wall_s"]),
            f["noop"]["max_requests"], "%.0f" % max(f["converge"]["peak_rss_mib"], f["noop"]["peak_rss_mib"]),
            "/".join(str(v) for v in sorted(set(f["converge"]["revisions"].values()))),
            peer_summary(peer)))
    lines.append("")
    for r in rows:
        lines.append("%-5s N=%-3d %-58s %s" % (r["result"], r["n"], r["target"], r["value"]))
    prof = profile_lines(figs)
    if prof:
        lines += ["", "Where the no-op time goes (benchmarks/callbacks/bench_profile.py; a task's time is all its hosts'):"]
        lines += prof
    return "\n".join(lines)


def plot(figs, path):
    try:
        import matplotlib  # noqa: PLC0415
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt  # noqa: PLC0415
    except ImportError as e:
        log("no plot: %s" % e)
        return None
    ns = [f["n"] for f in figs]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    for key, label in (("converge", "first converge"), ("noop", "no-op site.yml"), ("status", "status.yml"),
                       ("floor", "floor (a): helm status"), ("kubernetes_core", "kubernetes.core (b)")):
        a.plot(ns, [f[key]["wall_s"] for f in figs], marker="o", label=label)
    peer = [(f["n"], f["peer"]["enable_s"] + f["peer"]["connect_s"]) for f in figs if "total_s" in (f.get("peer") or {})]
    if peer:
        a.plot([p[0] for p in peer], [p[1] for p in peer], marker="s", linestyle="--", label="cilium-cli enable+connect")
    a.set_xlabel("clusters (N)")
    a.set_ylabel("wall time (s)")
    a.legend(fontsize=8)
    a.grid(alpha=0.3)
    b.plot(ns, [f["noop"]["max_requests"] for f in figs], marker="o", label="no-op site.yml (max per cluster)")
    b.plot(ns, [f["status"]["max_requests"] for f in figs], marker="o", label="status.yml (max per cluster)")
    b.axhline(NOOP_MAX_REQUESTS, color="red", linestyle=":", label="target (%d)" % NOOP_MAX_REQUESTS)
    b.set_xlabel("clusters (N)")
    b.set_ylabel("API requests per cluster")
    b.legend(fontsize=8)
    b.grid(alpha=0.3)
    fig.suptitle("meshops.cilium on the local fleet (2 cores)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    return path


def main(argv=None):
    p = argparse.ArgumentParser(prog="make bench", description=__doc__.split("\n", maxsplit=1)[0])
    p.add_argument("--sizes", default=os.environ.get("BENCH_SIZES", "2 3 5 8"),
                   help="cluster counts N to measure (default: 2 3 5 8)")
    p.add_argument("--forks", type=int, default=int(os.environ.get("BENCH_FORKS", "5")),
                   help="Ansible forks (default 5, Ansible's own default)")
    p.add_argument("--repeats", type=int, default=int(os.environ.get("BENCH_REPEATS", "3")),
                   help="rounds of floor, kubernetes.core, no-op and status.yml per N; each figure is the "
                        "median (default 3)")
    p.add_argument("--no-peer", action="store_true", help="skip cilium-cli")
    p.add_argument("--keep-fleet", action="store_true", help="leave the bench fleet running")
    p.add_argument("--report", action="store_true", help="print the table and draw the plot of the last results.json")
    args = p.parse_args(argv)
    if args.report:
        return report(os.path.join(OUT, "results.json"))
    sizes = sorted(set(int(s) for s in args.sizes.replace(",", " ").split()))
    if not sizes or sizes[0] < 2 or sizes[-1] > runner.MAX_CLUSTERS - 1:
        p.error("sizes must be between 2 and %d" % (runner.MAX_CLUSTERS - 1))
    if args.repeats < 1:
        p.error("--repeats must be at least 1")
    forks = args.forks
    os.makedirs(OUT, exist_ok=True)
    logdir = os.path.join(OUT, "logs")
    shutil.rmtree(logdir, ignore_errors=True)
    os.makedirs(logdir)
    total = sizes[-1] + 1
    log("sizes %s; fleet of %d clusters (one more than the largest N, to measure adding one) in %s, port base %s"
        % (" ".join(map(str, sizes)), total, runner.FLEET_DIR, runner.PORT_BASE))
    build.build_all()
    peer = {"error": "skipped (--no-peer)"} if args.no_peer else find_peer()
    if peer.get("error"):
        log("peer: %s" % peer["error"])
    collections = os.path.join(OUT, "collections")
    os.makedirs(os.path.join(collections, "ansible_collections", "meshops"), exist_ok=True)
    link = os.path.join(collections, "ansible_collections", "meshops", "cilium")
    if not os.path.islink(link):
        os.symlink(REPO, link)
    kubernetes_core(collections)
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections, ANSIBLE_FORKS=str(forks),
               ANSIBLE_CALLBACK_PLUGINS=os.path.join(REPO, "benchmarks", "callbacks"),
               ANSIBLE_CALLBACKS_ENABLED="bench_profile",
               PATH=os.path.join(REPO, ".venv", "bin") + os.pathsep + os.environ["PATH"])
    if runner.Fleet.load() is not None:
        runner.down()
    t0 = time.time()
    runner.up(total)
    fleet = runner.Fleet.load()
    clusters = fleet.state["clusters"]
    bins = fleet.state["binaries"]
    rss = fleet_rss_mib(fleet)
    ansible = Ansible(env, logdir)
    figs = []
    try:
        for size in sizes:
            figs.append(measure(size, clusters[:size], clusters[size], ansible, OUT, bins, peer, args.repeats))
            # what is measured so far survives an interrupted run
            with open(os.path.join(OUT, "results.partial.json"), "w") as f:
                json.dump({"sizes": sizes, "forks": forks, "figures": figs}, f, indent=1, sort_keys=True)
    finally:
        if not args.keep_fleet:
            runner.down()
    rows = verdicts(figs, forks)
    limits = machine_limits(rss, total)
    results = {"sizes": sizes, "forks": forks, "figures": figs, "targets": rows, "machine": limits,
               "wall_s": round(time.time() - t0, 1)}
    with open(os.path.join(OUT, "results.json"), "w") as f:
        json.dump(results, f, indent=1, sort_keys=True)
    print(table(figs, rows))
    print("\n" + limits["text"])
    png = plot(figs, os.path.join(OUT, "bench.png"))
    log("results: %s%s; logs: %s; %.0f s in all" % (
        os.path.join(OUT, "results.json"), (", plot: " + png) if png else "", logdir, time.time() - t0))
    return 0


def report(path):
    """The table, verdicts and plot of a results file (also of results.partial.json)."""
    if not os.path.exists(path) and os.path.exists(path.replace(".json", ".partial.json")):
        path = path.replace(".json", ".partial.json")
    with open(path) as f:
        results = json.load(f)
    figs = results["figures"]
    rows = verdicts(figs, results["forks"])
    print(table(figs, rows))
    if results.get("machine"):
        print("\n" + results["machine"]["text"])
    png = plot(figs, os.path.join(OUT, "bench.png"))
    log("from %s%s" % (path, (", plot: " + png) if png else ""))
    return 0


def fleet_rss_mib(fleet):
    total = 0
    for entry in fleet.state.get("processes", []):
        pid = entry.get("pid") if isinstance(entry, dict) else None
        if pid:
            try:
                with open("/proc/%d/statm" % pid) as f:
                    total += int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
            except (OSError, ValueError):
                pass
    return total / 1048576.0


def machine_limits(rss_mib, clusters):
    mem = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 1048576.0
    per = rss_mib / clusters if rss_mib else 0
    cpus = os.cpu_count()
    by_memory = int(mem * 0.8 / per) if per else None
    text = ("This machine: %d cores, %.0f MiB. The fleet's processes used %.0f MiB for %d clusters (%.0f MiB each, "
            "before Cilium's pods), so memory alone would hold about %s clusters; the fleet's addressing allows %d. "
            "CPU is the limit: with %d cores every Ansible fork, kube-apiserver and Cilium process shares them, "
            "so the largest N measured is %d." % (
                cpus, mem, rss_mib, clusters, per, by_memory if by_memory else "?", runner.MAX_CLUSTERS, cpus,
                clusters - 1))
    return {"cores": cpus, "memory_mib": round(mem), "fleet_rss_mib": round(rss_mib),
            "per_cluster_mib": round(per), "clusters_by_memory": by_memory, "text": text}


if __name__ == "__main__":
    sys.exit(main())
