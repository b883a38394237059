"""A fleet rollout on four clusters: playbooks/upgrade.yml in a canary and two batches (issue 17).

The four fleet clusters are uninstalled, then converged by site.yml on the previous minor (the 1.19
chart of the fleet). On that mesh an unsupported target (a chart below the supported range, which
would also downgrade every member, and a chart the controller does not have) is refused by the
preflight with rc 2 before any write: no Helm revision, no write in any audit log. Then upgrade.yml rolls the mesh to 1.20 with
``meshops_upgrade_batches: [1, 1, "100%"]`` (the canary mesh-1, then mesh-2, then mesh-3 and
mesh-4), its output read as it comes: at each gate the clusters of the batches so far, and only
they, run the target with one Helm revision more, every member's Secret cilium-clustermesh names
the three others, and the gate line names every member. A final re-run (the whole mesh in one batch)
is a no-op: changed=0 on every host, no Helm revision, no write, each host reported already at the target.
(test_realmesh.py: the skipped-minor refusal, a preview, a gate failure and the resume, on three.)
Each phase's seconds are printed. The mesh is left on 1.20; the files after this one uninstall first.
"""
import concurrent.futures
import json
import re
import subprocess
import time

import pytest

from conftest import NS, Playbook, marks, mesh_secret_peers, meshed, uninstall_cilium, write_inventory, writes

HOSTS = ["mesh-1", "mesh-2", "mesh-3", "mesh-4"]
BATCHES = [1, 1, "100%"]
# the batches BATCHES makes of HOSTS (inventory order), as the gate and the batch lines name them
EXPECTED_BATCHES = [["mesh-1"], ["mesh-2"], ["mesh-3", "mesh-4"]]
# below the supported charts (1.17 to 1.20), and a downgrade from 1.19
UNSUPPORTED = "1.16.15"


def _versions(fleet, minor):
    found = [v for v in fleet.chart_versions if v.startswith(minor + ".")]
    assert found, "the fleet has no %s.x chart (it has %s)" % (minor, fleet.chart_versions)
    return found[-1]


def _parallel(clusters, fn):
    with concurrent.futures.ThreadPoolExecutor(len(clusters)) as pool:
        return dict(zip([c.name for c in clusters], pool.map(fn, clusters)))


def _release(c):
    """(chart, revision) of release cilium, or None."""
    rel = json.loads(c.helm("list", "-n", NS, "-o", "json").stdout)
    return (rel[0]["chart"], int(rel[0]["revision"])) if rel else None


class Phases(object):
    def __init__(self):
        self.started = self.last = time.time()
        self.done = []

    def __call__(self, name):
        now = time.time()
        self.done.append("%s %.0fs" % (name, now - self.last))
        self.last = now
        print("rollout test: %s" % self.done[-1])


@pytest.fixture(scope="module")
def phases():
    p = Phases()
    yield p
    print("rollout test phases: %s; total %.0fs" % (", ".join(p.done), time.time() - p.started))


@pytest.fixture(scope="module")
def book(fleet, collections_path, tmp_path_factory):
    return Playbook(fleet, collections_path, tmp_path_factory.mktemp("rollout-runs"))


@pytest.fixture(scope="module")
def inv(tmp_path_factory):
    return write_inventory(tmp_path_factory.mktemp("rollout"), HOSTS, name="inv")


@pytest.fixture(scope="module")
def mesh(fleet, book, inv, phases):
    """The four clusters converged by site.yml on the previous minor: {name: cluster}."""
    names = [c.name for c in fleet.clusters]
    if [h for h in HOSTS if h not in names]:
        pytest.fail("needs the 4 fleet clusters %s, the fleet has %s (MESHOPS_FLEET_CLUSTERS=4)"
                    % (", ".join(HOSTS), ", ".join(names)))
    cs = [c for c in fleet.clusters if c.name in HOSTS]
    uninstall_cilium(cs)
    phases("uninstall")
    old = _versions(fleet, "1.19")
    out = book.run(inv, "site.yml", "-e", "cilium_chart_version=%s" % old)
    assert all(r["failed"] == 0 for r in Playbook.recap(out).values()), out[-3000:]
    assert meshed(cs), "site.yml left no symmetric mesh of %s" % HOSTS
    rel = _parallel(cs, _release)
    assert all(r and r[0] == "cilium-%s" % old for r in rel.values()), rel
    phases("converge on %s" % old)
    return dict((c.name, c) for c in cs)


def test_an_unsupported_target_is_refused_before_any_write(mesh, book, inv, phases):
    cs = list(mesh.values())
    before = _parallel(cs, _release)
    mark = marks(cs)
    out = book.execute(inv, "upgrade.yml", "-e", "cilium_chart_version=%s" % UNSUPPORTED,
                       "-e", json.dumps({"meshops_upgrade_batches": BATCHES}))
    assert out.returncode == 2, out.stdout[-5000:]
    text = out.stdout
    assert "nothing was changed" in text, text[-5000:]
    for h in HOSTS:
        # the preflight table: rows per member naming the cluster, the field, the target, the range and the fix
        row = r"%s\s*\| ERROR\s*\| cilium_chart_version \| " % h
        assert re.search(row + re.escape("chart %s is older than the supported Cilium charts (1.17 to 1.20) | fix: set "
                                         "cilium_chart_version for %s to a 1.17.x or newer chart" % (UNSUPPORTED, h)),
                         text), text[-5000:]
        assert re.search(row + re.escape("the inventory downgrades %s from %s to %s"
                                         % (h, before[h][0][len("cilium-"):], UNSUPPORTED)), text), text[-5000:]
        # and the fleet has no such chart: named before helm would fail on it
        assert re.search(r"%s\s*\| ERROR\s*\| cilium_chart_ref\s*\| the target chart \S*cilium-%s\.tgz \(cilium_chart_version %s\) "
                         r"does not exist on the controller" % (h, re.escape(UNSUPPORTED), re.escape(UNSUPPORTED)),
                         text), text[-5000:]
    # stopped in the first batch's preflight: nothing upgraded, no gate
    assert "TASK [meshops.cilium.cilium" not in text and "Gate passed" not in text, text[-5000:]
    assert _parallel(cs, _release) == before
    assert writes(cs, mark) == dict((h, []) for h in HOSTS)
    phases("refusal of %s" % UNSUPPORTED)


def test_a_canary_and_two_batches_then_a_rerun_changes_nothing(fleet, mesh, book, inv, phases):
    cs = [mesh[h] for h in HOSTS]
    old, new = _versions(fleet, "1.19"), _versions(fleet, "1.20")
    before = _parallel(cs, _release)
    assert before == dict((h, ("cilium-%s" % old, before[h][1])) for h in HOSTS), before
    args = ["-e", "cilium_chart_version=%s" % new, "-e", json.dumps({"meshops_upgrade_batches": BATCHES})]
    everyone = ", ".join(HOSTS)

    # the rollout, read as it goes: at each gate, the releases and the mesh Secrets of every member
    proc = subprocess.Popen(Playbook.command(inv, "upgrade.yml", *args), env=book.env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, universal_newlines=True)
    lines, at_gates = [], []
    for line in proc.stdout:
        lines.append(line)
        if "Gate passed after batch" in line:
            at_gates.append((line, _parallel(cs, lambda c: (_release(c), mesh_secret_peers(c)))))
    rc = proc.wait(timeout=60)
    out = "".join(lines)
    assert rc == 0, out[-8000:]
    recap = Playbook.recap(out)
    assert sorted(recap) == HOSTS and all(r["failed"] == 0 for r in recap.values()), out[-3000:]
    # the batches in order: each announced, then gated over every member
    announced = [ln.split("Batch ", 1)[1].split(" (", 1)[0] for ln in lines if '"msg": "Batch ' in ln]
    assert announced == [", ".join(b) for b in EXPECTED_BATCHES], announced
    assert len(at_gates) == len(EXPECTED_BATCHES), out[-5000:]
    upgraded = []
    for (line, seen), batch in zip(at_gates, EXPECTED_BATCHES):
        assert "Gate passed after batch %s: every member (%s) ready" % (", ".join(batch), everyone) in line, line
        upgraded += batch
        # the batches so far run the target with exactly one more revision; the others are untouched
        expected = dict((h, ("cilium-%s" % new, before[h][1] + 1) if h in upgraded else before[h]) for h in HOSTS)
        assert dict((h, s[0]) for h, s in seen.items()) == expected, (batch, seen)
        # and the mesh is symmetric: every member's cilium-clustermesh names the three others
        assert dict((h, s[1]) for h, s in seen.items()) == dict((h, set(HOSTS) - {h}) for h in HOSTS), (batch, seen)
    assert "release already at chart" not in out, out[-5000:]
    assert _parallel(cs, _release) == dict((h, ("cilium-%s" % new, before[h][1] + 1)) for h in HOSTS)
    assert meshed(cs)
    phases("rollout to %s in batches %s" % (new, BATCHES))

    # upgrade.yml again, the whole mesh in one batch (each batch costs a preflight and a gate of every
    # member; the resume batch by batch is test_realmesh.py's): a no-op
    after = _parallel(cs, _release)
    mark = marks(cs)
    out = book.run(inv, "upgrade.yml", "-e", "cilium_chart_version=%s" % new,
                   "-e", json.dumps({"meshops_upgrade_batches": ["100%"]}))
    recap = Playbook.recap(out)
    assert sorted(recap) == HOSTS, out[-3000:]
    assert dict((h, recap[h]["changed"]) for h in HOSTS) == dict((h, 0) for h in HOSTS), out[-3000:]
    for h in HOSTS:
        assert "%s: release already at chart %s" % (h, new) in out, out[-5000:]
    assert out.count("Gate passed after batch") == 1, out[-5000:]
    assert "Gate passed after batch %s: every member (%s) ready" % (everyone, everyone) in out, out[-5000:]
    assert _parallel(cs, _release) == after
    assert writes(cs, mark) == dict((h, []) for h in HOSTS)
    phases("no-op re-run")
