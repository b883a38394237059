# -*- coding: utf-8 -*-
# Copyright: meshops.cilium contributors
# SPDX-License-Identifier: Apache-2.0
"""cluster.resolve_connection: one resolved connection per cluster, by one precedence.

Two local HTTPS API servers (A and B) record every request. For each way of naming a cluster
(token, client certificate, exec plugin, inline kubeconfig, host + api_key), with and without
the K8S_AUTH_* environment, the test asserts which server the Python client reached and which
server the kubeconfig handed to helm names: they must be the same, and the intended one.
"""

import base64
import json
import os
import sys

import pytest
import yaml

from ansible_collections.meshops.cilium.plugins.module_utils.cluster import (
    CLUSTER_ARGUMENT_SPEC,
    Cluster,
    ClusterError,
    connection_settings,
    resolve_connection,
)
from ansible_collections.meshops.cilium.plugins.module_utils.helm import HelmRunner

from k8s_fakes import FakeAPIServer, make_ca, make_server_cert, pem_cert, pem_key

OPTIONS = tuple(CLUSTER_ARGUMENT_SPEC)


@pytest.fixture
def servers(tmp_path):
    a_dir, b_dir = tmp_path / 'a', tmp_path / 'b'
    a_dir.mkdir()
    b_dir.mkdir()
    a, b = FakeAPIServer(a_dir), FakeAPIServer(b_dir)
    yield a, b
    a.stop()
    b.stop()


def params(**kw):
    out = dict((k, None) for k in OPTIONS)
    out.update(connect_timeout=3, request_timeout=5)
    out.update(kw)
    return out


def _write(tmp_path, cfg, name='kubeconfig'):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def _exec_kubeconfig(tmp_path, server, token):
    plugin = tmp_path / 'token-plugin'
    plugin.write_text('#!%s\nimport json\nprint(json.dumps({"apiVersion": "client.authentication.k8s.io/v1",'
                      ' "kind": "ExecCredential", "status": {"token": "%s"}}))\n' % (sys.executable, token))
    plugin.chmod(0o755)
    cfg = server.kubeconfig('mesh-1')
    cfg['users'][0]['user'] = {'exec': {'apiVersion': 'client.authentication.k8s.io/v1', 'command': str(plugin),
                                        'interactiveMode': 'Never',
                                        'env': [{'name': 'PLUGIN_SECRET', 'value': 'exec-env-secret'}]}}
    return cfg


def _cert_kubeconfig(server):
    key, cert = make_server_cert(*make_ca('client-ca'))
    cfg = server.kubeconfig('mesh-1')
    cfg['users'][0]['user'] = {
        'client-certificate-data': base64.b64encode(pem_cert(cert)).decode(),
        'client-key-data': base64.b64encode(pem_key(key)).decode()}
    return cfg


AWX_ENV = ('K8S_AUTH_HOST', 'K8S_AUTH_API_KEY', 'K8S_AUTH_SSL_CA_CERT', 'K8S_AUTH_VERIFY_SSL')


def _awx_environment(monkeypatch, server):
    """What AWX's Kubernetes credential sets: one cluster for the whole job."""
    monkeypatch.setenv('K8S_AUTH_HOST', server.url)
    monkeypatch.setenv('K8S_AUTH_API_KEY', 'env-token')
    monkeypatch.setenv('K8S_AUTH_SSL_CA_CERT', str(server.ca_path))
    monkeypatch.setenv('K8S_AUTH_VERIFY_SSL', 'true')


def _case(name, tmp_path, a, b):
    """``(params, intended server, expected bearer or None)`` of one connection setup."""
    if name == 'token kubeconfig file':
        return params(kubeconfig=_write(tmp_path, a.kubeconfig('mesh-1', token='tok-a')), context='mesh-1'), a, \
            'Bearer tok-a'
    if name == 'token kubeconfig + host + api_key':
        return params(kubeconfig=_write(tmp_path, a.kubeconfig('mesh-1', token='tok-a')), context='mesh-1',
                      host=b.url, api_key='tok-b', ca_cert=str(b.ca_path)), b, 'Bearer tok-b'
    if name == 'client certificate kubeconfig':
        return params(kubeconfig=_write(tmp_path, _cert_kubeconfig(a)), context='mesh-1'), a, None
    if name == 'exec plugin kubeconfig':
        return params(kubeconfig=_write(tmp_path, _exec_kubeconfig(tmp_path, a, 'exec-tok'))), a, 'Bearer exec-tok'
    if name == 'inline kubeconfig':
        return params(kubeconfig=a.kubeconfig('mesh-1', token='tok-inline'), context='mesh-1'), a, \
            'Bearer tok-inline'
    if name == 'host + api_key':
        return params(host=b.url, api_key='tok-b', ca_cert=str(b.ca_path)), b, 'Bearer tok-b'
    raise AssertionError(name)


CASES = ['token kubeconfig file', 'token kubeconfig + host + api_key', 'client certificate kubeconfig',
         'exec plugin kubeconfig', 'inline kubeconfig', 'host + api_key']


@pytest.mark.parametrize('with_env', [False, True], ids=['no-env', 'awx-env'])
@pytest.mark.parametrize('case', CASES)
def test_every_request_and_helm_go_to_the_intended_server(servers, tmp_path, monkeypatch, case, with_env):
    a, b = servers
    p, intended, bearer = _case(case, tmp_path, a, b)
    other = b if intended is a else a
    if with_env:
        # the environment points at the OTHER server: it must never win over the task
        _awx_environment(monkeypatch, other)
    c = Cluster(p)
    try:
        assert c.read_config_map('kube-system', 'cilium-config', missing_ok=True) is None
        assert c.read_secret('kube-system', 'cilium-ipsec-keys', missing_ok=True) is None
    finally:
        c.close()
    assert len(intended.requests) == 2 and other.requests == []
    if bearer:
        assert [r[1] for r in intended.requests] == [bearer, bearer]
    assert c.connection.server == intended.url == c.host
    assert c.connection.describe()['api_server'] == intended.url
    assert c.connection.ignored_environment == (sorted(AWX_ENV) if with_env else [])
    # helm is given the same server, from the same resolved connection
    runner = HelmRunner('/bin/false', p)
    assert runner.connection.kubeconfig['clusters'][0]['cluster']['server'] == intended.url
    assert runner.connection.kubeconfig == c.connection.kubeconfig


def test_environment_is_used_when_the_task_names_no_cluster(servers, monkeypatch):
    a, b = servers
    _awx_environment(monkeypatch, b)
    c = Cluster(params())
    try:
        c.read_config_map('kube-system', 'x', missing_ok=True)
    finally:
        c.close()
    assert b.requests == [('/api/v1/namespaces/kube-system/configmaps/x', 'Bearer env-token')] and a.requests == []
    assert c.connection.origin == 'environment' and c.name == b.url


def test_environment_kubeconfig_and_context(servers, tmp_path, monkeypatch):
    a, b = servers
    cfg = a.kubeconfig('mesh-1', token='tok-a')
    cfg2 = b.kubeconfig('mesh-2', token='tok-b')
    for key in ('clusters', 'users', 'contexts'):
        cfg[key] += cfg2[key]
    monkeypatch.setenv('K8S_AUTH_KUBECONFIG', _write(tmp_path, cfg))
    monkeypatch.setenv('K8S_AUTH_CONTEXT', 'mesh-2')
    conn = resolve_connection(params())
    assert conn.server == b.url and conn.name == 'mesh-2' and conn.origin == 'environment'
    # a task that names a context of its own kubeconfig ignores both variables
    conn = resolve_connection(params(kubeconfig=_write(tmp_path, cfg, 'own'), context='mesh-1'))
    assert conn.server == a.url and conn.ignored_environment == ['K8S_AUTH_CONTEXT', 'K8S_AUTH_KUBECONFIG']


def test_host_that_would_send_a_contexts_credentials_elsewhere_is_refused(servers, tmp_path):
    a, b = servers
    path = _write(tmp_path, a.kubeconfig('mesh-1', token='tok-a'))
    with pytest.raises(ClusterError) as e:
        resolve_connection(params(kubeconfig=path, context='mesh-1', host=b.url))
    text = str(e.value)
    assert text.startswith('mesh-1: host %s differs from the server %s of context "mesh-1"' % (b.url, a.url))
    assert 'tok-a' not in text
    # the same server written differently is not a conflict
    assert resolve_connection(params(kubeconfig=path, context='mesh-1', host=a.url + '/')).server == a.url


@pytest.mark.parametrize('kw,msg', [
    (dict(client_cert='/x.crt'), 'client_cert and client_key must be given together'),
    (dict(client_key='/x.key'), 'client_cert and client_key must be given together'),
    (dict(api_key='t', client_cert='/x.crt', client_key='/x.key'), 'two different identities'),
])
def test_contradicting_options_fail(kw, msg):
    with pytest.raises(ClusterError, match=msg):
        resolve_connection(params(host='https://127.0.0.1:1', **kw))


def test_bad_boolean_in_environment(monkeypatch):
    monkeypatch.setenv('K8S_AUTH_HOST', 'https://127.0.0.1:1')
    monkeypatch.setenv('K8S_AUTH_VERIFY_SSL', 'maybe')
    with pytest.raises(ClusterError, match='K8S_AUTH_VERIFY_SSL'):
        resolve_connection(params())


def test_settings_precedence_table():
    env = {'K8S_AUTH_HOST': 'https://env', 'K8S_AUTH_API_KEY': 'e', 'K8S_AUTH_VERIFY_SSL': 'no'}
    s, origin, ignored = connection_settings(params(context='c'), env)
    assert s == {'context': 'c'} and origin == 'task' and ignored == sorted(env)
    s, origin, ignored = connection_settings(params(api_key='task'), env)
    assert s == {'host': 'https://env', 'api_key': 'task', 'validate_certs': False} and origin == 'environment'
    s, origin, ignored = connection_settings(params(), {})
    assert s == {} and origin == 'default kubeconfig'


def test_source_never_reads_the_environment(servers, monkeypatch):
    a, b = servers
    _awx_environment(monkeypatch, b)
    with pytest.raises(ClusterError, match='kubeconfig file .* does not exist'):
        Cluster(params(kubeconfig='/nonexistent/kubeconfig'), environ={})
    conn = resolve_connection(params(host=a.url, api_key='x'), environ={})
    assert conn.server == a.url and conn.ignored_environment == []


def test_describe_has_no_credentials(servers, tmp_path):
    a, dummy = servers
    conn = resolve_connection(params(kubeconfig=_write(tmp_path, _exec_kubeconfig(tmp_path, a, 'exec-tok'))))
    text = json.dumps(conn.describe())
    assert conn.auth == 'exec plugin' and 'exec-tok' not in text and 'exec-env-secret' not in text
    assert os.path.isabs(conn.kubeconfig['users'][0]['user']['exec']['command'])
