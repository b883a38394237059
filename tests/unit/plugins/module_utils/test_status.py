# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""Status parsing and aggregation against hand-written JSON in the documented shape."""

import base64
import os

import pytest

from ansible_collections.meshops.cilium.plugins.module_utils import status

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                        'fixtures', 'status')


def fixture(name):
    with open(os.path.join(FIXTURES, name)) as f:
        return f.read()


def b64(text):
    return base64.b64encode(text.encode()).decode()


ETCD_CFG = ('endpoints:\n- https://%s.mesh.cilium.io:2379\ntrusted-ca-file: /var/lib/cilium/clustermesh/common-etcd-'
            'client-ca.crt\nkey-file: /var/lib/cilium/clustermesh/common-etcd-client.key\n')

SECRET = {'data': {'mesh-2': b64(ETCD_CFG % 'mesh-2'), 'mesh-3': b64(ETCD_CFG % 'mesh-3'),
                   'mesh-1': b64(ETCD_CFG % 'mesh-1'), 'common-etcd-client-ca.crt': b64('-----BEGIN CERT'),
                   'mesh-4': 'not base64!'}}

DEPLOY_READY = {'metadata': {'generation': 2}, 'spec': {'replicas': 1},
                'status': {'observedGeneration': 2, 'readyReplicas': 1, 'updatedReplicas': 1}}


def agent(name):
    return {'clusters': status.parse_agent_status(fixture(name))}


def test_parse_agent_status_connected():
    clusters = status.parse_agent_status(fixture('agent-connected.json'))
    assert sorted(clusters) == ['mesh-2', 'mesh-3']
    m2 = clusters['mesh-2']
    assert m2['connected'] and m2['ready'] and m2['num_nodes'] == 3 and m2['remote_cluster_id'] == 2
    assert m2['synced'] == {'nodes': True, 'endpoints': True, 'identities': True, 'services': True}


def test_parse_accepts_bytes_and_a_warning_prefix_and_no_clustermesh():
    raw = fixture('agent-connected.json').encode()
    assert sorted(status.parse_agent_status(raw)) == ['mesh-2', 'mesh-3']
    assert sorted(status.parse_agent_status(b'Defaulted container "cilium-agent"\n' + raw)) == ['mesh-2', 'mesh-3']
    assert status.parse_agent_status(fixture('agent-no-clustermesh.json')) == {}
    with pytest.raises(status.StatusParseError):
        status.parse_agent_status('exec: "cilium-dbg": executable file not found')
    with pytest.raises(status.StatusParseError):
        status.parse_agent_status('')


def test_parse_kvstoremesh_list_and_object_forms():
    clusters = status.parse_kvstoremesh_status(fixture('kvstoremesh-connected.json'))
    assert clusters['mesh-2']['ready'] and not clusters['mesh-3']['connected']
    assert sorted(status.parse_kvstoremesh_status({'clusters': [{'name': 'x'}]})) == ['x']
    assert sorted(status.parse_kvstoremesh_status(fixture('agent-connected.json'))) == ['mesh-2', 'mesh-3']


def test_expected_peers_from_the_secret_names_only():
    assert status.expected_peers(SECRET, 'mesh-1') == ['mesh-2', 'mesh-3']
    assert status.expected_peers(None) == []


def test_deployment_ready():
    assert status.deployment_ready(DEPLOY_READY)['ready']
    assert not status.deployment_ready(None)['exists']
    rolling = {'metadata': {'generation': 3}, 'spec': {'replicas': 1},
               'status': {'observedGeneration': 2, 'readyReplicas': 1, 'updatedReplicas': 1}}
    assert not status.deployment_ready(rolling)['ready']
    zero = {'metadata': {}, 'spec': {'replicas': 2}, 'status': {'readyReplicas': 1, 'updatedReplicas': 2}}
    assert not status.deployment_ready(zero)['ready']


def test_aggregate_all_connected():
    res = status.aggregate({'cilium-a': agent('agent-connected.json'), 'cilium-b': agent('agent-connected.json')},
                           ['mesh-2', 'mesh-3'])
    assert res['available'] == 2 and res['unavailable'] == {}
    assert res['peers']['mesh-2']['summary'] == '2/2 configured, 2/2 connected, 2/2 ready'
    assert all(p['ok'] for p in res['peers'].values())


def test_aggregate_partially_connected_names_agents():
    res = status.aggregate({'cilium-a': agent('agent-connected.json'), 'cilium-b': agent('agent-partial.json'),
                            'cilium-c': agent('agent-failures.json'), 'cilium-d': {'error': 'exec failed: 500'}},
                           ['mesh-2', 'mesh-3'])
    m2, m3 = res['peers']['mesh-2'], res['peers']['mesh-3']
    assert m2['summary'] == '3/3 configured, 2/3 connected, 1/3 ready'
    assert m2['not_connected'] == ['cilium-c'] and m2['not_ready'] == ['cilium-b', 'cilium-c']
    assert m2['failures'] == 7 and not m2['ok']
    assert 'not synced: endpoints, services' in m2['problems']['cilium-b']
    assert 'not connected' in m2['problems']['cilium-c'] and '7 failures' in m2['problems']['cilium-c']
    assert 'configuration required but not retrieved' in m2['problems']['cilium-c']
    assert m3['summary'] == '2/3 configured, 2/3 connected, 2/3 ready' and m3['not_configured'] == ['cilium-b']
    assert res['unavailable'] == {'cilium-d': 'exec failed: 500'} and res['total'] == 4


def test_build_status_ready_and_not_ready_reasons():
    ok = status.build_status('ctx-1', DEPLOY_READY, SECRET, agents={'cilium-a': agent('agent-connected.json')},
                             kvstoremesh={'cm-a': {'clusters': {
                                 'mesh-2': status.parse_remote_cluster({'name': 'mesh-2', 'connected': True,
                                                                        'ready': True}),
                                 'mesh-3': status.parse_remote_cluster({'name': 'mesh-3', 'connected': True,
                                                                        'ready': True})}}},
                             local_name='mesh-1')
    assert ok['ready'] and ok['not_ready'] == [] and ok['expected_peers'] == ['mesh-2', 'mesh-3']
    assert ok['verified'] == {'apiserver': True, 'agents': True, 'kvstoremesh': True}
    assert 'endpoints:' not in repr(ok)

    bad = status.build_status('ctx-1', {'metadata': {}, 'spec': {'replicas': 1}, 'status': {}}, SECRET,
                              agents={'cilium-a': agent('agent-failures.json'), 'cilium-b': {'error': 'timeout'}},
                              kvstoremesh={'cm-a': {'clusters': status.parse_kvstoremesh_status(
                                  fixture('kvstoremesh-connected.json'))}},
                              local_name='mesh-1')
    reasons = bad['not_ready']
    assert not bad['ready']
    text = '\n'.join(reasons)
    assert 'Deployment clustermesh-apiserver not Ready (0/1 ready' in text
    assert 'agent cilium-b: status unavailable: timeout' in text
    assert 'peer mesh-2 not ready on agent cilium-a: not connected' in text
    assert 'peer mesh-3 not ready on KVStoreMesh cm-a' in text
    assert all(r.startswith('ctx-1: ') for r in reasons)


def test_unverifiable_agents_in_auto_mode_do_not_block_but_do_in_require():
    args = ('ctx', DEPLOY_READY, SECRET)
    kw = dict(agents={'cilium-a': {'error': 'exec not supported'}}, local_name='mesh-1')
    auto = status.build_status(*args, **kw)
    assert auto['ready'] and auto['agents']['unverifiable'] and not auto['verified']['agents']
    assert auto['agents']['unavailable'] == {'cilium-a': 'exec not supported'}
    req = status.build_status(*args, mode='require', **kw)
    assert not req['ready'] and 'status unavailable: exec not supported' in req['not_ready'][0]


def test_unexpected_and_missing_peers():
    s = status.build_status('ctx', DEPLOY_READY, {'data': {'mesh-2': b64(ETCD_CFG % 'mesh-2')}},
                            agents={'cilium-a': agent('agent-connected.json'),
                                    'cilium-b': {'clusters': {}}}, local_name='mesh-1')
    text = '\n'.join(s['not_ready'])
    assert 'peer mesh-2 not configured on agent cilium-b' in text
    assert 'report peer mesh-3 that Secret cilium-clustermesh does not list' in text


def test_no_apiserver():
    s = status.build_status('ctx', None, None, local_name='mesh-1')
    assert not s['ready'] and 'not deployed' in s['not_ready'][0]


def test_a_status_marked_simulated_is_reported_as_such():
    out = ('{"meshops-simulated": "fleet stand-in", "cluster-mesh": {"clusters": '
           '[{"name": "b", "connected": true, "ready": true}]}}')
    real = '{"cluster-mesh": {"clusters": [{"name": "b", "connected": true, "ready": true}]}}'
    answers = {'p1': out, 'p2': real}

    def exec_fn(pod, namespace, container, command):
        return 0, answers[pod], ''
    results = dict((p, status.read_pod_status(exec_fn, p, 'kube-system', 'cilium-agent', [['x']],
                                              status.parse_agent_status)) for p in answers)
    assert results['p1']['simulated'] == 'fleet stand-in' and 'simulated' not in results['p2']
    st = status.build_status('c', {'spec': {'replicas': 1}, 'status': {'readyReplicas': 1, 'updatedReplicas': 1}},
                             True, agents=results, expected=['b'])
    assert st['simulated'] == {'agents': ['p1']}
    assert st['agents']['simulated'] == {'p1': 'fleet stand-in'}
    assert status.simulated_mark(real) is None and status.simulated_mark('not json') is None


def test_troubleshoot_output_of_a_healthy_peer_has_no_failed_check():
    # captured from the fleet's real Cilium 1.20.2: kvstoremesh-dbg troubleshoot --timeout 5s mesh-3
    assert status.parse_troubleshoot(fixture('kvstoremesh-troubleshoot-ok.txt')) == {'mesh-3': []}


def test_troubleshoot_failed_checks_per_peer():
    found = status.parse_troubleshoot(fixture('kvstoremesh-troubleshoot-failures.txt'))
    assert sorted(found) == ['mesh-2', 'mesh-3']
    assert any('connection refused' in t for t in found['mesh-3']), found
    assert any('x509' in t or 'certificate' in t for t in found['mesh-2']), found
    assert all(not t.startswith(status.TROUBLESHOOT_FAILURE) for ts in found.values() for t in ts)
    assert status.parse_troubleshoot('') == {} and status.parse_troubleshoot(None) == {}


def _kvsm(ready_3):
    return {'clusters': {
        'mesh-2': status.parse_remote_cluster({'name': 'mesh-2', 'connected': True, 'ready': True}),
        'mesh-3': status.parse_remote_cluster({'name': 'mesh-3', 'connected': ready_3, 'ready': ready_3,
                                               'status': 'Waiting for initial connection to be established'}),
    }}


def test_diagnose_asks_cilium_about_not_ready_peers_only_and_reports_the_cause():
    calls = []
    text = fixture('kvstoremesh-troubleshoot-failures.txt')

    def exec_fn(pod, namespace, container, command):
        calls.append((pod, container, command))
        return 0, text, ''
    results = {'p1': _kvsm(False), 'p2': _kvsm(True), 'p3': {'error': 'pod is Pending'}}
    status.diagnose(exec_fn, 'kube-system', 'kvstoremesh', results, parallel=4)
    # only p1 has a peer that is not ready; only that peer is troubleshot
    assert [(c[0], c[1], c[2][-1]) for c in calls] == [('p1', 'kvstoremesh', 'mesh-3')]
    assert calls[0][2][:3] == ['clustermesh-apiserver', 'kvstoremesh-dbg', 'troubleshoot']
    cause = results['p1']['clusters']['mesh-3']['cause']
    assert any('connection refused' in t for t in cause)
    assert 'cause' not in results['p1']['clusters']['mesh-2']
    st = status.build_status('mesh-1', DEPLOY_READY, True, kvstoremesh=results, kvstoremesh_enabled=True,
                             expected=['mesh-2', 'mesh-3'])
    peer = st['kvstoremesh']['peers']['mesh-3']
    assert peer['causes'] == {'p1': cause}
    assert 'connection refused' in peer['problems']['p1']
    assert any('connection refused' in r and 'mesh-3' in r for r in st['not_ready'])


def test_diagnose_never_fails_the_status():
    def broken(pod, namespace, container, command):
        raise status.ExecError('exec refused')
    results = {'p1': _kvsm(False)}
    status.diagnose(broken, 'kube-system', 'kvstoremesh', results, parallel=1)
    assert 'cause' not in results['p1']['clusters']['mesh-3']

    # the first command (absolute path) is not there: an exec that ends without output or exit code
    for first in ((127, '', 'not found'), (None, '', '')):
        results = {'p1': _kvsm(False)}

        def fails_then_answers(pod, namespace, container, command, first=first):
            if command[0].startswith('/'):
                return first
            return 0, fixture('kvstoremesh-troubleshoot-failures.txt'), ''
        status.diagnose(fails_then_answers, 'kube-system', 'kvstoremesh', results, parallel=1)
        assert results['p1']['clusters']['mesh-3']['cause'], first


def test_troubleshoot_of_a_stopped_peer_captured_from_cilium():
    # captured from the fleet's real Cilium 1.20.2 while mesh-3's clustermesh-apiserver had no replica
    found = status.parse_troubleshoot(fixture('kvstoremesh-troubleshoot-refused.txt'))
    assert found == {'mesh-3': [
        'Cannot establish TCP connection to mesh-3.mesh.cilium.io:2379: dial tcp 127.0.3.200:2379: '
        'connect: connection refused',
        'Failed to establish connection: context deadline exceeded']}
