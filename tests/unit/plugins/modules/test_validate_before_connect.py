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
    clustermesh_policy,
    clustermesh_service,
    clustermesh_service_info,
    clustermesh_status,
    clustermesh_traffic_check,
    ipsec_keys,
    ipsec_keys_info,
)

SERVICE = {'name': 'echo', 'namespace': 'demo', 'selector': {'app': 'echo'}, 'members': ['mesh-1', 'mesh-2'],
           'ports': [{'name': 'http', 'port': 80}]}
POLICY = {'kind': 'CiliumNetworkPolicy', 'metadata': {'name': 'from-mesh-2', 'namespace': 'demo'},
          'spec': {'endpointSelector': {}, 'ingress': [
              {'fromEndpoints': [{'matchLabels': {'io.cilium.k8s.policy.cluster': 'mesh-7'}}]}]}}

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
    (clustermesh_service, dict(SERVICE, affinity='Local'), "field affinity must be one of local, remote, none, got 'Local'"),
    (clustermesh_service, dict(SERVICE, ports=[{'port': 0}]), 'field ports[0].port'),
    (clustermesh_service, dict(SERVICE, cluster_name='mesh-9'), 'field cluster_name: mesh-9 is not in the mesh'),
    (clustermesh_policy, {'definition': POLICY, 'members': ['mesh-1', 'mesh-2']}, 'selects cluster mesh-7, which is not'),
    (clustermesh_policy, {'definition': dict(POLICY, kind='NetworkPolicy'), 'members': ['mesh-1']}, 'field kind'),
    (clustermesh_status, {'parallel': 0}, 'parallel must be at least 1'),
    (clustermesh_service_info, {'services': ['echo']}, "field services: each entry must be namespace/name, got 'echo'"),
    (clustermesh_service_info, {'peers': {'mesh-2': 'all synced'}}, 'field peers.mesh-2 must be the result of this'),
    (clustermesh_service_info, {'peers': {'mesh-2': {'exported': {'demo/echo': {'ports': []}}}}},
     'field peers.mesh-2 must be the result of this check on mesh-2'),
    (clustermesh_traffic_check, {'state': 'tested'}, 'clusters is required with state=tested'),
    (clustermesh_traffic_check, {'state': 'tested', 'clusters': ['mesh-1'], 'request_timeout': 0},
     'request_timeout and wait_timeout must be at least 1'),
    # every cluster module: a context the kubeconfig does not have
    (ipsec_keys_info, {'context': 'no-such-context'}, 'no-such-context'),
    (clustermesh_status, {'context': 'no-such-context'}, 'no-such-context'),
    (clustermesh_service, dict(SERVICE, context='no-such-context'), 'no-such-context'),
    (clustermesh_service_info, {'context': 'no-such-context'}, 'no-such-context'),
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


def test_every_cluster_module_has_rows_in_the_table():
    # a module added later without a bad-input row fails here (clustermesh_preflight, which takes many
    # clusters and no connection of its own, has its table in test_clustermesh_preflight.py)
    import glob
    import os
    here = os.path.dirname(os.path.abspath(cilium_ca.__file__))
    cluster_modules = set()
    for path in glob.glob(os.path.join(here, '*.py')):
        with open(path) as f:
            if 'run_module(run' in f.read():
                cluster_modules.add(os.path.basename(path)[:-3])
    assert len(cluster_modules) >= 11
    assert cluster_modules == set(c[0].__name__.rsplit('.', 1)[-1] for c in CASES)
