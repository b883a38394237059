# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""kwok's exec on the fleet: the shims answer at the names and the absolute paths Cilium's images use,
as cilium-cli's `clustermesh status` runs them (`/usr/bin/clustermesh-apiserver kvstoremesh-dbg status`
in container kvstoremesh, `cilium status` in container cilium-agent), without touching the host's /usr/bin."""
import json
import os
import subprocess
import sys
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, REPO)

from hack.fleet import agent_standin, enter, runner  # noqa: E402  pylint: disable=wrong-import-position


def test_the_shims_carry_the_images_names(tmp_path):
    d = agent_standin.write_shims(str(tmp_path), sys.executable)
    names = sorted(os.listdir(d))
    assert names == ["cilium", "cilium-dbg", "clustermesh-apiserver"]
    with open(os.path.join(d, "cilium")) as a, open(os.path.join(d, "cilium-dbg")) as b:
        assert a.read() == b.read()  # the image's `cilium` is cilium-dbg under its old name
    assert all(os.access(os.path.join(d, n), os.X_OK) for n in names)


@pytest.mark.skipif(os.geteuid() != 0, reason="a mount namespace needs root (the fleet runs as root)")
def test_kwok_alone_sees_the_shims_at_usr_bin(tmp_path):
    name = "meshops-test-shim-%d" % os.getpid()
    shim = tmp_path / name
    shim.write_text('#!/bin/sh\necho "shim $*"\n')
    shim.chmod(0o755)
    proc = subprocess.run(["/usr/bin/" + name, "kvstoremesh-dbg", "status"], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True, check=False,
                          preexec_fn=runner._shims_at_image_paths(str(tmp_path)))  # noqa: PLW1509
    assert (proc.returncode, proc.stdout) == (0, "shim kvstoremesh-dbg status\n"), proc.stderr
    # the host's /usr/bin is untouched, and the overlay keeps what /usr/bin holds
    assert not os.path.exists("/usr/bin/" + name)
    proc = subprocess.run(["/usr/bin/env", "true"], check=False,
                          preexec_fn=runner._shims_at_image_paths(str(tmp_path)))  # noqa: PLW1509
    assert proc.returncode == 0


def test_the_shims_start_python_without_site_and_enter_through_enter_py(tmp_path):
    d = agent_standin.write_shims(str(tmp_path), sys.executable)
    with open(os.path.join(d, "clustermesh-apiserver")) as f:
        text = f.read()
    assert " -S " in text and "enter.py" in text and "hack.fleet.pods" not in text


def _pods(tmp_path, entries):
    with open(str(tmp_path / "pods.json"), "w") as f:
        json.dump(entries, f)


def test_container_pid_names_the_one_real_pod_or_says_why(tmp_path):
    pod = {"cluster": "mesh-1", "name": "clustermesh-apiserver-a", "containers": {"kvstoremesh": {"pid": 41}}}
    _pods(tmp_path, {"mesh-1/a": pod})
    assert enter.container_pid(str(tmp_path), "mesh-1", "kvstoremesh") == (41, None)
    pid, why = enter.container_pid(str(tmp_path), "mesh-2", "kvstoremesh")
    assert pid is None and "not running in any real pod of mesh-2" in why
    pid, why = enter.container_pid(str(tmp_path), "mesh-1", "kvstoremesh", pod_name="other")
    assert pid is None and "pod other" in why
    _pods(tmp_path, {"mesh-1/a": pod, "mesh-1/b": dict(pod, name="clustermesh-apiserver-b")})
    pid, why = enter.container_pid(str(tmp_path), "mesh-1", "kvstoremesh")
    assert pid is None and "mesh-1/a, mesh-1/b" in why
    assert enter.container_pid(str(tmp_path), "mesh-1", "kvstoremesh", "clustermesh-apiserver-b") == (41, None)
    assert enter.nsenter_argv(41, ["a", "b"])[:3] == ["nsenter", "-t", "41"]


def test_the_simulated_agents_of_a_cluster_share_one_answer_for_a_moment(tmp_path, monkeypatch):
    calls = []

    def compute():
        calls.append(1)
        return "answer %d" % len(calls)
    fleet_dir = str(tmp_path)
    assert agent_standin.shared_answer(fleet_dir, "mesh-1", compute) == "answer 1"
    assert agent_standin.shared_answer(fleet_dir, "mesh-1", compute) == "answer 1"
    # another cluster has its own
    assert agent_standin.shared_answer(fleet_dir, "mesh-2", compute) == "answer 2"
    # once older than SHARE_S, it is read again
    now = time.time()
    monkeypatch.setattr(agent_standin.time, "time", lambda: now + agent_standin.SHARE_S + 0.1)
    assert agent_standin.shared_answer(fleet_dir, "mesh-1", compute) == "answer 3"


def test_an_error_of_the_stand_in_is_not_shared(tmp_path):
    def broken():
        raise OSError("no API server")
    with pytest.raises(OSError):
        agent_standin.shared_answer(str(tmp_path), "mesh-1", broken)
    assert agent_standin.shared_answer(str(tmp_path), "mesh-1", lambda: "fine") == "fine"


def test_the_stand_in_resolves_peers_as_the_static_dialer_does():
    """Chart 1.20 renders each peer's IPs into its configuration (cilium-host-aliases) and, with
    clustermesh.disableKubernetesHostAliases, no hostAliases in the DaemonSet: the stand-in (KVStoreMesh
    off) resolves a peer from there, as Cilium's static dialer does; other keys and entries are ignored."""
    import base64

    def b64(text):
        return base64.b64encode(text.encode()).decode()
    secret = {"data": {
        "mesh-2": b64("endpoints:\n- https://mesh-2.mesh.cilium.io:2379\ntrusted-ca-file: /x/ca.crt\n"
                      "cilium-host-aliases:\n- hostname: mesh-2.mesh.cilium.io\n  ips:\n    - 127.5.2.200\n"
                      "    - fd00:1::2\n"),
        "mesh-3": b64("endpoints:\n- https://mesh-3.example:2379\nkey-file: /x/k\n"),
        "mesh-4": b64("endpoints:\n- https://mesh-4.mesh.cilium.io:2379\ncilium-host-aliases:\n"
                      "- hostname: 'mesh-4.mesh.cilium.io'\n  ips: ['127.5.4.200']\ncert-file: /x/c\n"),
    }}
    aliases = agent_standin.config_host_aliases(secret)
    assert aliases["mesh-2.mesh.cilium.io"] == ["127.5.2.200", "fd00:1::2"]
    assert "mesh-3.example" not in aliases
    # a flow sequence is not read (the chart renders a block list); the name is known, without IPs
    assert aliases["mesh-4.mesh.cilium.io"] == []
    assert agent_standin.config_host_aliases(None) == {}
