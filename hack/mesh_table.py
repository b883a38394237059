"""Print the mesh status of the local fleet as a table (used by `make demo`).

Reads each cluster with the collection's own read-only code (the same as clustermesh_info and
clustermesh_status), from the collections tree build/collections.
"""
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "build", "collections"))

from ansible_collections.meshops.cilium.plugins.module_utils import cluster as cl  # noqa: E402
from ansible_collections.meshops.cilium.plugins.module_utils import info, status  # noqa: E402


def _why(peer):
    """Cilium's cause (kvstoremesh-dbg troubleshoot) when it gave one, else the status text."""
    causes = [c for cs in (peer.get("causes") or {}).values() for c in cs]
    return (causes[0] if causes else " ".join(peer["problems"].values()))[:90]


def _agents(agents, verified):
    """Real agents (cilium-dbg status of a running cilium-agent) with their verdict per peer,
    and how many answers were simulated (the fleet's stand-in on simulated nodes)."""
    if not verified and not agents.get("available"):
        return "not readable"
    simulated = agents.get("simulated") or {}
    real = (agents.get("available") or 0) - len(simulated)
    out = []
    if real:
        verdicts = []
        for name, peer in sorted((agents.get("peers") or {}).items()):
            bad = [p for p in (peer.get("not_ready") or []) + (peer.get("not_connected") or [])
                   if p not in simulated]
            verdicts.append("%s:%s" % (name, "ready" if not bad else "NOT ready on %d" % len(set(bad))))
        out.append("%d real (cilium-dbg) %s" % (real, " ".join(verdicts) or "-"))
    if simulated:
        out.append("%d simulated (fleet stand-in)" % len(simulated))
    return "; ".join(out) or "-"


def main(kubeconfig, count):
    rows = [("cluster", "id", "chart", "apiserver", "endpoint", "CA (sha256)", "peers configured",
             "expected peers (Secret)", "KVStoreMesh verdict per peer (Cilium's own)", "agent status")]
    for i in range(1, count + 1):
        c = cl.Cluster({"kubeconfig": kubeconfig, "context": "mesh-%d" % i})
        d = info.read_descriptor(c)
        s = status.read_status(c, agent_status="auto")
        ep = d.get("endpoint") or {}
        addr = ",".join(ep.get("ips") or []) or ep.get("address") or "-"
        fp = ((d.get("ca") or {}).get("sha256") or "-")[:17]
        verified = (s.get("verified") or {}).get("agents")
        kvsm = s.get("kvstoremesh") or {}
        if kvsm.get("skipped"):
            verdict = "off"
        elif not kvsm.get("available"):
            verdict = "not readable: " + "; ".join(sorted(set((kvsm.get("unavailable") or {}).values())))[:60]
        else:
            verdict = " ".join("%s:%s" % (name, "ready" if p["ok"] else "NOT ready (%s)" % _why(p))
                               for name, p in sorted((kvsm.get("peers") or {}).items())) or "-"
        if "kvstoremesh" in (s.get("simulated") or {}):
            verdict += " [simulated]"
        agents = _agents(s.get("agents") or {}, verified)
        rows.append((
            "mesh-%d" % i, str(d.get("cluster_id")), str((d.get("release") or {}).get("chart_version")),
            "ready" if (s.get("apiserver") or {}).get("ready") else "NOT ready",
            "%s:%s" % (addr, ep.get("port")), fp,
            ",".join(sorted(p["name"] for p in d.get("peers") or [])) or "-",
            ",".join(sorted(s.get("expected_peers") or [])) or "-",
            verdict, agents,
        ))
    widths = [max(len(r[k]) for r in rows) for k in range(len(rows[0]))]
    for n, r in enumerate(rows):
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)))
        if n == 0:
            print("  ".join("-" * w for w in widths))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
