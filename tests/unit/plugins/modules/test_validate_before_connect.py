# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""Bad options fail with one line before any request reaches the cluster."""

import pytest

from module_runner import module_runner

from ansible_collections.meshops.cilium.plugins.modules import (
    cilium_ca,
    cilium_install,
    clustermesh_connect,
    clustermesh_enable,
    clustermesh_info,
    ipsec_keys,
)

CASES = [
    (cilium_install, {'cluster_name': 'mesh-1\n', 'cluster_id': 1}, 'cluster_name'),
    (cilium_install, {'cluster_name': 'mesh-1', 'cluster_id': 300}, 'cluster_id 300 is outside'),
    (cilium_install, {'ipsec_key_rotation_duration': '5m\n'}, 'ipsec_key_rotation_duration'),
    (cilium_install, {'chart_repo_url': 'https://u:pw-123456@charts.invalid'}, 'helm repo add'),
    (cilium_install, {'kube_proxy_replacement': 'strict'}, 'kube_proxy_replacement=strict: the modes strict'),
    (cilium_install, {'chart_version': '1.16.19'},
     'chart_version 1.16.19 is older than the supported Cilium charts (1.17 to 1.20); set chart_version'),
    (clustermesh_enable, {'node_port': 70000}, 'node_port must be a port number'),
    (clustermesh_enable, {'annotations': {'a': 1}}, 'annotations["a"] must be a string'),
    (clustermesh_info, {'endpoint': {'ips': ['10.0.0.1'], 'port': 70000}}, 'endpoint: endpoint needs a port between 1'),
    (cilium_ca, {'validity_days': 0}, 'validity_days must be a whole number of days from 1 to 36500 (100 years), got 0'),
    (cilium_ca, {'validity_days': -5}, 'validity_days must be a whole number of days from 1 to 36500 (100 years), got -5'),
    (cilium_ca, {'validity_days': 36501}, 'validity_days'),
    (ipsec_keys, {'key': '1 rfc4106(gcm(aes)) %s 128' % ('ab' * 20)}, 'not a usable IPsec key'),
    (ipsec_keys, {'state': 'rotated', 'from_spi': 16}, 'from_spi must be 1..15'),
    (ipsec_keys, {'state': 'rotated', 'from_fingerprint': 'abc'}, 'from_fingerprint needs from_spi'),
    (clustermesh_connect, {'peers': [{'cluster_name': 'mesh-2\n', 'cluster_id': 2}]}, 'not a valid cluster name'),
    (clustermesh_connect, {'peers': [{'cluster_name': 'mesh-2', 'cluster_id': 0}]}, 'cluster ID 0'),
]


@pytest.mark.parametrize('module,args,match', CASES, ids=['%s-%d' % (c[0].__name__.rsplit('.', 1)[-1], i)
                                                          for i, c in enumerate(CASES)])
def test_bad_option_fails_before_any_request(apiserver, monkeypatch, module, args, match):
    ok, res = module_runner(monkeypatch, module.main)(dict(args, kubeconfig=apiserver.kubeconfig('mesh-1')))
    assert not ok
    assert match in res['msg']
    assert '\n' not in res['msg'].replace('mesh-1\n', '').replace('mesh-2\n', '')  # one line, no traceback
    assert 'Traceback' not in res['msg'] and 'exception' not in res
    assert apiserver.requests == [] and apiserver.writes == []
