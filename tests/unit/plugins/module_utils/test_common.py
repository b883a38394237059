# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""The shared helpers, where the copies they replace behaved differently."""

import pytest

from ansible_collections.meshops.cilium.plugins.module_utils import common, helm, info, mesh, preflight, status, values
from ansible_collections.meshops.cilium.plugins.module_utils.common import (
    counted,
    deployment_ready,
    int_or_none,
    version_tuple,
)


def test_one_home():
    for mod in (mesh, preflight, values):
        assert getattr(mod, 'MAX_CONNECTED', common.MAX_CONNECTED) is common.MAX_CONNECTED
    assert values.version_tuple is preflight.version_tuple is info.version_tuple is version_tuple
    assert status.deployment_ready is helm.deployment_ready is deployment_ready
    assert values.CLUSTER_NAME_RE is common.CLUSTER_NAME_RE


@pytest.mark.parametrize('text,expected', [
    ('1.19.2', (1, 19, 2)), ('v1.19', (1, 19, 0)), ('1.20.0-rc.1', (1, 20, 0)), (' 1.18.0\n', (1, 18, 0)),
    # values.py and info.py read any digits: '1' was (1, 0, 0) and 'abc1.2' (1, 2, 0); not versions
    ('1', None), ('abc1.2', None), ('latest', None), ('', None), (None, None), ('1.2.3.4', None)])
def test_version_tuple_only_reads_versions(text, expected):
    assert version_tuple(text) == expected


@pytest.mark.parametrize('value,expected', [
    (7, 7), ('7', 7), (' 12\n', 12), ('-1', -1), (None, None), ('x', None), ('', None),
    # info.py's copy read True as None by accident and '1_000' / '+5' as numbers (int() accepts them)
    (True, None), (False, None), ('1_000', None), ('+5', None), ('3.0', None), (3.0, None)])
def test_int_or_none(value, expected):
    assert int_or_none(value) == expected


def test_a_deployment_scaled_to_zero_is_not_ready():
    # helm.py's copy counted 0 of 0 replicas as ready; status.py's did not (the status one is right:
    # a Deployment with no replica serves nothing)
    zero = {'metadata': {'generation': 1}, 'spec': {'replicas': 0}, 'status': {'observedGeneration': 1}}
    assert deployment_ready(zero)['ready'] is False
    assert helm.deployment_rollout(zero) == (False, 'scaled to 0 replicas')


def test_deployment_rollout_details():
    assert helm.deployment_rollout(None) == (False, 'does not exist')
    ready = {'metadata': {'generation': 2}, 'spec': {'replicas': 2},
             'status': {'observedGeneration': 2, 'readyReplicas': 2, 'updatedReplicas': 2}}
    assert helm.deployment_rollout(ready) == (True, '2/2 ready')
    rolling = {'metadata': {'generation': 3}, 'spec': {'replicas': 2},
               'status': {'observedGeneration': 2, 'readyReplicas': 2, 'updatedReplicas': 2}}
    assert helm.deployment_rollout(rolling) == (False, 'rollout not observed yet')


@pytest.mark.parametrize('value,expected', [('TRUE', True), ('off', False), ('', False), ('strict', 'strict'),
                                            (None, None)])
def test_kpr_read_without_refusing(value, expected):
    # preflight.kpr_value, now normalize_kpr(refuse=False): what is deployed or declared, as read
    assert values.normalize_kpr(value, refuse=False) == expected


@pytest.mark.parametrize('value', ['strict', '', 'maybe'])
def test_kpr_option_refused(value):
    with pytest.raises(ValueError, match='kube_proxy_replacement'):
        values.normalize_kpr(value)


def test_endpoint_names_say_what_they_do():
    # info validates the endpoint override, mesh normalizes a peer's endpoint
    with pytest.raises(ValueError, match='endpoint needs ips or address'):
        info.validate_endpoint_override({'port': 1})
    assert mesh.normalize_endpoint({'ips': [' 10.0.0.2', '10.0.0.1'], 'port': '2379'}) == {
        'ips': ['10.0.0.1', '10.0.0.2'], 'address': None, 'port': 2379}
    assert not hasattr(info, 'normalize_endpoint')


def test_counted():
    assert [counted(n, 'failure') for n in (0, 1, 2)] == ['0 failures', '1 failure', '2 failures']
