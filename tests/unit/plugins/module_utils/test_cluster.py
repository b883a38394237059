# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0

import json
import os

import pytest
import urllib3
import yaml
from kubernetes.client.rest import ApiException
from kubernetes.config import kube_config
from kubernetes.config.config_exception import ConfigException

from ansible_collections.meshops.cilium.plugins.module_utils.cluster import (
    CLUSTER_ARGUMENT_SPEC,
    Cluster,
    ClusterError,
    describe_params,
    kubeconfig_secret_values,
    translate_error,
)

from k8s_fakes import status_body


class _Resp(object):
    """The minimal urllib3-response shape ApiException(http_resp=...) reads."""

    def __init__(self, code, reason, body):
        self.status = code
        self.reason = reason
        self.data = json.dumps(body).encode()
        self.headers = {'Content-Type': 'application/json'}

    def getheaders(self):
        return {'Content-Type': 'application/json'}


def api_exc(code, reason, message, details=None):
    return ApiException(http_resp=_Resp(code, reason, status_body(code, reason, message, details)))


FORBIDDEN_SECRET = ('secrets "cilium-ca" is forbidden: User "system:serviceaccount:ci:reader" cannot get '
                    'resource "secrets" in API group "" in the namespace "kube-system"')
FORBIDDEN_NODES = 'nodes is forbidden: User "alice" cannot list resource "nodes" in API group "" at the cluster scope'


def params(**kw):
    p = dict((k, v.get('default')) for k, v in CLUSTER_ARGUMENT_SPEC.items())
    p.update(kw)
    return p


# -- translate_error on constructed exceptions ---------------------------------

def test_401_names_cluster_and_credentials():
    msg = translate_error(api_exc(401, 'Unauthorized', 'Unauthorized'), cluster='mesh-1')
    assert msg.startswith('mesh-1: ')
    assert '401' in msg and 'credentials' in msg


def test_403_says_which_permission_is_missing():
    msg = translate_error(api_exc(403, 'Forbidden', FORBIDDEN_SECRET,
                                  {'name': 'cilium-ca', 'kind': 'secrets'}),
                          cluster='mesh-2', action='read Secret kube-system/cilium-ca')
    assert msg.startswith('mesh-2: permission denied (403)')
    assert 'user "system:serviceaccount:ci:reader"' in msg
    assert 'permission to get "secrets"' in msg
    assert 'core API group' in msg
    assert 'namespace "kube-system"' in msg
    assert 'read Secret kube-system/cilium-ca' in msg


def test_403_cluster_scope_and_named_group():
    msg = translate_error(api_exc(403, 'Forbidden', FORBIDDEN_NODES), cluster='c')
    assert 'permission to list "nodes"' in msg and 'cluster scope' in msg
    msg = translate_error(api_exc(403, 'Forbidden', 'deployments.apps "x" is forbidden: User "bob" cannot '
                                  'patch resource "deployments" in API group "apps" in the namespace "kube-system"'),
                          cluster='c')
    assert 'API group "apps"' in msg and 'patch "deployments"' in msg


def test_403_unparsable_message_is_kept():
    msg = translate_error(api_exc(403, 'Forbidden', 'some webhook said no'), cluster='c')
    assert msg == 'c: permission denied (403): some webhook said no'


def test_404_uses_status_details():
    msg = translate_error(api_exc(404, 'NotFound', 'configmaps "cilium-config" not found',
                                  {'name': 'cilium-config', 'kind': 'configmaps'}), cluster='mesh-3')
    assert msg == 'mesh-3: not found (404): configmaps "cilium-config" does not exist'


def test_500_keeps_status_and_message():
    msg = translate_error(api_exc(500, 'Internal Server Error', 'etcdserver: request timed out'), cluster='c')
    assert '500' in msg and 'etcdserver: request timed out' in msg


def test_connection_refused_real_urllib3(closed_port):
    pool = urllib3.PoolManager(retries=0)
    with pytest.raises(urllib3.exceptions.MaxRetryError) as ei:
        pool.request('GET', 'https://127.0.0.1:%d/api' % closed_port, timeout=2)
    msg = translate_error(ei.value, cluster='mesh-1')
    assert msg.startswith('mesh-1: cannot connect to the API server')
    assert 'connection refused' in msg
    assert '127.0.0.1:%d' % closed_port in msg


def test_tls_failure_real_urllib3(apiserver):
    pool = urllib3.PoolManager(retries=0)  # system CAs do not trust the fake server
    with pytest.raises(urllib3.exceptions.MaxRetryError) as ei:
        pool.request('GET', apiserver.url + '/api', timeout=2)
    msg = translate_error(ei.value, cluster='mesh-1')
    assert 'TLS verification' in msg and 'ca_cert' in msg


def test_unresolvable_name():
    exc = urllib3.exceptions.MaxRetryError(
        None, '/api', urllib3.exceptions.NameResolutionError('nope.invalid', None, OSError(-2, 'Name or service not known')))
    msg = translate_error(exc, cluster='c', host='https://nope.invalid:6443')
    assert 'does not resolve' in msg and 'nope.invalid' in msg


def test_config_exception_missing_context_lists_contexts():
    exc = ConfigException('Invalid kube-config file. Expected object with name mesh-9 in kube-config/contexts list')
    msg = translate_error(exc, cluster='mesh-9', contexts=['mesh-1', 'mesh-2'])
    assert msg == 'mesh-9: context "mesh-9" not found; available contexts: mesh-1, mesh-2'


def test_real_kube_config_library_error_is_translated(tmp_path):
    cfg = {'contexts': [{'name': 'a', 'context': {'cluster': 'a', 'user': 'a'}}],
           'clusters': [{'name': 'a', 'cluster': {'server': 'https://x'}}],
           'users': [{'name': 'a', 'user': {}}], 'current-context': 'a'}
    with pytest.raises(ConfigException) as ei:
        kube_config.load_kube_config_from_dict(cfg, context='b', persist_config=False)
    msg = translate_error(ei.value, cluster='b', contexts=['a'])
    assert 'context "b" not found' in msg and 'available contexts: a' in msg


# -- Cluster: building the client ----------------------------------------------

def _write_kubeconfig(tmp_path, cfg):
    path = tmp_path / 'kubeconfig'
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def test_missing_context_in_file_lists_available(tmp_path, apiserver):
    cfg = apiserver.kubeconfig('mesh-1')
    cfg['contexts'].append({'name': 'mesh-2', 'context': {'cluster': 'mesh-1', 'user': 'mesh-1'}})
    path = _write_kubeconfig(tmp_path, cfg)
    with pytest.raises(ClusterError) as ei:
        Cluster(params(kubeconfig=path, context='mesh-7'))
    assert str(ei.value) == 'mesh-7: context "mesh-7" not found in %s; available contexts: mesh-1, mesh-2' % path


def test_missing_context_inline_dict(apiserver):
    with pytest.raises(ClusterError) as ei:
        Cluster(params(kubeconfig=apiserver.kubeconfig('mesh-1'), context='nope'))
    assert 'available contexts: mesh-1' in str(ei.value)


def test_missing_kubeconfig_file(tmp_path):
    path = str(tmp_path / 'does-not-exist')
    with pytest.raises(ClusterError) as ei:
        Cluster(params(kubeconfig=path, context='mesh-1'))
    assert str(ei.value) == 'mesh-1: kubeconfig file %s does not exist' % path


def test_kubeconfig_without_current_context(tmp_path, apiserver):
    cfg = apiserver.kubeconfig('mesh-1')
    del cfg['current-context']
    with pytest.raises(ClusterError) as ei:
        Cluster(params(kubeconfig=_write_kubeconfig(tmp_path, cfg)))
    assert 'no current-context' in str(ei.value) and 'mesh-1' in str(ei.value)


def test_reads_through_kubeconfig_with_token_and_timeouts(tmp_path, apiserver):
    apiserver.routes['/api/v1/namespaces/kube-system/configmaps/cilium-config'] = (200, {
        'kind': 'ConfigMap', 'apiVersion': 'v1',
        'metadata': {'name': 'cilium-config', 'namespace': 'kube-system'},
        'data': {'cluster-name': 'mesh-1', 'cluster-id': '1'}})
    c = Cluster(params(kubeconfig=_write_kubeconfig(tmp_path, apiserver.kubeconfig('mesh-1')),
                       connect_timeout=3, request_timeout=4))
    assert c.name == 'mesh-1'
    assert c.timeouts == (3, 4)
    assert c.configuration.retries == 0
    cm = c.read_config_map('kube-system', 'cilium-config')
    assert cm['data']['cluster-name'] == 'mesh-1'
    assert apiserver.requests[-1][1] == 'Bearer secret-token'
    # 404 with missing_ok is None, without it an error naming the object
    assert c.read_secret('kube-system', 'cilium-ca', missing_ok=True) is None
    with pytest.raises(ClusterError) as ei:
        c.read_secret('kube-system', 'cilium-ca')
    assert ei.value.status == 404 and 'read Secret kube-system/cilium-ca' in str(ei.value)


def test_reads_used_as_dicts_are_the_api_json_as_sent(tmp_path, apiserver):
    # parsed once from the body: a field the client's models do not know is kept, timestamps stay as sent,
    # a list gives its items; a body that is not JSON is an error naming the cluster and the read
    apiserver.routes['/api/v1/namespaces/kube-system/secrets'] = (200, {
        'kind': 'SecretList', 'apiVersion': 'v1', 'metadata': {},
        'items': [{'metadata': {'name': 'sh.helm.release.v1.cilium.v2', 'creationTimestamp': '2026-12-01T10:00:00Z'},
                   'type': 'helm.sh/release.v1', 'data': {'release': 'eA=='}, 'newField': {'kept': True}}]})
    apiserver.routes['/api/v1/nodes'] = (200, 'not json')
    c = Cluster(params(kubeconfig=_write_kubeconfig(tmp_path, apiserver.kubeconfig('mesh-1'))))
    items = c.list_secrets('kube-system', label_selector='owner=helm,name=cilium')
    assert items == [{'metadata': {'name': 'sh.helm.release.v1.cilium.v2', 'creationTimestamp': '2026-12-01T10:00:00Z'},
                      'type': 'helm.sh/release.v1', 'data': {'release': 'eA=='}, 'newField': {'kept': True}}]
    assert 'labelSelector=owner%3Dhelm%2Cname%3Dcilium' in apiserver.requests[-1][0]
    with pytest.raises(ClusterError) as ei:
        c.list_nodes()
    assert str(ei.value).startswith('mesh-1: list Nodes: the API server answered with no JSON object')


def test_403_end_to_end(apiserver):
    apiserver.routes['/api/v1/nodes'] = (403, status_body(403, 'Forbidden', FORBIDDEN_NODES,
                                                          {'kind': 'nodes'}))
    c = Cluster(params(host=apiserver.url, api_key='t0k', ca_cert=str(apiserver.ca_path)))
    assert c.name == apiserver.url
    with pytest.raises(ClusterError) as ei:
        c.list_nodes()
    assert str(ei.value).startswith(apiserver.url + ': permission denied (403) while trying to list Nodes')
    assert 'user "alice"' in str(ei.value)
    assert apiserver.requests[-1][1] == 'Bearer t0k'


def test_401_end_to_end(apiserver):
    apiserver.routes['/api/v1/nodes'] = (401, status_body(401, 'Unauthorized', 'Unauthorized'))
    c = Cluster(params(kubeconfig=apiserver.kubeconfig('mesh-2'), context='mesh-2'))
    with pytest.raises(ClusterError) as ei:
        c.list_nodes()
    assert str(ei.value).startswith('mesh-2: the API server rejected the credentials (401')


def test_tls_failure_end_to_end(apiserver):
    c = Cluster(params(kubeconfig=apiserver.kubeconfig('mesh-1', with_ca=False)))
    with pytest.raises(ClusterError) as ei:
        c.list_nodes()
    assert str(ei.value).startswith('mesh-1: TLS verification of the API server')
    # and validate_certs=false gets through
    c = Cluster(params(kubeconfig=apiserver.kubeconfig('mesh-1', with_ca=False), validate_certs=False))
    apiserver.routes['/api/v1/nodes'] = (200, {'kind': 'NodeList', 'apiVersion': 'v1', 'metadata': {}, 'items': []})
    assert c.list_nodes() == []


def test_connection_refused_end_to_end(closed_port):
    c = Cluster(params(host='https://127.0.0.1:%d' % closed_port, api_key='x', validate_certs=False,
                       connect_timeout=2))
    with pytest.raises(ClusterError) as ei:
        c.list_nodes()
    assert 'connection refused' in str(ei.value)
    assert str(ei.value).startswith('https://127.0.0.1:%d: ' % closed_port)


def test_missing_client_key_file(tmp_path):
    with pytest.raises(ClusterError) as ei:
        Cluster(params(host='https://10.0.0.1:6443', client_cert=str(tmp_path / 'c.crt'),
                       client_key=str(tmp_path / 'c.key')))
    assert 'client_cert file' in str(ei.value)


def test_describe_params_prefers_context_then_current_then_host(tmp_path, apiserver):
    assert describe_params(params(context='a', host='https://h')) == 'a'
    assert describe_params(params(host='https://h')) == 'https://h'
    path = _write_kubeconfig(tmp_path, apiserver.kubeconfig('mesh-3'))
    assert describe_params(params(kubeconfig=path)) == 'mesh-3'


def test_kubeconfig_secret_values_only_credentials(apiserver):
    cfg = apiserver.kubeconfig('mesh-1', token='tok-123')
    cfg['users'][0]['user']['client-key-data'] = 'S0VZ'
    found = kubeconfig_secret_values(cfg)
    assert found == {'tok-123', 'S0VZ'}
    assert 'mesh-1' not in found


def test_argument_spec_marks_secrets_no_log():
    assert CLUSTER_ARGUMENT_SPEC['api_key']['no_log'] is True
    assert CLUSTER_ARGUMENT_SPEC['client_key']['no_log'] is True
    assert CLUSTER_ARGUMENT_SPEC['validate_certs']['aliases'] == ['verify_ssl']
    assert CLUSTER_ARGUMENT_SPEC['connect_timeout']['default'] == 10


def test_forbidden_summary_reads_helm_errors():
    from ansible_collections.meshops.cilium.plugins.module_utils.cluster import forbidden_summary
    text = ('Error: UPGRADE FAILED: cannot patch "cilium-config" with kind ConfigMap: configmaps "cilium-config" '
            'is forbidden: User "meshops-automation" cannot patch resource "configmaps" in API group "" in the '
            'namespace "kube-system"')
    out = forbidden_summary(text)
    assert out == ('permission denied (403): user "meshops-automation" is missing the permission to patch '
                   '"configmaps" in the core API group in namespace "kube-system"')
    text = ('Error: failed to create resource: clusterroles.rbac.authorization.k8s.io "cilium" is forbidden: user '
            '"meshops-automation" (groups=["system:authenticated"]) is attempting to grant RBAC permissions not '
            'currently held:\n{APIGroups:[""], Resources:["pods"], Verbs:["get"]}')
    out = forbidden_summary(text)
    assert 'user "meshops-automation"' in out and '"escalate" verb on clusterroles' in out and '"cilium"' in out
    assert forbidden_summary('Error: release not found') is None


def test_a_kubeconfig_file_is_parsed_once_while_it_stays_the_same(tmp_path, monkeypatch):
    """Members read through one merged kubeconfig share one parse of it; a changed file is read again,
    and each caller gets its own copy."""
    from ansible_collections.meshops.cilium.plugins.module_utils import cluster as cluster_mod
    path = tmp_path / 'config'
    path.write_text(yaml.safe_dump({'contexts': [{'name': 'a', 'context': {'cluster': 'a'}}], 'current-context': 'a'}))
    parses = []
    real_load = yaml.load

    def counting_load(stream, Loader):
        parses.append(Loader)
        return real_load(stream, Loader=Loader)
    monkeypatch.setattr(cluster_mod.yaml, 'load', counting_load)
    first = cluster_mod.load_kubeconfig_dicts(str(path))
    first[0][1]['contexts'].append({'name': 'changed by a caller'})
    second = cluster_mod.load_kubeconfig_dicts(str(path))
    assert len(parses) == 1
    assert [c['name'] for c in second[0][1]['contexts']] == ['a']
    # a new file (size and time differ) is parsed again
    path.write_text(yaml.safe_dump({'contexts': [{'name': 'b', 'context': {'cluster': 'b'}}, {'name': 'c'}]}))
    os.utime(str(path), ns=(1, 2))
    third = cluster_mod.load_kubeconfig_dicts(str(path))
    assert len(parses) == 2 and [c['name'] for c in third[0][1]['contexts']] == ['b', 'c']
    # not YAML: the same error as before, naming the file
    path.write_text('a: [')
    with pytest.raises(ClusterError, match='is not valid YAML'):
        cluster_mod.load_kubeconfig_dicts(str(path))
