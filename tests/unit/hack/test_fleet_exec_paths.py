# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""kwok's exec on the fleet: the shims answer at the names and the absolute paths Cilium's images use,
as cilium-cli's `clustermesh status` runs them (`/usr/bin/clustermesh-apiserver kvstoremesh-dbg status`
in container kvstoremesh, `cilium status` in container cilium-agent), without touching the host's /usr/bin."""
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
sys.path.insert(0, REPO)

from hack.fleet import agent_standin, runner  # noqa: E402  pylint: disable=wrong-import-position


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
