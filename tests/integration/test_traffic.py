"""clustermesh_traffic_check on the fleet: objects in every cluster, the answer report, cleanup.

No pod really runs on the fleet and kwok serves no container log, so the client's answers cannot
be read: the check must say that no cluster answered, naming each, and why. What is real here:
the objects (Namespace, per-cluster Deployment, global Service), the client Job's lifecycle,
check mode, idempotence and the cleanup.
"""
import concurrent.futures

import pytest

HOSTS = ["mesh-1", "mesh-2", "mesh-3"]
NS = "meshops-traffic-check"
PART_OF = "app.kubernetes.io/part-of=meshops-traffic-check"


@pytest.fixture(scope="module")
def clusters(fleet):
    cs = [c for c in fleet.clusters if c.name in HOSTS]
    if len(cs) < 3:
        pytest.fail("needs 3 fleet clusters")
    yield cs
    for c in cs:  # leave nothing behind even when a test failed
        c.kubectl("delete", "namespace", NS, "--ignore-not-found", "--wait=false", check=False)


@pytest.fixture(scope="module")
def check(run_module):
    def run(cluster, check_mode=False, **args):
        return run_module("clustermesh_traffic_check", cluster, check=check_mode, context=cluster.name, **args)
    return run


def _on_all(clusters, fn):
    with concurrent.futures.ThreadPoolExecutor(len(clusters)) as pool:
        return dict(zip([c.name for c in clusters], pool.map(fn, clusters)))


def _writes(c, mark):
    """Writes since ``mark`` to the check's namespace or objects (other tests may write elsewhere)."""
    return [e for e in c.mutations_since(mark)
            if (e.get("objectRef") or {}).get("namespace") in (NS, "not-ours")
            or (e.get("objectRef") or {}).get("name") in (NS, "not-ours")]


def _leftovers(c):
    """Everything of the check still in the cluster (any namespace)."""
    out = c.kubectl("get", "namespaces,deployments,services,jobs,pods", "-A", "-l", PART_OF, "-o", "name").stdout
    ns = c.kubectl("get", "namespace", NS, "--ignore-not-found", "-o", "name").stdout
    return sorted(set(out.split() + ns.split()))


def test_objects_answers_and_cleanup(clusters, check):
    for c in clusters:
        assert _leftovers(c) == []
    # check mode: reports the three objects, writes nothing
    marks = dict((c.name, c.audit_mark()) for c in clusters)
    r = check(clusters[0], check_mode=True, state="present")
    assert r["_rc"] == 0 and r["changed"] is True
    assert [x["action"] for x in r["changes"]] == ["create"] * 3
    assert _writes(clusters[0], marks["mesh-1"]) == []

    # present everywhere: the same global Service in every cluster, one Deployment per cluster
    res = _on_all(clusters, lambda c: check(c, state="present"))
    for c in clusters:
        assert res[c.name]["_rc"] == 0 and res[c.name]["changed"] is True, res[c.name]
        svc = c.core().read_namespaced_service("meshops-echo", NS)
        assert svc.metadata.annotations["service.cilium.io/global"] == "true"
        assert svc.metadata.annotations["service.cilium.io/shared"] == "true"
        dep = c.apps().read_namespaced_deployment("meshops-echo-" + c.name, NS)
        assert dep.spec.template.spec.containers[0].args[0] == "netexec"
        assert dep.spec.selector.match_labels.items() <= svc.spec.selector.items() or \
            svc.spec.selector.items() <= dep.spec.template.metadata.labels.items()
    # idempotent: a second run changes nothing and writes nothing
    marks = dict((c.name, c.audit_mark()) for c in clusters)
    again = _on_all(clusters, lambda c: check(c, state="present"))
    for c in clusters:
        assert again[c.name]["changed"] is False, again[c.name]
        assert _writes(c, marks[c.name]) == []

    # tested: the client ran, but kwok serves no log -> every cluster is reported missing, by name
    mark = clusters[0].audit_mark()
    r = check(clusters[0], state="tested", clusters=HOSTS)
    assert r["_rc"] != 0
    assert r["missing"] == HOSTS and r["answered"] == [] and r["ok"] is False
    assert r["log_error"]
    assert r["msg"].startswith("mesh-1: no answer could be read, so none of mesh-1, mesh-2, mesh-3 answered")
    created = [(e["objectRef"].get("resource"), e["objectRef"].get("name"))
               for e in _writes(clusters[0], mark) if e["verb"] == "create"]
    assert ("jobs", "meshops-echo-client") in created
    # the client Job is removed after the check
    assert clusters[0].kubectl("-n", NS, "get", "jobs", "-o", "name").stdout.strip() == ""

    # with fail_on_missing=false the same report comes back as data
    r = check(clusters[1], state="tested", clusters=HOSTS, fail_on_missing=False)
    assert r["_rc"] == 0 and r["missing"] == HOSTS and "none of mesh-1, mesh-2, mesh-3 answered" in r["message"]

    # absent: everything goes, in every cluster; a second absent has nothing to do
    gone = _on_all(clusters, lambda c: check(c, state="absent"))
    for c in clusters:
        assert gone[c.name]["_rc"] == 0 and gone[c.name]["changed"] is True, gone[c.name]
        assert _leftovers(c) == []
    assert check(clusters[0], state="absent")["changed"] is False


def test_refuses_a_foreign_namespace_and_bad_input_before_writing(clusters, check):
    c = clusters[0]
    c.kubectl("create", "namespace", "not-ours")
    try:
        mark = c.audit_mark()
        r = check(c, state="absent", namespace="not-ours")
        assert r["_rc"] != 0 and "was not created by this check" in r["msg"]
        r = check(c, state="tested", clusters=["mesh-2"])
        assert r["_rc"] != 0 and "clusters must include this cluster (mesh-1)" in r["msg"]
        assert _writes(c, mark) == []
    finally:
        c.kubectl("delete", "namespace", "not-ours", "--wait=false")
