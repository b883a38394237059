# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""Fixtures built on k8s_fakes, shared by the module_utils and the module tests."""

import os
import socket
import sys

import pytest

# k8s_fakes sits beside the module_utils tests; the module tests import it too.
FAKES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'module_utils')
if FAKES_DIR not in sys.path:
    sys.path.insert(0, FAKES_DIR)

from k8s_fakes import FakeAPIServer  # noqa: E402


@pytest.fixture
def apiserver(tmp_path):
    srv = FakeAPIServer(tmp_path)
    yield srv
    srv.stop()


@pytest.fixture
def closed_port():
    """A local TCP port with nothing listening."""
    s = socket.socket()
    s.bind(('127.0.0.1', 0))
    port = s.getsockname()[1]
    s.close()
    return port
