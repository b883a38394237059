# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""The test tooling's watchdogs: a stuck pod runtime is named with its threads' stacks, and the
integration runner interrupts pytest at its time budget so that pytest still prints its summary."""

import os
import subprocess
import sys
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, REPO)

from hack import integration  # noqa: E402  pylint: disable=wrong-import-position
from hack.fleet import runner  # noqa: E402  pylint: disable=wrong-import-position

# A stand-in for the pod runtime: registers the same SIGUSR1 stack dump, then waits in a loop.
STUCK = """
import faulthandler, signal, sys, time
faulthandler.register(signal.SIGUSR1, file=sys.stderr, all_threads=True)
print("waiting", flush=True)
def stuck_in_a_round():
    while True:
        time.sleep(0.1)
stuck_in_a_round()
"""

# A stand-in for pytest: on SIGINT (KeyboardInterrupt) it prints its summary and exits 2.
INTERRUPTIBLE = """
import sys, time
print("started", flush=True)
try:
    time.sleep(60)
except KeyboardInterrupt:
    print("short test summary: 1 failed", flush=True)
    sys.exit(2)
"""


def _wait_for_text(path, text, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        with open(path) as f:
            if text in f.read():
                return
        time.sleep(0.05)
    raise AssertionError("%r never appeared in %s" % (text, path))


@pytest.fixture
def stuck_runtime(tmp_path, monkeypatch):
    log = str(tmp_path / "pod-runtime.log")
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-c", STUCK], stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_for_text(log, "waiting")
        monkeypatch.setattr(runner, "FLEET_DIR", str(tmp_path))
        fleet = runner.Fleet({"clusters": [], "processes": [
            {"name": "pod-runtime", "pid": proc.pid, "argv": [sys.executable], "log": log}]})
        yield fleet, str(tmp_path / "pods.json")
    finally:
        proc.kill()
        proc.wait()


def _last_round(pods_json, seconds_ago):
    with open(pods_json, "w") as f:
        f.write("{}")
    then = time.time() - seconds_ago
    os.utime(pods_json, (then, then))


def test_a_pod_runtime_that_ends_its_rounds_is_not_reported(stuck_runtime):
    fleet, pods_json = stuck_runtime
    _last_round(pods_json, 1)
    assert fleet.stalled_pod_runtime() is None


def test_a_stuck_pod_runtime_is_reported_with_the_stack_it_is_stuck_in(stuck_runtime):
    fleet, pods_json = stuck_runtime
    _last_round(pods_json, 300)
    report = fleet.stalled_pod_runtime()
    assert report.startswith("the fleet's pod runtime (pid %d) has not finished a round for 30" % (
        fleet.process("pod-runtime")["pid"]))
    assert "stuck_in_a_round" in report  # the stack of the thread it is stuck in


def test_a_stopped_pod_runtime_is_not_called_stuck(stuck_runtime):
    fleet, pods_json = stuck_runtime
    _last_round(pods_json, 300)
    fleet.process("pod-runtime")["stopped"] = True
    assert fleet.stalled_pod_runtime() is None


def test_the_budget_interrupts_pytest_which_still_prints_its_summary(tmp_path):
    log = str(tmp_path / "out.log")
    with open(log, "w") as out:
        # as run_shard starts pytest: SIGINT at its default even when this test runs with it ignored
        proc = subprocess.Popen([sys.executable, "-c", INTERRUPTIBLE], stdout=out, stderr=subprocess.STDOUT,
                                preexec_fn=integration.interruptible)
    _wait_for_text(log, "started")
    started = time.time()
    integration.interrupt_at(proc, "a", deadline=time.time() + 1, grace=20)
    assert proc.wait() == 2
    assert time.time() - started < 15
    with open(log) as f:
        assert "short test summary: 1 failed" in f.read()
