"""Shared by test_rbac.py and test_faults.py: inventories with per-host variables, playbook runs."""
import json
import os
import shutil
import sys

from conftest import REPO, Playbook, ansible_env, run_ansible, uninstall_cilium

NS = "kube-system"
ANSIBLE_PLAYBOOK = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")


def inventory(tmp_path, name, hosts, group_vars=None):
    """``hosts``: {host: {var: value}}; every host also gets cilium_cluster_id from its name."""
    inv = tmp_path / name
    (inv / "group_vars").mkdir(parents=True, exist_ok=True)
    shutil.copy(os.path.join(REPO, "inventories/local/group_vars/all.yml"), str(inv / "group_vars/all.yml"))
    body = {"mesh": {"hosts": {h: dict({"cilium_cluster_id": int(h.split("-")[-1])}, **(v or {}))
                               for h, v in hosts.items()}}}
    (inv / "hosts.yml").write_text(json.dumps(body))
    # the real traffic check of inventories/local runs only where a test asks for it
    (inv / "group_vars/mesh.yml").write_text(json.dumps(dict({"verify_traffic": False}, **(group_vars or {}))))
    return str(inv)


def command(fleet, collections_path, inv, playbook, *args):
    argv = [ANSIBLE_PLAYBOOK, "-i", inv, os.path.join(REPO, "playbooks", playbook)] + list(args)
    env = ansible_env(fleet, collections_path)
    env["PYTHONUNBUFFERED"] = "1"
    return argv, env


def run(fleet, collections_path, inv, playbook, *args, expect_rc=0):
    argv, env = command(fleet, collections_path, inv, playbook, *args)
    proc = run_ansible("ansible-playbook", argv[1:], env)
    if expect_rc is not None and proc.returncode != expect_rc:
        raise AssertionError("%s exited %d (expected %d):\n%s" % (playbook, proc.returncode, expect_rc,
                                                                  proc.stdout[-8000:]))
    return proc.stdout


recap = Playbook.recap


def listed(c):
    """Names of the peers cluster ``c``'s release lists (empty when none or no release)."""
    proc = c.helm("get", "values", "cilium", "-n", NS, "-o", "json", check=False)
    if proc.returncode != 0:
        return set()
    clusters = ((json.loads(proc.stdout or "{}") or {}).get("clustermesh") or {}).get("config", {}).get("clusters")
    if isinstance(clusters, dict):
        return set(clusters)
    return {e["name"] for e in clusters or []}


def asymmetric(clusters):
    """Pairs (a, b) where a lists b but b does not list a (only among ``clusters``)."""
    names = {c.name for c in clusters}
    lists = {c.name: listed(c) & names for c in clusters}
    return sorted((a, b) for a in lists for b in lists[a] if a not in lists[b])


reset = uninstall_cilium
