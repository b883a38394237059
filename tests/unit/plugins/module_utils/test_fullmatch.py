# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""Validation matches whole strings: "$" would accept a trailing newline ("mesh-1\\n")."""

import pytest

from ansible_collections.meshops.cilium.plugins.module_utils import mesh, preflight, traffic, values
from ansible_collections.meshops.cilium.plugins.module_utils.info import release_secret_version
from ansible_collections.meshops.cilium.plugins.module_utils import ipsec
from ansible_collections.meshops.cilium.plugins.module_utils.ipsec import IPsecKeyError


@pytest.mark.parametrize('name', ['mesh-1\n', 'mesh-1\n\n', '\nmesh-1'])
def test_install_cluster_name(name):
    values.validate_install_params({'cluster_name': 'mesh-1', 'cluster_id': 1})
    with pytest.raises(ValueError, match='cluster_name'):
        values.validate_install_params({'cluster_name': name, 'cluster_id': 1})


def test_install_rotation_duration():
    values.validate_install_params({'ipsec_key_rotation_duration': '5m'})
    with pytest.raises(ValueError, match='ipsec_key_rotation_duration'):
        values.validate_install_params({'ipsec_key_rotation_duration': '5m\n'})


def test_one_cluster_name_rule():
    assert mesh.NAME_RE is values.CLUSTER_NAME_RE is preflight.CLUSTER_NAME_RE
    assert mesh.NAME_MAX == values.CLUSTER_NAME_MAX == 32


def test_peer_name():
    good = mesh.normalize_peer({'cluster_name': 'mesh-2', 'cluster_id': 2})
    bad = mesh.normalize_peer({'cluster_name': 'mesh-2\n', 'cluster_id': 2})
    assert mesh.peer_identity_problems('mesh-1', [good]) == []
    problems = mesh.peer_identity_problems('mesh-1', [bad])
    assert [p['field'] for p in problems] == ['name']


def test_preflight_name():
    def names(name):
        problems = []
        preflight.check_names([preflight.Member({'host': 'a', 'cluster_name': name, 'cluster_id': 1})], problems)
        return [p for p in problems if p['field'].endswith('cluster_name')]
    assert names('mesh-1') == []
    assert names('mesh-1\n')
    assert preflight.int_or_none('12\nx') is None and preflight.int_or_none(' 12\n') == 12  # inventory text is stripped
    assert preflight.version_tuple('1.18.0\n') == preflight.version_tuple('1.18.0')  # stripped on purpose


def test_traffic_names():
    assert traffic.validate('meshops-traffic', 'meshops-traffic', 'mesh-1') == []
    errors = traffic.validate('meshops-traffic\n', 'meshops-traffic', 'mesh-1\n', clusters=['mesh-1\n'])
    assert len(errors) == 3


def test_release_secret_name():
    def secret(name):
        return {'metadata': {'name': name}}
    assert release_secret_version(secret('sh.helm.release.v1.cilium.v7')) == 7
    assert release_secret_version(secret('sh.helm.release.v1.cilium.v7\n')) == -1


def test_ipsec_spi_and_hex_fields():
    # parse_key splits on whitespace; the field parsers themselves match whole strings too
    assert ipsec._parse_spi('3+') == 3
    with pytest.raises(IPsecKeyError):
        ipsec._parse_spi('3+\n')
    with pytest.raises(IPsecKeyError):
        ipsec._parse_hex('ab' * 20 + '\n', 'the key', (20,))
