"""The fleet's real workloads: which pods run for real, what their containers run, and kwok's
matching selector (it must skip exactly the pods the runtime runs)."""
import json
import shutil
import subprocess

import pytest

from hack.fleet import pods, runner


def pod(images, node="mesh-1-node-1", init=(), ns="meshops-traffic-check"):
    return {"metadata": {"name": "p", "namespace": ns, "labels": {}},
            "spec": {"nodeName": node, "containers": [{"name": "c%d" % i, "image": im} for i, im in enumerate(images)],
                     "initContainers": [{"name": "i%d" % i, "image": im} for i, im in enumerate(init)]}}


@pytest.mark.parametrize("images, init, expected", [
    (["registry.k8s.io/e2e-test-images/agnhost:2.53"], (), True),
    (["registry.k8s.io/e2e-test-images/busybox:1.36.1-1"], (), True),
    (["agnhost"], (), True),
    (["example.com/agnhost@sha256:0123"], (), True),
    (["registry.k8s.io/e2e-test-images/agnhost:2.53", "nginx:1"], (), False),
    (["registry.k8s.io/e2e-test-images/agnhost:2.53"], ("quay.io/cilium/cilium:v1.20.2",), False),
    (["example.com/agnhost-like:1"], (), False),
    ([], (), False),
])
def test_workload_pods_are_those_whose_every_container_runs_a_fleet_image(images, init, expected):
    assert pods.is_workload(pod(images, init=init)) is expected


def test_a_workload_needs_the_image_built():
    assert not pods.is_workload(pod(["registry.k8s.io/e2e-test-images/agnhost:2.53"]), images={"busybox": None})


@pytest.mark.parametrize("spec, image, argv", [
    ({"args": ["netexec", "--http-port=8080"]}, pods.Image("agnhost", {}, {}, entrypoint=["/agnhost"]),
     ["/agnhost", "netexec", "--http-port=8080"]),
    ({}, pods.Image("busybox", {}, {}, cmd=["sh"]), ["sh"]),
    ({"command": ["sh", "-c", "echo hi"]}, pods.Image("busybox", {}, {}, cmd=["sh"]), ["sh", "-c", "echo hi"]),
    # command replaces the entrypoint and drops the image's CMD
    ({"command": ["/agnhost"], "args": ["pause"]}, pods.Image("x", {}, {}, entrypoint=["/e"], cmd=["c"]),
     ["/agnhost", "pause"]),
    ({"command": ["/bin/true"]}, pods.Image("x", {}, {}, entrypoint=["/e"], cmd=["c"]), ["/bin/true"]),
    ({"args": ["a"]}, pods.Image("x", {}, {}, entrypoint=["/e"], cmd=["c"]), ["/e", "a"]),
])
def test_container_argv_follows_the_runtime_rules(spec, image, argv):
    assert pods.container_argv(spec, image) == argv


def test_service_hosts_stand_in_for_cluster_dns():
    svcs = [{"metadata": {"name": "meshops-echo", "namespace": "t"}, "spec": {"clusterIP": "10.96.0.7"}},
            {"metadata": {"name": "headless", "namespace": "t"}, "spec": {"clusterIP": "None"}}]
    assert pods.service_hosts(svcs) == [("10.96.0.7", ["meshops-echo.t.svc", "meshops-echo.t.svc.cluster.local",
                                                       "meshops-echo.t"])]


@pytest.mark.skipif(shutil.which("jq") is None, reason="needs jq (kwok evaluates the same expression with gojq)")
@pytest.mark.parametrize("images, node, init, key", [
    (["registry.k8s.io/e2e-test-images/agnhost:2.53"], "mesh-1-node-1", (), "true@mesh-1-node-1"),
    (["registry.k8s.io/e2e-test-images/busybox:1.36.1-1"], "mesh-1-node-2", (), "true@mesh-1-node-2"),
    (["registry.k8s.io/e2e-test-images/agnhost:2.53", "nginx"], "mesh-1-node-1", (), "false@mesh-1-node-1"),
    (["agnhost"], "mesh-1-node-1", ("quay.io/cilium/cilium:v1",), "false@mesh-1-node-1"),
    (["agnhost"], None, (), "true@"),
])
def test_kwok_key_matches_the_runtime(images, node, init, key):
    p = pod(images, node=node, init=init)
    if node is None:
        del p["spec"]["nodeName"]
    out = subprocess.run(["jq", "-r", runner.workload_expr()], input=json.dumps(p), stdout=subprocess.PIPE,
                         universal_newlines=True, check=True).stdout.strip()
    assert out == key
    assert (out.startswith("true@")) == pods.is_workload(p)


def test_cri_log_lines_are_what_the_kubelet_log_reader_parses():
    import re
    line = pods.cri_log_line(b"meshops-answer meshops-echo-mesh-2-6d4cf56db6-x7k2p")
    assert re.fullmatch(rb"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z stdout F meshops-answer meshops-echo-mesh-2-6d4cf56db6-x7k2p\n",
                        line), line


class FakePod(object):
    def __init__(self, tmp_path):
        self.rt = type("Rt", (), {"fleet_dir": str(tmp_path), "images": {}})()
        self.cluster = {"name": "mesh-1"}
        self.name = "client-abc"
        self.dir = str(tmp_path / "pod")


def test_cri_log_holds_the_program_output_only(tmp_path):
    ctr = pods.Container(FakePod(tmp_path), {"name": "client", "image": "busybox"})
    (tmp_path / "logs").mkdir()
    with open(ctr.log, "wb") as f:
        f.write(b"output of an earlier container of this name\n")
    ctr.sync_cri_log()  # never started: nothing
    assert not (tmp_path / "pod" / "logs" / "client.log").exists()
    with open(ctr.log, "ab") as f:
        ctr.cri_offset = f.tell()  # as start() records it
        f.write(b"---- 2026-12-02T11:07:15Z start client (restart 0): sh -c x\nline 1\nline 2 partial")
    ctr.proc = type("P", (), {"poll": lambda self: None})()  # running: complete lines only
    ctr.sync_cri_log()
    got = (tmp_path / "pod" / "logs" / "client.log").read_bytes().splitlines()
    assert [g.split(b" F ", 1)[1] for g in got] == [b"line 1"]
    ctr.proc = None  # ended: the rest too
    ctr.sync_cri_log()
    got = (tmp_path / "pod" / "logs" / "client.log").read_bytes().splitlines()
    assert [g.split(b" F ", 1)[1] for g in got] == [b"line 1", b"line 2 partial"]
