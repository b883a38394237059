# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""Fixtures built on k8s_fakes."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import socket

import pytest

from k8s_fakes import FakeAPIServer


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
