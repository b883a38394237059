# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""clustermesh_info end to end against a local fake API server (no cluster)."""

import base64
import gzip
import json

import pytest

from k8s_fakes import make_ca, pem_cert, status_body
from module_runner import module_runner, set_module_args

from ansible_collections.meshops.cilium.plugins.modules import clustermesh_info


@pytest.fixture
def run_module(monkeypatch):
    return module_runner(monkeypatch, clustermesh_info.main)


NS = '/api/v1/namespaces/kube-system'


def _items(kind, items):
    return (200, {'kind': kind, 'apiVersion': 'v1', 'metadata': {}, 'items': items})


def install_cilium(srv):
    ca_key, ca = make_ca('Cilium CA')
    values = {'cluster': {'name': 'mesh-1', 'id': 1},
              'clustermesh': {'useAPIServer': True, 'config': {'enabled': True, 'clusters': {
                  'mesh-2': {'ips': ['172.18.0.7'], 'port': 32380}}}},
              'tls': {'ca': {'key': 'VE9QU0VDUkVU'}}}
    rel = {'name': 'cilium', 'namespace': 'kube-system', 'version': 2, 'info': {'status': 'deployed'},
           'chart': {'metadata': {'name': 'cilium', 'version': '1.19.5', 'appVersion': '1.19.5'}},
           'config': values}
    blob = base64.b64encode(base64.b64encode(gzip.compress(json.dumps(rel).encode()))).decode()
    srv.routes[NS + '/configmaps/cilium-config'] = (200, {
        'kind': 'ConfigMap', 'apiVersion': 'v1', 'metadata': {'name': 'cilium-config'},
        'data': {'cluster-name': 'mesh-1', 'cluster-id': '1', 'routing-mode': 'tunnel',
                 'tunnel-protocol': 'vxlan'}})
    srv.routes[NS + '/secrets'] = _items('SecretList', [{
        'metadata': {'name': 'sh.helm.release.v1.cilium.v2',
                     'labels': {'owner': 'helm', 'name': 'cilium', 'version': '2'}},
        'type': 'helm.sh/release.v1', 'data': {'release': blob}}])
    srv.routes[NS + '/secrets/cilium-ca'] = (200, {
        'kind': 'Secret', 'apiVersion': 'v1', 'metadata': {'name': 'cilium-ca'}, 'type': 'Opaque',
        'data': {'ca.crt': base64.b64encode(pem_cert(ca)).decode(), 'ca.key': 'Q0FLRVlTRUNSRVQ='}})
    srv.routes[NS + '/services/clustermesh-apiserver'] = (200, {
        'kind': 'Service', 'apiVersion': 'v1', 'metadata': {'name': 'clustermesh-apiserver'},
        'spec': {'type': 'NodePort', 'clusterIP': '10.96.1.1',
                 'ports': [{'port': 2379, 'nodePort': 32379, 'protocol': 'TCP'}]}})
    srv.routes['/api/v1/nodes'] = _items('NodeList', [
        {'metadata': {'name': 'n%d' % i}, 'spec': {'podCIDRs': ['10.1.%d.0/24' % i]},
         'status': {'addresses': [{'type': 'InternalIP', 'address': '172.18.0.%d' % (i + 2)}],
                    'conditions': [{'type': 'Ready', 'status': 'True' if i != 1 else 'Unknown'}]}}
        for i in range(3)])


def test_installed_cluster(apiserver, run_module):
    install_cilium(apiserver)
    ok, res = run_module({'kubeconfig': apiserver.kubeconfig('mesh-1'), 'context': 'mesh-1'})
    assert ok, res
    assert res['changed'] is False and res['cluster'] == 'mesh-1' and res['installed'] is True
    assert (res['cluster_name'], res['cluster_id'], res['max_connected_clusters']) == ('mesh-1', 1, 255)
    assert res['release']['chart_version'] == '1.19.5' and res['release']['status'] == 'deployed'
    assert res['kvstoremesh'] is True
    assert res['endpoint']['ips'] == ['172.18.0.2', '172.18.0.4'] and res['endpoint']['port'] == 32379
    assert res['peers'] == [{'name': 'mesh-2', 'ips': ['172.18.0.7'], 'address': None, 'port': 32380,
                             'enabled': True}]
    assert len(res['ca']['sha256'].split(':')) == 32
    dumped = json.dumps(res)
    assert 'Q0FLRVlTRUNSRVQ=' not in dumped and 'VE9QU0VDUkVU' not in dumped


def test_not_installed_is_not_an_error(apiserver, run_module):
    apiserver.routes['/api/v1/nodes'] = _items('NodeList', [])
    apiserver.routes[NS + '/secrets'] = _items('SecretList', [])
    ok, res = run_module({'kubeconfig': apiserver.kubeconfig('mesh-1')})
    assert ok, res
    assert res['installed'] is False and res['release'] is None and res['endpoint'] is None


def test_forbidden_fails_with_one_message(apiserver, run_module):
    apiserver.routes[NS + '/configmaps/cilium-config'] = (403, status_body(
        403, 'Forbidden', 'configmaps "cilium-config" is forbidden: User "ro" cannot get resource '
        '"configmaps" in API group "" in the namespace "kube-system"'))
    ok, res = run_module({'kubeconfig': apiserver.kubeconfig('mesh-1')})
    assert not ok
    assert res['msg'].startswith('mesh-1: permission denied (403)')
    assert 'get "configmaps"' in res['msg']


def test_bad_context_lists_available(apiserver, run_module):
    ok, res = run_module({'kubeconfig': apiserver.kubeconfig('mesh-1'), 'context': 'mesh-9'})
    assert not ok
    assert res['msg'] == 'mesh-9: context "mesh-9" not found in inline kubeconfig; available contexts: mesh-1'


def test_endpoint_override(apiserver, run_module):
    install_cilium(apiserver)
    ok, res = run_module({'kubeconfig': apiserver.kubeconfig('mesh-1'),
                          'endpoint': {'address': 'mesh-1.example.org', 'port': 443}})
    assert ok, res
    assert res['endpoint'] == {'source': 'override', 'service_type': None, 'ips': [],
                               'address': 'mesh-1.example.org', 'port': 443}


def test_inline_kubeconfig_token_hidden_in_real_output(apiserver, monkeypatch, capsys):
    """No exit_json patching: the JSON the module prints (with its invocation) hides the token."""
    install_cilium(apiserver)
    args = {'kubeconfig': apiserver.kubeconfig('mesh-1', token='tok-abc-123'), 'api_key': None}
    set_module_args(monkeypatch, args)
    with pytest.raises(SystemExit):
        clustermesh_info.main()
    out = capsys.readouterr().out
    res = json.loads(out)
    assert res['installed'] is True
    assert 'tok-abc-123' not in out
    if 'invocation' in res:  # ansible-core < 2.19 echoes the arguments
        users = res['invocation']['module_args']['kubeconfig']['users']
        assert users[0]['user']['token'] != 'tok-abc-123'
        # names stay readable
        assert res['invocation']['module_args']['kubeconfig']['current-context'] == 'mesh-1'


def test_inline_kubeconfig_credentials_become_no_log_values(apiserver, monkeypatch):
    from ansible_collections.meshops.cilium.plugins.module_utils.base import ClusterModule
    cfg = apiserver.kubeconfig('mesh-1', token='tok-xyz')
    cfg['users'][0]['user']['client-key-data'] = 'S0VZREFUQQ=='
    set_module_args(monkeypatch, {'kubeconfig': cfg})
    m = ClusterModule({})
    assert {'tok-xyz', 'S0VZREFUQQ=='} <= set(m.module.no_log_values)
    assert 'mesh-1' not in m.module.no_log_values


def test_read_status_returns_the_mesh_status_with_the_description(apiserver, run_module, monkeypatch):
    """read_status: one module run gives the descriptor and what clustermesh_status would (no wait,
    no metrics); without it, no status is read at all."""
    from test_clustermesh_status import fake_exec, fixture, setup_cluster

    install_cilium(apiserver)
    setup_cluster(apiserver)
    calls = []
    ok_json = (0, fixture('agent-connected.json'))
    fake_exec(monkeypatch, {'cilium-a': ok_json, 'cilium-b': ok_json}, calls)
    ok, res = run_module({'kubeconfig': apiserver.kubeconfig('mesh-1'), 'context': 'mesh-1',
                          'read_status': True, 'agent_status': 'require'})
    assert ok, res
    assert res['installed'] is True and res['cluster_name'] == 'mesh-1'
    st = res['status']
    assert st['ready'] is True and st['not_ready'] == [] and st['expected_peers'] == ['mesh-2', 'mesh-3']
    assert (st['namespace'], st['agent_status'], st['metrics']) == ('kube-system', 'require', None)
    assert st['agents']['peers']['mesh-2']['summary'] == '2/2 configured, 2/2 connected, 2/2 ready'
    assert sorted(c[0] for c in calls) == ['cilium-a', 'cilium-b']
    assert 'endpoints:' not in json.dumps(res)

    calls[:] = []
    ok, res = run_module({'kubeconfig': apiserver.kubeconfig('mesh-1'), 'context': 'mesh-1'})
    assert ok and 'status' not in res and calls == [], res


def test_a_status_that_cannot_be_read_leaves_the_description(apiserver, run_module, monkeypatch):
    from test_clustermesh_status import fake_exec

    install_cilium(apiserver)
    apiserver.routes['/apis/apps/v1/namespaces/kube-system/deployments/clustermesh-apiserver'] = (403, status_body(
        403, 'Forbidden', 'deployments.apps "clustermesh-apiserver" is forbidden: User "ro" cannot get resource '
        '"deployments" in API group "apps" in the namespace "kube-system"'))
    fake_exec(monkeypatch, {})
    ok, res = run_module({'kubeconfig': apiserver.kubeconfig('mesh-1'), 'context': 'mesh-1', 'read_status': True})
    assert ok, res
    assert res['installed'] is True and res['status'] is None
    assert any(w.startswith('ClusterMesh status not read with the description: ') and 'permission denied' in w
               for w in res['warnings_detail']), res['warnings_detail']


def test_members_are_described_in_one_run_each_with_its_own_connection(apiserver, run_module, monkeypatch):
    """members: one module process describes several clusters (with their status), each through its own
    kubeconfig and context; one that cannot be reached is a failed entry naming it, the others are described."""
    from test_clustermesh_status import fake_exec, fixture, setup_cluster

    install_cilium(apiserver)
    setup_cluster(apiserver)
    ok_json = (0, fixture('agent-connected.json'))
    fake_exec(monkeypatch, {'cilium-a': ok_json, 'cilium-b': ok_json})
    members = [{'name': 'mesh-1', 'kubeconfig': apiserver.kubeconfig('mesh-1', token='tok-one-never-shown')},
               {'name': 'inventory_host.2', 'context': 'ctx-two',
                'kubeconfig': apiserver.kubeconfig('ctx-two', token='tok-two-never-shown')},
               {'name': 'mesh-3', 'context': 'nope', 'kubeconfig': apiserver.kubeconfig('mesh-3')}]
    before = len(apiserver.requests)
    ok, res = run_module({'members': members, 'read_status': True, 'agent_status': 'require'})
    assert ok, res
    assert sorted(res['members']) == ['inventory_host.2', 'mesh-1', 'mesh-3'] and 'installed' not in res
    for name in ('mesh-1', 'inventory_host.2'):
        d = res['members'][name]
        assert d['installed'] is True and d['cluster_name'] == 'mesh-1' and d['api_server'].startswith('https://'), d
        assert d['status']['ready'] is True and d['status']['agent_status'] == 'require', d['status']
    assert res['members']['inventory_host.2']['connection']['context'] == 'ctx-two'
    failed = res['members']['mesh-3']
    assert failed['failed'] is True and failed['msg'].startswith('mesh-3: ') and '"nope"' in failed['msg'], failed
    tokens = [auth for _path, auth in apiserver.requests[before:]]
    assert 'Bearer tok-one-never-shown' in tokens and 'Bearer tok-two-never-shown' in tokens, set(tokens)
    assert 'never-shown' not in json.dumps(res) and 'endpoints:' not in json.dumps(res)
    # a member's own read_status: a member outside the run is described without its status (no exec)
    calls = []
    fake_exec(monkeypatch, {'cilium-a': ok_json, 'cilium-b': ok_json}, calls)
    ok, res = run_module({'members': [dict(members[0], read_status=False), members[1]], 'read_status': True})
    assert ok and 'status' not in res['members']['mesh-1'] and res['members']['inventory_host.2']['status'], res
    assert sorted(c[0] for c in calls) == ['cilium-a', 'cilium-b']  # one member's agents only


def test_members_refuse_an_endpoint_and_bad_names_before_any_request(apiserver, run_module):
    before = len(apiserver.requests)
    ok, res = run_module({'members': [{'name': 'mesh-1', 'kubeconfig': apiserver.kubeconfig('mesh-1')}],
                          'endpoint': {'address': 'cm.example.com', 'port': 2379}})
    assert not ok and res['msg'].startswith('endpoint: '), res
    ok, res = run_module({'members': [{'name': 'mesh-1', 'kubeconfig': apiserver.kubeconfig('mesh-1')},
                                      {'name': 'mesh-1', 'kubeconfig': apiserver.kubeconfig('mesh-1')}]})
    assert not ok and 'each entry needs a unique name' in res['msg'], res
    assert len(apiserver.requests) == before
