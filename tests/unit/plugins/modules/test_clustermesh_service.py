# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""clustermesh_service and clustermesh_policy against a local fake API server."""

import copy

import pytest

from ansible.module_utils.common.warnings import get_warning_messages

from module_runner import module_runner

from ansible_collections.meshops.cilium.plugins.modules import clustermesh_policy, clustermesh_service

SVC = '/api/v1/namespaces/demo/services/echo'
SVCS = '/api/v1/namespaces/demo/services'
CNPS = '/apis/cilium.io/v2/namespaces/demo/ciliumnetworkpolicies'
CNP = CNPS + '/echo-from-mesh-2'
CCNPS = '/apis/cilium.io/v2/ciliumclusterwidenetworkpolicies'
MEMBERS = ['mesh-1', 'mesh-2', 'mesh-3']


@pytest.fixture
def run_service(monkeypatch):
    return module_runner(monkeypatch, clustermesh_service.main)


@pytest.fixture
def run_policy(monkeypatch):
    return module_runner(monkeypatch, clustermesh_policy.main)


def _args(srv, **kw):
    args = {'kubeconfig': srv.kubeconfig('mesh-1'), 'context': 'mesh-1', 'name': 'echo', 'namespace': 'demo',
            'selector': {'app': 'echo'}, 'ports': [{'name': 'http', 'port': 80, 'targetPort': 8080}],
            'affinity': 'local', 'members': MEMBERS}
    args.update(kw)
    return args


def _store(srv, path, body, **extra):
    """What the API server would hold after a write: the body, plus server-side fields."""
    obj = copy.deepcopy(body)
    obj['metadata'].update(resourceVersion='11', uid='abc')
    if obj.get('kind') == 'Service':
        obj['spec'].setdefault('clusterIP', '10.96.4.4')
        obj['spec'].setdefault('sessionAffinity', 'None')
    obj.update(extra)
    srv.routes[path] = (200, obj)


def test_service_create_then_second_run_writes_nothing(apiserver, run_service):
    ok, res = run_service(_args(apiserver))
    assert ok, res
    assert (res['changed'], res['action'], res['service'], res['cluster']) == (True, 'created', 'demo/echo', 'mesh-1')
    assert len(apiserver.writes) == 1
    method, path, body = apiserver.writes[0]
    assert (method, path) == ('POST', SVCS)
    assert body['metadata']['labels'] == {'app.kubernetes.io/managed-by': 'meshops.cilium'}
    assert body['metadata']['annotations'] == {'service.cilium.io/global': 'true', 'service.cilium.io/affinity': 'local'}
    assert body['spec']['ports'] == [{'name': 'http', 'port': 80, 'protocol': 'TCP', 'targetPort': 8080}]
    _store(apiserver, SVC, body, status={'loadBalancer': {}})
    ok, res = run_service(_args(apiserver))
    assert ok and (res['changed'], res['action']) == (False, 'unchanged')
    assert len(apiserver.writes) == 1


def test_service_update_replaces_only_owned_fields_with_diff(apiserver, run_service):
    ok, dummy = run_service(_args(apiserver))
    _store(apiserver, SVC, apiserver.writes[0][2])
    apiserver.routes[SVC][1]['metadata']['annotations']['team'] = 'blue'
    ok, res = run_service(_args(apiserver, affinity='remote', shared=False, _ansible_diff=True))
    assert ok, res
    assert (res['changed'], res['action']) == (True, 'updated')
    method, path, body = apiserver.writes[1]
    assert (method, path) == ('PUT', SVC)
    assert body['metadata']['annotations'] == {'team': 'blue', 'service.cilium.io/global': 'true',
                                               'service.cilium.io/affinity': 'remote', 'service.cilium.io/shared': 'false'}
    assert body['metadata']['resourceVersion'] == '11' and body['spec']['clusterIP'] == '10.96.4.4'
    assert res['diff']['before']['metadata']['annotations'] == {'service.cilium.io/global': 'true',
                                                                'service.cilium.io/affinity': 'local'}
    assert res['diff']['after']['metadata']['annotations']['service.cilium.io/shared'] == 'false'


def test_service_check_mode_writes_nothing_and_shows_the_diff(apiserver, run_service):
    ok, res = run_service(_args(apiserver, _ansible_check_mode=True, _ansible_diff=True))
    assert ok, res
    assert apiserver.writes == []
    assert (res['changed'], res['action']) == (True, 'created')
    assert res['diff']['before'] is None
    assert res['diff']['after']['metadata']['annotations']['service.cilium.io/affinity'] == 'local'


def test_service_refuses_a_foreign_service_with_zero_writes(apiserver, run_service):
    apiserver.routes[SVC] = (200, {'apiVersion': 'v1', 'kind': 'Service',
                                   'metadata': {'name': 'echo', 'namespace': 'demo', 'labels': {'app': 'echo'}},
                                   'spec': {'type': 'NodePort', 'ports': [{'port': 9090, 'protocol': 'TCP',
                                                                           'targetPort': 9090, 'nodePort': 30001}]}})
    ok, res = run_service(_args(apiserver))
    assert not ok
    assert apiserver.writes == []
    assert res['msg'].startswith('mesh-1: cluster mesh-1, Service demo/echo: field metadata.labels: the Service exists '
                                 'and is not managed by this collection')
    assert 'type is NodePort, wanted ClusterIP' in res['msg'] and 'ports are 9090/TCP' in res['msg']
    assert 'force=true' in res['msg'] and 'changed' not in res
    ok, res = run_service(_args(apiserver, state='absent'))
    assert not ok and apiserver.writes == []
    ok, res = run_service(_args(apiserver, force=True))
    assert ok and res['action'] == 'updated' and [w[0] for w in apiserver.writes] == ['PUT']


@pytest.mark.parametrize('args, field', [
    ({'affinity': 'Local'}, 'field affinity'),
    ({'shared': 'yes'}, 'field shared'),
    ({'ports': [{'port': 70000}]}, 'field ports[0].port'),
    ({'cluster_name': 'mesh-9'}, 'field cluster_name'),
])
def test_service_bad_input_fails_before_reading(apiserver, run_service, args, field):
    ok, res = run_service(_args(apiserver, **args))
    assert not ok and field in res['msg'] and 'Service demo/echo' in res['msg']
    assert 'cluster %s' % args.get('cluster_name', 'mesh-1') in res['msg']
    assert apiserver.requests == [] and apiserver.writes == []


def test_service_absent(apiserver, run_service):
    ok, res = run_service(_args(apiserver, state='absent', ports=None))
    assert ok and (res['changed'], res['action']) == (False, 'absent') and apiserver.writes == []
    ok, dummy = run_service(_args(apiserver))
    _store(apiserver, SVC, apiserver.writes[0][2])
    ok, res = run_service(_args(apiserver, state='absent', _ansible_check_mode=True))
    assert ok and res['action'] == 'deleted' and len(apiserver.writes) == 1
    ok, res = run_service(_args(apiserver, state='absent'))
    assert ok and (res['changed'], res['action']) == (True, 'deleted')
    assert apiserver.writes[1][:2] == ('DELETE', SVC)


# -- clustermesh_policy ------------------------------------------------------
def _policy(cluster='mesh-2', kind='CiliumNetworkPolicy'):
    meta = {'name': 'echo-from-mesh-2'}
    if kind == 'CiliumNetworkPolicy':
        meta['namespace'] = 'demo'
    return {'kind': kind, 'metadata': meta,
            'spec': {'endpointSelector': {'matchLabels': {'app': 'echo'}},
                     'ingress': [{'fromEndpoints': [{'matchLabels': {'app': 'frontend',
                                                                     'k8s:io.cilium.k8s.policy.cluster': cluster}}]}]}}


def _pargs(srv, **kw):
    args = {'kubeconfig': srv.kubeconfig('mesh-1'), 'context': 'mesh-1', 'definition': _policy(), 'members': MEMBERS}
    args.update(kw)
    return args


def test_policy_create_second_run_check_and_diff(apiserver, run_policy):
    ok, res = run_policy(_pargs(apiserver, _ansible_check_mode=True, _ansible_diff=True))
    assert ok and apiserver.writes == [] and res['action'] == 'created' and res['diff']['before'] is None
    ok, res = run_policy(_pargs(apiserver))
    assert ok, res
    assert (res['changed'], res['action'], res['selected_clusters'], res['unknown_clusters']) == (
        True, 'created', ['mesh-2'], [])
    method, path, body = apiserver.writes[0]
    assert (method, path) == ('POST', CNPS)
    assert body['apiVersion'] == 'cilium.io/v2'
    assert body['metadata']['labels'] == {'app.kubernetes.io/managed-by': 'meshops.cilium'}
    _store(apiserver, CNP, body)
    ok, res = run_policy(_pargs(apiserver))
    assert ok and (res['changed'], res['action']) == (False, 'unchanged') and len(apiserver.writes) == 1
    ok, res = run_policy(_pargs(apiserver, definition=_policy('mesh-3'), _ansible_diff=True))
    assert ok and res['action'] == 'updated' and apiserver.writes[1][:2] == ('PUT', CNP)
    assert res['diff']['after']['spec'] != res['diff']['before']['spec']


def test_policy_unknown_cluster_fails_before_any_request_or_warns(apiserver, run_policy):
    ok, res = run_policy(_pargs(apiserver, definition=_policy('mesh-7')))
    assert not ok and apiserver.requests == [] and apiserver.writes == []
    assert ('cluster mesh-1, CiliumNetworkPolicy demo/echo-from-mesh-2: field '
            'spec.ingress[0].fromEndpoints[0].matchLabels selects cluster mesh-7, which is not in the mesh') in res['msg']
    assert 'unknown_clusters=warn' in res['msg']
    ok, res = run_policy(_pargs(apiserver, definition=_policy('mesh-7'), unknown_clusters='warn'))
    assert ok and res['unknown_clusters'] == ['mesh-7'] and len(apiserver.writes) == 1
    assert any('selects cluster mesh-7' in w for w in get_warning_messages())


def test_policy_clusterwide_and_foreign_refusal(apiserver, run_policy):
    definition = _policy(kind='CiliumClusterwideNetworkPolicy')
    apiserver.routes[CCNPS + '/echo-from-mesh-2'] = (200, dict(copy.deepcopy(definition), apiVersion='cilium.io/v2'))
    ok, res = run_policy(_pargs(apiserver, definition=definition))
    assert not ok and apiserver.writes == []
    assert 'CiliumClusterwideNetworkPolicy echo-from-mesh-2: field metadata.labels' in res['msg']
    ok, res = run_policy(_pargs(apiserver, definition=definition, force=True))
    assert ok and res['action'] == 'updated' and apiserver.writes[0][:2] == ('PUT', CCNPS + '/echo-from-mesh-2')


def test_policy_absent(apiserver, run_policy):
    ok, res = run_policy(_pargs(apiserver, state='absent'))
    assert ok and res['action'] == 'absent' and apiserver.writes == []
    ok, dummy = run_policy(_pargs(apiserver))
    _store(apiserver, CNP, apiserver.writes[0][2])
    ok, res = run_policy(_pargs(apiserver, state='absent'))
    assert ok and (res['changed'], res['action']) == (True, 'deleted') and apiserver.writes[1][:2] == ('DELETE', CNP)


def test_policy_bad_kind(apiserver, run_policy):
    ok, res = run_policy(_pargs(apiserver, definition=dict(_policy(), kind='NetworkPolicy')))
    assert not ok and 'field kind must be one of' in res['msg'] and apiserver.requests == []
